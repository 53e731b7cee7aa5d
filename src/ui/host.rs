//! `/ui/hosts/{server_group}/{host}`: one host's story. Its current fields and changed files,
//! a bar of its recent reports coloured by status (with a symbol in each, never colour
//! alone), its transitions with how long each status lasted, and its history a page at a
//! time with each report's raw body one click away (a `<details>`, no script).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use crate::api::error::{ApiError, FieldProblem};
use crate::api::AppContext;
use crate::domain::{
    AnyOf, HistoryEntry, HistoryFilter, HostName, HostState, Pattern, ServerGroup, Status,
    Timestamp, Transition, TransitionFilter,
};

use super::{commit_link, human_duration, status_look};

/// Reports in the timeline bar (Uptime Kuma shows the last 100 beats).
const TIMELINE: u32 = 100;
/// Transitions shown.
const TRANSITIONS: u32 = 50;
/// History rows per page.
const HISTORY_PAGE: u32 = 25;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostQuery {
    page: Option<String>,
}

/// A report's status as a tick of the bar, a cell or a heading.
struct Look {
    class: &'static str,
    symbol: &'static str,
    text: &'static str,
}

impl Look {
    fn of(status: Option<Status>) -> Look {
        match status {
            Some(status) => {
                let (symbol, text) = status_look(status);
                Look {
                    class: status.as_str(),
                    symbol,
                    text,
                }
            }
            None => Look {
                class: "none",
                symbol: "·",
                text: "no status",
            },
        }
    }
}

struct Tick {
    look: Look,
    /// What a pointer or a screen reader gets: the status, the time and the kind.
    label: String,
}

struct TransitionRow {
    at: String,
    from: Look,
    to: Look,
    /// How long the new status lasted, or has lasted so far.
    lasted: String,
    kind: &'static str,
    commit: String,
    commit_link: String,
}

struct HistoryRow {
    id: i64,
    received_at: String,
    observed_at: String,
    kind: &'static str,
    look: Look,
    commit: String,
    changed_files: String,
    principal: String,
    raw_body: String,
}

