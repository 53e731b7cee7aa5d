//! `/ui/commits/{commit_sha}`: a rollout. For every group whose pipelines reported the
//! commit, which hosts run it and which do not yet (the same store verbs as `/commits`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use crate::api::error::ApiError;
use crate::api::AppContext;
use crate::domain::{AnyOf, Pattern, RolloutFilter, RolloutHost};

use super::{commit_link, host_link, status_look};

/// The most groups listed for one commit.
const MAX_GROUPS: u32 = 1000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitQuery {
    refresh: Option<String>,
}

struct HostRow {
    host: String,
    link: String,
    status_class: &'static str,
    status_symbol: &'static str,
    status_text: &'static str,
    current_commit: String,
    since: String,
}

struct GroupRollout {
    server_group: String,
    branch: String,
    first_reported: String,
    last_reported: String,
    on_commit: u64,
    hosts: u64,
    running: Vec<HostRow>,
    waiting: Vec<HostRow>,
}

#[derive(Template)]
#[template(path = "commit.html")]
struct CommitPage {
    title: String,
    refresh_seconds: u32,
    /// This page reloading itself, or not reloading.
    refresh_link: String,
    commit_sha: String,
    on_commit: u64,
    hosts: u64,
    groups: Vec<GroupRollout>,
}

fn host_row(host: &RolloutHost) -> HostRow {
    let (symbol, text) = status_look(host.status);
    HostRow {
        host: host.host.to_string(),
        link: host_link(&host.server_group, &host.host),
        status_class: host.status.as_str(),
        status_symbol: symbol,
        status_text: text,
        current_commit: host
            .current_commit_sha
            .as_deref()
            .map(|c| c.chars().take(12).collect())
            .unwrap_or_else(|| "none reported".to_owned()),
        since: host.since.map(|t| t.to_string()).unwrap_or_default(),
    }
}

pub async fn page(
    ctx: web::Data<AppContext>,
    path: web::Path<String>,
    query: web::Query<CommitQuery>,
) -> Result<HttpResponse, ApiError> {
    let commit_sha = path.into_inner();
    let refresh_seconds = super::parse_refresh(query.refresh.as_deref())
        .map_err(|problem| ApiError::Unprocessable(vec![problem]))?;
    // `*` would make it a glob listing other commits' groups: only an exact name.
    let exact = Pattern::parse(&commit_sha)
        .ok()
        .filter(|_| !commit_sha.contains('*'));
    let Some(exact) = exact else {
        return super::message(
            StatusCode::NOT_FOUND,
            "Unknown commit",
            "No pipeline reported this commit.",
        );
    };
    let rollouts = ctx
        .store
        .rollouts(&RolloutFilter {
            commit_sha: AnyOf(vec![exact]),
            limit: MAX_GROUPS,
            ..RolloutFilter::default()
        })
        .await?;
    if rollouts.is_empty() {
        return super::message(
            StatusCode::NOT_FOUND,
            "Unknown commit",
            "No pipeline reported this commit (or its groups were pruned or decommissioned).",
        );
    }
    let hosts = ctx.store.rollout_hosts(&commit_sha).await?;
    let mut groups: Vec<GroupRollout> = rollouts
        .iter()
        .map(|r| GroupRollout {
            server_group: r.server_group.to_string(),
            branch: r.branch.clone().unwrap_or_default(),
            first_reported: r.first_reported.to_string(),
            last_reported: r.last_reported.to_string(),
            on_commit: r.hosts_on_commit,
            hosts: r.hosts_in_group,
            running: Vec::new(),
            waiting: Vec::new(),
        })
        .collect();
    groups.sort_by(|a, b| a.server_group.cmp(&b.server_group));
    for host in &hosts {
        let group = host.server_group.as_str();
        if let Ok(index) = groups.binary_search_by(|g| g.server_group.as_str().cmp(group)) {
            let row = host_row(host);
            if let Some(entry) = groups.get_mut(index) {
                if host.current_commit_sha.as_deref() == Some(commit_sha.as_str()) {
                    entry.running.push(row);
                } else {
                    entry.waiting.push(row);
                }
            }
        }
    }
    let template = CommitPage {
        title: format!("Commit {}", commit_sha.chars().take(12).collect::<String>()),
        refresh_seconds,
        refresh_link: if refresh_seconds > 0 {
            format!("{}?refresh=0", commit_link(&commit_sha))
        } else {
            commit_link(&commit_sha)
        },
        on_commit: groups.iter().map(|g| g.on_commit).sum(),
        hosts: groups.iter().map(|g| g.hosts).sum(),
        commit_sha,
        groups,
    };
    super::html(template.render())
}
