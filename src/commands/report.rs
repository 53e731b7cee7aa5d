//! `gitops-status report`: one report from CI or cron, sent until the server has answered it.
//! Exit codes: 0 accepted, 1 refused by the server, 2 usage error, 3 gave up.

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::cli::ReportArgs;
use crate::client::request::{self, mode_name, Inputs, Request};
use crate::client::send::{self, error_text, Outcome, Patience, Target};
use crate::client::{ci, drift};
use crate::config::seconds;

pub const ACCEPTED: u8 = 0;
pub const REFUSED: u8 = 1;
pub const USAGE: u8 = 2;
pub const GAVE_UP: u8 = 3;

/// Runs the command; every message goes to stderr, the one line of success to stdout.
pub fn run(args: ReportArgs) -> ExitCode {
    match prepare(args) {
        Ok(Prepared::DryRun(text)) => {
            print!("{text}");
            ExitCode::from(ACCEPTED)
        }
        Ok(Prepared::Send(ready)) => deliver(*ready),
        Err(problem) => {
            eprintln!("gitops-status report: {problem}");
            ExitCode::from(USAGE)
        }
    }
}

enum Prepared {
    DryRun(String),
    Send(Box<Ready>),
}

struct Ready {
    agent: ureq::Agent,
    target: Target,
    request: Request,
    patience: Patience,
}

/// Everything that can go wrong before the first byte is sent: a usage error.
fn prepare(args: ReportArgs) -> Result<Prepared, String> {
    let args = if args.plugin {
        // The step's settings first, then the command line's own arguments, which win.
        let given: Vec<String> = std::env::args()
            .skip_while(|a| a != "report")
            .skip(1)
            .collect();
        plugin_args(std::env::vars(), given)?
    } else {
        args
    };
    let url = args
        .url
        .clone()
        .ok_or("--url (GITOPS_STATUS_URL) is required: the server's base URL")?;
    let base_url = url.trim_end_matches('/').to_owned();
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        return Err(format!("--url {url:?} must start with http:// or https://"));
    }
    if let Err(e) = format!("{base_url}/status").parse::<ureq::http::Uri>() {
        return Err(format!("--url {url:?} is not a URL: {e}"));
    }
    let token = token(&args)?;
    // A key of the caller's own is for re-runs: the body must come out the same, so it
    // carries no time of its own unless --at gives one.
    let (idempotency_key, at) = match &args.idempotency_key {
        Some(key) => {
            if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(
                    "--idempotency-key must be 1 to 255 visible ASCII characters".to_owned(),
                );
            }
            (key.clone(), false)
        }
        None => (new_key()?, true),
    };
    let timeout = seconds("--timeout", "GITOPS_STATUS_TIMEOUT", &args.timeout, false)
        .map_err(|e| e.to_string())?;
    let retry_for = seconds(
        "--retry-for",
        "GITOPS_STATUS_RETRY_FOR",
        &args.retry_for,
        true,
    )
    .map_err(|e| e.to_string())?;
    let drift = match &args.drift_output {
        Some(source) => Some(drift::parse(&read_drift_output(source)?)?),
        None => None,
    };
    // Taken once the drift check's output has been read: the time the check finished.
    let at = match &args.at {
        Some(text) => {
            crate::domain::Timestamp::parse_rfc3339(text)
                .map_err(|problem| format!("--at {problem}"))?;
            Some(text.clone())
        }
        None if at => Some(now()?),
        None => None,
    };
    let run = ci::detect(|name| std::env::var(name).ok());
    let inputs = Inputs {
        mode: args.mode,
        server_group: args.server_group,
        host: args.host,
        status: args.status,
        changed_files: args.changed_files,
        drift,
        validation_status: args.validation_status,
        validation_message: args.validation_message,
        environment: args.environment,
        server_type: args.server_type,
        project_name: args.project_name,
        repo_name: args.repo_name,
        commit_sha: args.commit_sha,
        branch: args.branch,
        updated_by: args.updated_by,
        ci_run: args.ci_run,
        at,
    };
    let request = request::build(inputs, run.as_ref())?;
    let target = Target {
        base_url,
        token,
        idempotency_key,
    };
    if args.dry_run {
        return Ok(Prepared::DryRun(dry_run(&target, &request)));
    }
    let agent = agent(timeout, args.ca_cert.as_deref())?;
    Ok(Prepared::Send(Box::new(Ready {
        agent,
        target,
        request,
        patience: Patience {
            retry_for,
            retries: args.retries,
        },
    })))
}