#[derive(Template)]
#[template(path = "host.html")]
struct HostPage {
    title: String,
    refresh_seconds: u32,
    server_group: String,
    host: String,
    group_link: String,
    look: Look,
    stale: bool,
    status_since: String,
    status_for: String,
    fields: Vec<(&'static str, String)>,
    commit: String,
    commit_link: String,
    changed_files: Vec<String>,
    ticks: Vec<Tick>,
    transitions: Vec<TransitionRow>,
    history: Vec<HistoryRow>,
    history_info: String,
    previous_link: String,
    next_link: String,
}

/// Only this host: its names as patterns match nothing but themselves (host and group names
/// cannot hold a glob character).
fn only(
    group: &ServerGroup,
    host: &HostName,
) -> Result<(AnyOf<Pattern>, AnyOf<Pattern>), ApiError> {
    let pattern =
        |text: &str| Pattern::parse(text).map_err(|p| ApiError::internal(std::io::Error::other(p)));
    Ok((
        AnyOf(vec![pattern(group.as_str())?]),
        AnyOf(vec![pattern(host.as_str())?]),
    ))
}

fn page_number(query: &HostQuery) -> Result<u32, ApiError> {
    match query.page.as_deref().map(str::trim).unwrap_or("") {
        "" => Ok(1),
        text => match text.parse::<u32>() {
            Ok(n) if (1..=100_000).contains(&n) => Ok(n),
            _ => Err(ApiError::Unprocessable(vec![FieldProblem::new(
                "page",
                "must be a whole number from 1 to 100000",
            )])),
        },
    }
}

fn optional(value: Option<&str>) -> String {
    value.unwrap_or("").to_owned()
}

fn fields(state: &HostState) -> Vec<(&'static str, String)> {
    let d = &state.deployment;
    let time = |t: Option<Timestamp>| t.map(|t| t.to_string()).unwrap_or_default();
    vec![
        ("Last report", state.timestamp.to_string()),
        ("Branch", optional(d.branch.as_deref())),
        ("Deployed since", time(state.commit_since)),
        ("Last pipeline run", time(state.last_pipeline_run)),
        ("Last drift check", time(state.last_cron_check)),
        ("Validation", optional(d.validation_status.as_deref())),
        (
            "Validation message",
            optional(d.validation_message.as_deref()),
        ),
        ("Project", optional(d.project_name.as_deref())),
        ("Repository", optional(d.repo_name.as_deref())),
        ("Server type", optional(d.server_type.as_deref())),
        ("Environment", optional(d.environment.as_deref())),
        ("Updated by", optional(d.updated_by.as_deref())),
    ]
}

fn short(commit: Option<&str>) -> String {
    commit
        .map(|c| c.chars().take(12).collect())
        .unwrap_or_default()
}

fn history_row(entry: HistoryEntry) -> HistoryRow {
    // Pretty-printed for reading; the stored bytes are what the chain covers (GET /history).
    let raw_body = serde_json::from_str::<serde_json::Value>(&entry.raw_body)
        .and_then(|value| serde_json::to_string_pretty(&value))
        .unwrap_or(entry.raw_body);
    HistoryRow {
        id: entry.id,
        received_at: entry.received_at.to_string(),
        observed_at: entry.observed_at.to_string(),
        kind: entry.kind.as_str(),
        look: Look::of(entry.status),
        commit: short(entry.deployment.commit_sha.as_deref()),
        changed_files: entry
            .changed_files
            .map(|files| files.len().to_string())
            .unwrap_or_default(),
        principal: entry.principal.unwrap_or_default(),
        raw_body,
    }
}

/// Transitions newest first; each one's status lasted until the next newer one began.
fn transition_rows(transitions: Vec<Transition>, now: Timestamp) -> Vec<TransitionRow> {
    let mut rows = Vec::with_capacity(transitions.len());
    let mut newer: Option<i64> = None;
    for (index, t) in transitions.into_iter().enumerate() {
        let lasted = match (index, newer) {
            (0, _) => format!(
                "{} so far",
                human_duration(
                    i64::try_from(now.since(t.at).whole_milliseconds()).unwrap_or(i64::MAX)
                )
            ),
            (_, Some(ms)) => human_duration(ms),
            (_, None) => String::new(),
        };
        newer = t.previous_duration_ms;
        rows.push(TransitionRow {
            at: t.at.to_string(),
            from: match t.from_status {
                Some(status) => Look::of(Some(status)),
                // The host's first report (or its first after a decommission).
                None => Look {
                    class: "none",
                    symbol: "·",
                    text: "first report",
                },
            },
            to: Look::of(Some(t.to_status)),
            lasted,
            kind: t.kind.as_str(),
            commit: short(t.commit_sha.as_deref()),
            commit_link: t.commit_sha.as_deref().map(commit_link).unwrap_or_default(),
        });
    }
    rows
}

pub async fn page(
    ctx: web::Data<AppContext>,
    path: web::Path<(String, String)>,
    query: web::Query<HostQuery>,
) -> Result<HttpResponse, ApiError> {
    let (group, host) = path.into_inner();
    let page = page_number(&query)?;
    let unknown = || {
        super::message(
            StatusCode::NOT_FOUND,
            "Unknown host",
            "The server has no report for this host (or it was decommissioned).",
        )
    };
    let (Ok(group), Ok(host)) = (ServerGroup::parse(&group), HostName::parse(&host)) else {
        return unknown();
    };
    let now = ctx.clock.now();
    let Some(state) = ctx.store.host_state(&group, &host).await? else {
        return unknown();
    };
    let stale = ctx
        .store
        .host_gauge(&group, &host, now)
        .await?
        .is_some_and(|gauge| gauge.stale);
    let (groups, hosts) = only(&group, &host)?;
    let mut recent = ctx
        .store
        .history(&HistoryFilter {
            server_group: groups.clone(),
            host: hosts.clone(),
            limit: TIMELINE,
            ..HistoryFilter::default()
        })
        .await?;
    recent.reverse();
    let ticks = recent
        .iter()
        .map(|entry| {
            let look = Look::of(entry.status);
            let label = format!(
                "{} {}: {} report #{} at {}",
                look.symbol,
                look.text,
                entry.kind.as_str(),
                entry.id,
                entry.observed_at
            );
            Tick { look, label }
        })
        .collect();
    let transitions = ctx
        .store
        .transitions(&TransitionFilter {
            server_group: groups.clone(),
            host: hosts.clone(),
            limit: TRANSITIONS,
            ..TransitionFilter::default()
        })
        .await?;
    // One more than a page tells whether there is a next one.
    let offset = u64::from(page - 1) * u64::from(HISTORY_PAGE);
    let mut history = ctx
        .store
        .history(&HistoryFilter {
            server_group: groups,
            host: hosts,
            limit: HISTORY_PAGE + 1,
            offset,
            ..HistoryFilter::default()
        })
        .await?;
    let more = history.len() > HISTORY_PAGE as usize;
    history.truncate(HISTORY_PAGE as usize);
    let here = super::host_link(&group, &host);
    let history_info = match history.len() {
        0 if page > 1 => format!("Page {page} is past the end of this host's history."),
        0 => "No reports kept.".to_owned(),
        n => format!(
            "Reports {}–{}, newest first.",
            offset + 1,
            offset + n as u64
        ),
    };
    let previous_link = match page {
        1 => String::new(),
        2 => format!("{here}#history"),
        n => format!("{here}?page={}#history", n - 1),
    };
    let next_link = if more {
        format!("{here}?page={}#history", page + 1)
    } else {
        String::new()
    };
    let status_for = human_duration(
        i64::try_from(now.since(state.status_since).whole_milliseconds()).unwrap_or(i64::MAX),
    );
    let template = HostPage {
        title: format!("{}/{}", group, host),
        // No self-refresh: it would close the raw body a reader opened.
        refresh_seconds: 0,
        group_link: format!("/ui/?server_group={}", super::encode(group.as_str())),
        look: Look::of(Some(state.status)),
        stale,
        status_since: state.status_since.to_string(),
        status_for,
        fields: fields(&state),
        commit: optional(state.deployment.commit_sha.as_deref()),
        commit_link: state
            .deployment
            .commit_sha
            .as_deref()
            .map(commit_link)
            .unwrap_or_default(),
        changed_files: state.changed_files.clone(),
        server_group: group.to_string(),
        host: host.to_string(),
        ticks,
        transitions: transition_rows(transitions, now),
        history: history.into_iter().map(history_row).collect(),
        history_info,
        previous_link,
        next_link,
    };
    super::html(template.render())
}
