//! What a CI run tells about itself through its environment: the commit, the branch, the
//! repository, a link to the run, and whether it is a scheduled run (a cron drift check).

/// The CI systems the client knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CiSystem {
    Woodpecker,
    GitLab,
    /// GitHub Actions, and Gitea/Forgejo Actions, which set the same variables.
    GitHubActions,
    Jenkins,
}

impl CiSystem {
    pub fn name(self) -> &'static str {
        match self {
            CiSystem::Woodpecker => "woodpecker",
            CiSystem::GitLab => "gitlab",
            CiSystem::GitHubActions => "github-actions",
            CiSystem::Jenkins => "jenkins",
        }
    }
}

/// A CI run, as its variables describe it. Every field may be missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CiRun {
    pub system: CiSystem,
    pub commit_sha: Option<String>,
    pub branch: Option<String>,
    pub repo_name: Option<String>,
    /// A link to the pipeline run (sent as `ci_run`).
    pub run_url: Option<String>,
    /// A scheduled run: the client reports a drift check (`cron`) rather than a deployment.
    pub scheduled: bool,
}

/// The run described by the variables `var` returns (None: not set or empty); None when no
/// known CI system set its marker.
pub fn detect(var: impl Fn(&str) -> Option<String>) -> Option<CiRun> {
    let get = |name: &str| var(name).filter(|v| !v.is_empty());
    if get("CI").as_deref() == Some("woodpecker") {
        return Some(CiRun {
            system: CiSystem::Woodpecker,
            commit_sha: get("CI_COMMIT_SHA"),
            branch: get("CI_COMMIT_BRANCH"),
            repo_name: get("CI_REPO_NAME"),
            run_url: get("CI_PIPELINE_URL"),
            scheduled: get("CI_PIPELINE_EVENT").as_deref() == Some("cron"),
        });
    }
    if get("GITLAB_CI").is_some() {
        return Some(CiRun {
            system: CiSystem::GitLab,
            commit_sha: get("CI_COMMIT_SHA"),
            branch: get("CI_COMMIT_BRANCH").or_else(|| get("CI_COMMIT_REF_NAME")),
            repo_name: get("CI_PROJECT_PATH"),
            run_url: get("CI_PIPELINE_URL"),
            scheduled: get("CI_PIPELINE_SOURCE").as_deref() == Some("schedule"),
        });
    }
    if get("GITHUB_ACTIONS").is_some() {
        let run_url = match (
            get("GITHUB_SERVER_URL"),
            get("GITHUB_REPOSITORY"),
            get("GITHUB_RUN_ID"),
        ) {
            (Some(server), Some(repo), Some(run)) => Some(format!(
                "{}/{repo}/actions/runs/{run}",
                server.trim_end_matches('/')
            )),
            _ => None,
        };
        return Some(CiRun {
            system: CiSystem::GitHubActions,
            commit_sha: get("GITHUB_SHA"),
            branch: get("GITHUB_REF_NAME"),
            repo_name: get("GITHUB_REPOSITORY"),
            run_url,
            scheduled: get("GITHUB_EVENT_NAME").as_deref() == Some("schedule"),
        });
    }
    if get("JENKINS_URL").is_some() {
        return Some(CiRun {
            system: CiSystem::Jenkins,
            commit_sha: get("GIT_COMMIT"),
            branch: get("GIT_BRANCH"),
            repo_name: None,
            run_url: get("BUILD_URL"),
            scheduled: false,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn woodpecker() {
        let run = detect(env(&[
            ("CI", "woodpecker"),
            ("CI_COMMIT_SHA", "abc123"),
            ("CI_COMMIT_BRANCH", "main"),
            ("CI_PIPELINE_URL", "https://ci.example/repos/1/pipeline/7"),
            ("CI_REPO_NAME", "rsyslog"),
            ("CI_PIPELINE_EVENT", "cron"),
        ]))
        .unwrap();
        assert_eq!(run.system, CiSystem::Woodpecker);
        assert_eq!(run.commit_sha.as_deref(), Some("abc123"));
        assert_eq!(run.branch.as_deref(), Some("main"));
        assert_eq!(run.repo_name.as_deref(), Some("rsyslog"));
        assert_eq!(
            run.run_url.as_deref(),
            Some("https://ci.example/repos/1/pipeline/7")
        );
        assert!(run.scheduled);
    }

    #[test]
    fn gitlab_falls_back_to_the_ref_name() {
        let run = detect(env(&[
            ("GITLAB_CI", "true"),
            ("CI_COMMIT_SHA", "def456"),
            ("CI_COMMIT_REF_NAME", "v1.2"),
            (
                "CI_PIPELINE_URL",
                "https://gitlab.example/g/p/-/pipelines/9",
            ),
            ("CI_PROJECT_PATH", "infra/rsyslog"),
            ("CI_PIPELINE_SOURCE", "push"),
        ]))
        .unwrap();
        assert_eq!(run.system, CiSystem::GitLab);
        assert_eq!(run.branch.as_deref(), Some("v1.2"));
        assert_eq!(run.repo_name.as_deref(), Some("infra/rsyslog"));
        assert!(!run.scheduled);
        let scheduled = detect(env(&[
            ("GITLAB_CI", "true"),
            ("CI_COMMIT_BRANCH", "main"),
            ("CI_COMMIT_REF_NAME", "ignored"),
            ("CI_PIPELINE_SOURCE", "schedule"),
        ]))
        .unwrap();
        assert_eq!(scheduled.branch.as_deref(), Some("main"));
        assert!(scheduled.scheduled);
    }

    #[test]
    fn github_and_forgejo_actions_build_the_run_url() {
        let run = detect(env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_SHA", "0123abc"),
            ("GITHUB_REF_NAME", "main"),
            ("GITHUB_SERVER_URL", "https://github.com/"),
            ("GITHUB_REPOSITORY", "acme/rsyslog"),
            ("GITHUB_RUN_ID", "42"),
            ("GITHUB_EVENT_NAME", "schedule"),
        ]))
        .unwrap();
        assert_eq!(run.system, CiSystem::GitHubActions);
        assert_eq!(
            run.run_url.as_deref(),
            Some("https://github.com/acme/rsyslog/actions/runs/42")
        );
        assert!(run.scheduled);
    }

    #[test]
    fn jenkins_and_no_ci() {
        let run = detect(env(&[
            ("JENKINS_URL", "https://jenkins.example/"),
            ("GIT_COMMIT", "fff000"),
            ("GIT_BRANCH", "origin/main"),
            ("BUILD_URL", "https://jenkins.example/job/x/3/"),
        ]))
        .unwrap();
        assert_eq!(run.system, CiSystem::Jenkins);
        assert_eq!(run.commit_sha.as_deref(), Some("fff000"));
        assert!(!run.scheduled);
        assert_eq!(detect(env(&[("CI", "true")])), None);
        assert_eq!(detect(env(&[("CI", ""), ("GITLAB_CI", "")])), None);
    }
}