fn deliver(ready: Ready) -> ExitCode {
    let Ready {
        agent,
        target,
        request,
        patience,
    } = ready;
    let outcome = send::send(&agent, &target, &request, patience, &mut |line| {
        eprintln!("gitops-status report: {line}")
    });
    match outcome {
        Outcome::Accepted { body, replayed } => {
            println!("{}", accepted_line(&request, &body, replayed));
            if let Some(message) = notable_message(&body) {
                eprintln!("gitops-status report: the server says: {message}");
            }
            ExitCode::from(ACCEPTED)
        }
        Outcome::Refused { status, body } => {
            eprintln!(
                "gitops-status report: refused, {status}{} (not retried)",
                error_text(&body)
            );
            for (field, problem) in field_problems(&body) {
                eprintln!("  {field}: {problem}");
            }
            ExitCode::from(REFUSED)
        }
        Outcome::GaveUp {
            attempts,
            last_problem,
        } => {
            eprintln!(
                "gitops-status report: gave up after {attempts} attempt{}: {last_problem}",
                if attempts == 1 { "" } else { "s" }
            );
            eprintln!(
                "gitops-status report: an attempt that got no answer may have been stored; \
                 its Idempotency-Key was {} (GET /history shows what arrived)",
                target.idempotency_key
            );
            ExitCode::from(GAVE_UP)
        }
    }
}

/// `accepted report_id=4711 host=rsyslog-prod/rsyslog-01 status=out_of_sync changed=yes
/// previous=synced`, and `replayed=yes` when an earlier attempt had stored it.
fn accepted_line(request: &Request, body: &str, replayed: bool) -> String {
    let answer: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let v1 = request.mode == crate::cli::ReportMode::V1;
    let state = &answer["status"];
    let (group, host, now, before) = if v1 {
        (
            &state["repo"],
            &state["server"],
            state["sync_status"].as_str().map(str::to_ascii_lowercase),
            answer["previous_sync_status"]
                .as_str()
                .map(str::to_ascii_lowercase),
        )
    } else {
        (
            &state["server_group"],
            &state["host"],
            state["status"].as_str().map(str::to_owned),
            answer["previous_status"].as_str().map(str::to_owned),
        )
    };
    let mut line = format!(
        "accepted {} report_id={} host={}/{} status={}",
        mode_name(request.mode),
        answer["report_id"],
        group.as_str().unwrap_or("?"),
        host.as_str().unwrap_or("?"),
        now.as_deref().unwrap_or("?"),
    );
    match &before {
        None => line.push_str(" changed=yes previous=none"),
        Some(before) if Some(before) != now.as_ref() => {
            line.push_str(&format!(" changed=yes previous={before}"));
        }
        Some(_) => line.push_str(" changed=no"),
    }
    if replayed {
        line.push_str(" replayed=yes");
    }
    line
}

/// The answer's message, when it says more than that all went well.
fn notable_message(body: &str) -> Option<String> {
    let answer: Value = serde_json::from_str(body).ok()?;
    let message = answer["message"].as_str()?;
    (message != "Status updated successfully").then(|| message.to_owned())
}

fn field_problems(body: &str) -> Vec<(String, String)> {
    let Ok(answer) = serde_json::from_str::<Value>(body) else {
        return Vec::new();
    };
    answer["details"]
        .as_array()
        .map(|details| {
            details
                .iter()
                .map(|d| {
                    (
                        d["field"].as_str().unwrap_or("?").to_owned(),
                        d["problem"].as_str().unwrap_or("?").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The token: --token-file, or --token / GITOPS_STATUS_TOKEN whose `file:` prefix names a
/// file. None: send no Authorization (a server without tokens).
fn token(args: &ReportArgs) -> Result<Option<String>, String> {
    // The file's name is not repeated in messages: a token pasted where a path belongs
    // would otherwise be printed into the CI log.
    let from_file = |path: &std::path::Path, source: &str| -> Result<String, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{source}: cannot read the token file: {e}"))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(format!("{source}: the token file is empty"));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "{source}: the token file holds more than one word or non-ASCII characters"
            ));
        }
        Ok(token.to_owned())
    };
    match (&args.token, &args.token_file) {
        (Some(_), Some(_)) => Err(
            "give the token once: --token (GITOPS_STATUS_TOKEN) or --token-file \
             (GITOPS_STATUS_TOKEN_FILE), not both"
                .to_owned(),
        ),
        (None, Some(path)) => from_file(path, "--token-file").map(Some),
        (Some(value), None) => match value.strip_prefix("file:") {
            Some(path) => from_file(
                std::path::Path::new(path),
                "--token (GITOPS_STATUS_TOKEN) file:",
            )
            .map(Some),
            None if value.trim().is_empty() => {
                Err("--token (GITOPS_STATUS_TOKEN) is empty".to_owned())
            }
            None if !value.trim().bytes().all(|b| b.is_ascii_graphic()) => {
                Err("--token (GITOPS_STATUS_TOKEN) holds spaces or non-ASCII characters".to_owned())
            }
            None => Ok(Some(value.trim().to_owned())),
        },
        (None, None) => Ok(None),
    }
}

fn read_drift_output(source: &str) -> Result<String, String> {
    if source == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("--drift-output -: cannot read standard input: {e}"))?;
        Ok(text)
    } else {
        std::fs::read_to_string(source)
            .map_err(|e| format!("--drift-output: cannot read {source}: {e}"))
    }
}

/// Now, to the millisecond, as RFC 3339.
fn now() -> Result<String, String> {
    let now = OffsetDateTime::now_utc();
    now.replace_millisecond(now.millisecond())
        .unwrap_or(now)
        .format(&Rfc3339)
        .map_err(|e| format!("cannot write the time: {e}"))
}

/// A new random key: 128 bits as hex.
fn new_key() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| format!("cannot make an Idempotency-Key: no randomness: {e}"))?;
    Ok(hex::encode(bytes))
}

fn user_agent() -> String {
    format!("gitops-status/{} (report)", env!("CARGO_PKG_VERSION"))
}

fn agent(timeout: Duration, ca_cert: Option<&std::path::Path>) -> Result<ureq::Agent, String> {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path)
            .map_err(|e| format!("--ca-cert: cannot read {}: {e}", path.display()))?;
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(&pem) {
            match item {
                Ok(ureq::tls::PemItem::Certificate(cert)) => certs.push(cert),
                Ok(_) => {}
                Err(e) => return Err(format!("--ca-cert {}: {e}", path.display())),
            }
        }
        if certs.is_empty() {
            return Err(format!(
                "--ca-cert {}: no certificate in the file",
                path.display()
            ));
        }
        tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
    }
    Ok(ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(timeout))
        .user_agent(user_agent())
        .tls_config(tls.build())
        .build()
        .into())
}

/// What --dry-run prints: the request line, the headers (the token masked), the body.
fn dry_run(target: &Target, request: &Request) -> String {
    let mut text = format!("POST {}{}\n", target.base_url, request.path);
    if target.token.is_some() {
        text.push_str("Authorization: Bearer ********\n");
    }
    text.push_str("Content-Type: application/json\n");
    text.push_str(&format!("Idempotency-Key: {}\n", target.idempotency_key));
    text.push_str(&format!("User-Agent: {}\n\n", user_agent()));
    let pretty = serde_json::from_str::<Value>(&request.body)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| request.body.clone());
    text.push_str(&pretty);
    text.push('\n');
    text
}

/// The report image's settings: Woodpecker hands a step's `settings:` over as `PLUGIN_*`
/// variables (`server_group: x` as `PLUGIN_SERVER_GROUP=x`, lists comma-separated). Each one
/// becomes the flag of the same name; one that names no flag is a usage error, not ignored.
fn plugin_args(
    vars: impl Iterator<Item = (String, String)>,
    given: Vec<String>,
) -> Result<ReportArgs, String> {
    #[derive(Parser)]
    #[command(name = "gitops-status report")]
    struct Plugin {
        #[command(flatten)]
        args: ReportArgs,
    }
    let command = ReportArgs::augment_args(clap::Command::new("report"));
    let mut argv = vec!["gitops-status report".to_owned()];
    let mut settings: Vec<(String, String)> = vars
        .filter_map(|(name, value)| {
            name.strip_prefix("PLUGIN_")
                .map(|s| (s.to_ascii_lowercase(), value))
        })
        .collect();
    settings.sort();
    for (setting, value) in settings {
        let long = match setting.as_str() {
            "changed_files" => "changed-file".to_owned(),
            other => other.replace('_', "-"),
        };
        if setting == "mode" {
            argv.insert(1, value);
            continue;
        }
        let known = command
            .get_arguments()
            .any(|arg| arg.get_long() == Some(long.as_str()) && long != "plugin");
        if !known {
            return Err(format!(
                "the step's setting {setting:?} (PLUGIN_{}) is not one of the report's \
                 settings; see `gitops-status report --help`",
                setting.to_ascii_uppercase()
            ));
        }
        argv.push(format!("--{long}={value}"));
    }
    argv.extend(given);
    Plugin::try_parse_from(argv)
        .map(|plugin| plugin.args)
        .map_err(|e| format!("the step's settings: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn plugin_settings_become_the_flags_of_the_same_name() {
        let args = plugin_args(
            vars(&[
                ("PLUGIN_URL", "http://gitops-status.observability-stack.svc"),
                ("PLUGIN_TOKEN", "secret"),
                ("PLUGIN_SERVER_GROUP", "rsyslog-prod"),
                ("PLUGIN_CHANGED_FILES", "/etc/a.conf,/etc/b.conf"),
                ("PLUGIN_MODE", "cron"),
                ("PLUGIN_DRY_RUN", "true"),
                ("CI", "woodpecker"),
            ]),
            vec!["--plugin".into(), "--host=from-the-command-line".into()],
        )
        .unwrap();
        assert_eq!(args.host.as_deref(), Some("from-the-command-line"));
        assert_eq!(
            args.url.as_deref(),
            Some("http://gitops-status.observability-stack.svc")
        );
        assert_eq!(args.token.as_deref(), Some("secret"));
        assert_eq!(args.server_group.as_deref(), Some("rsyslog-prod"));
        assert_eq!(args.changed_files, ["/etc/a.conf", "/etc/b.conf"]);
        assert_eq!(args.mode, Some(crate::cli::ReportMode::Cron));
        assert!(args.dry_run);
        assert!(args.plugin);
    }

    #[test]
    fn an_unknown_plugin_setting_is_a_usage_error() {
        let problem = plugin_args(vars(&[("PLUGIN_SERVERGROUP", "x")]), vec![]).unwrap_err();
        assert!(problem.contains("\"servergroup\""), "{problem}");
        let problem = plugin_args(vars(&[("PLUGIN_PLUGIN", "true")]), vec![]).unwrap_err();
        assert!(problem.contains("\"plugin\""), "{problem}");
        let problem = plugin_args(vars(&[("PLUGIN_MODE", "deploy")]), vec![]).unwrap_err();
        assert!(problem.contains("deploy"), "{problem}");
    }
}
