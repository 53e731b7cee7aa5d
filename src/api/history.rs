//! The audit trail: `GET /history` and `GET /status/{server_group}/{host}/history`, one row
//! per accepted report, newest first.

use actix_web::{get, web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

use crate::domain::{HistoryEntry, HistoryFilter, ReportKind, Status, Timestamp};

use super::auth::Reader;
use super::body::{GroupName, Name};
use super::error::{ApiError, ErrorBody, FieldProblem, ReadAuthErrors};
use super::status::{parse_group, parse_host, SyncStatus};
use super::{both, non_empty, AppContext};

/// Rows per page when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 100;
/// The largest `limit` accepted.
pub const MAX_LIMIT: u32 = 1000;

/// What the row is: a report through `POST /status/pipeline` (`pipeline`), `/status/cron`
/// (`cron`) or `/api/status` (`legacy`), or an event: a host decommissioned
/// (`decommission`), imported from an old server's file (`import`), or a pruning pass
/// (`retention`, which belongs to no host).
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Pipeline,
    Cron,
    Legacy,
    Decommission,
    Import,
    Retention,
}

impl From<ReportKind> for Kind {
    fn from(kind: ReportKind) -> Self {
        match kind {
            ReportKind::Pipeline => Kind::Pipeline,
            ReportKind::Cron => Kind::Cron,
            ReportKind::Legacy => Kind::Legacy,
            ReportKind::Decommission => Kind::Decommission,
            ReportKind::Import => Kind::Import,
            ReportKind::Retention => Kind::Retention,
        }
    }
}

/// One accepted report. Members the report did not carry are null; every row has every member.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 42,
    "received_at": "2026-04-26T11:00:00.412Z",
    "kind": "cron",
    "server_group": "rsyslog-prod",
    "host": "rsyslog-01",
    "status": "out_of_sync",
    "changed_files_count": 2,
    "changed_files": ["/etc/rsyslog.conf", "/etc/rsyslog.d/50-default.conf"],
    "project_name": null,
    "repo_name": null,
    "server_type": null,
    "environment": null,
    "validation_status": null,
    "validation_message": null,
    "commit_sha": null,
    "branch": null,
    "updated_by": null,
    "last_pipeline_run": null,
    "last_cron_check": "2026-04-26T11:00:00.000Z",
    "drift_count": null,
    "observed_at": "2026-04-26T11:00:00.000Z",
    "principal": "rsyslog-cron",
    "client_addr": "10.42.0.17",
    "forwarded_for": null,
    "user_agent": "curl/8.5.0",
    "raw_body": {
        "server_group": "rsyslog-prod",
        "host": "rsyslog-01",
        "status": "out_of_sync",
        "changed_files": ["/etc/rsyslog.conf", "/etc/rsyslog.d/50-default.conf"],
        "last_cron_check": "2026-04-26T11:00:00Z"
    },
    "prev_hash": "3b1f8e2c5d7a9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081",
    "hash": "9c2e4a6b8d0f1e3c5a7b9d1f3e5c7a9b1d3f5e7c9a1b3d5f7e9c1a3b5d7f9e1c"
}))]
pub struct HistoryRow {
    /// The report's id: increasing in the order reports were accepted.
    pub id: i64,
    /// When the server accepted the report (its own clock).
    #[schema(format = DateTime)]
    pub received_at: String,
    pub kind: Kind,
    /// Null only for retention rows, which belong to no host.
    #[schema(required = true)]
    pub server_group: Option<String>,
    #[schema(required = true)]
    pub host: Option<String>,
    /// Null for a cron report without a status.
    #[schema(required = true)]
    pub status: Option<SyncStatus>,
    /// The length of `changed_files`, null when the report carried none.
    #[schema(required = true)]
    pub changed_files_count: Option<usize>,
    /// As sent (v1 `files` become plain paths); null when the report carried none.
    #[schema(required = true)]
    pub changed_files: Option<Vec<String>>,
    #[schema(required = true)]
    pub project_name: Option<String>,
    #[schema(required = true)]
    pub repo_name: Option<String>,
    #[schema(required = true)]
    pub server_type: Option<String>,
    #[schema(required = true)]
    pub environment: Option<String>,
    #[schema(required = true)]
    pub validation_status: Option<String>,
    #[schema(required = true)]
    pub validation_message: Option<String>,
    #[schema(required = true)]
    pub commit_sha: Option<String>,
    #[schema(required = true)]
    pub branch: Option<String>,
    #[schema(required = true)]
    pub updated_by: Option<String>,
    /// The client's `last_pipeline_run`, null when it sent none.
    #[schema(required = true, format = DateTime)]
    pub last_pipeline_run: Option<String>,
    /// The client's `last_cron_check` (v1: `last_check`), null when it sent none.
    #[schema(required = true, format = DateTime)]
    pub last_cron_check: Option<String>,
    /// v1 only: the drift_count the client sent.
    #[schema(required = true)]
    pub drift_count: Option<i64>,
    /// The report's own time, or `received_at` when the client sent none; the current state
    /// follows the newest observed_at.
    #[schema(format = DateTime)]
    pub observed_at: String,
    /// The name of the token that authorised the write (who wrote this); null without tokens.
    #[schema(required = true)]
    pub principal: Option<String>,
    /// The TCP peer that sent the report.
    #[schema(required = true)]
    pub client_addr: Option<String>,
    /// The X-Forwarded-For header, as sent (set by proxies; not verified).
    #[schema(required = true)]
    pub forwarded_for: Option<String>,
    #[schema(required = true)]
    pub user_agent: Option<String>,
    /// The request body exactly as received, including members the API does not know.
    #[schema(value_type = Object)]
    pub raw_body: Box<RawValue>,
    /// The audit chain: the hash of the row before this one (64 zeros before the first).
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub prev_hash: String,
    /// sha256(prev_hash ‖ canonical content) in lower-case hex (README, Security).
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub hash: String,
}

impl TryFrom<HistoryEntry> for HistoryRow {
    type Error = ApiError;

    fn try_from(e: HistoryEntry) -> Result<Self, ApiError> {
        let raw_body = RawValue::from_string(e.raw_body).map_err(ApiError::internal)?;
        let d = e.deployment;
        Ok(HistoryRow {
            id: e.id,
            received_at: e.received_at.to_string(),
            kind: e.kind.into(),
            server_group: e.server_group.map(|g| g.to_string()),
            host: e.host.map(|h| h.to_string()),
            status: e.status.map(SyncStatus::from),
            changed_files_count: e.changed_files.as_ref().map(Vec::len),
            changed_files: e.changed_files,
            project_name: d.project_name,
            repo_name: d.repo_name,
            server_type: d.server_type,
            environment: d.environment,
            validation_status: d.validation_status,
            validation_message: d.validation_message,
            commit_sha: d.commit_sha,
            branch: d.branch,
            updated_by: d.updated_by,
            last_pipeline_run: e.last_pipeline_run.map(|t| t.to_string()),
            last_cron_check: e.last_cron_check.map(|t| t.to_string()),
            drift_count: e.drift_count,
            observed_at: e.observed_at.to_string(),
            principal: e.principal,
            client_addr: e.client_addr,
            forwarded_for: e.forwarded_for,
            user_agent: e.user_agent,
            raw_body,
            prev_hash: e.prev_hash,
            hash: e.hash,
        })
    }
}

/// Filters and paging shared by both history endpoints. Values are read as text and
/// validated here, so every bad parameter is named in one 422. An empty value (`?kind=`) is
/// the same as leaving the parameter out, as Grafana sends for an empty variable.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Only rows of this kind: reports through `POST /status/pipeline` (`pipeline`),
    /// `/status/cron` (`cron`) or `/api/status` (`legacy`), or the service's own events
    /// (`decommission`, `import`, `retention`).
    #[param(
        value_type = Option<String>,
        pattern = "^(pipeline|cron|legacy|decommission|import|retention)?$"
    )]
    kind: Option<String>,
    /// Only reports with this status (v1 or v2 spelling, any case).
    #[param(
        value_type = Option<String>,
        pattern = "^([sS][yY][nN][cC][eE][dD]|[oO][uU][tT]_[oO][fF]_[sS][yY][nN][cC]|[fF][aA][iI][lL][eE][dD]|[uU][nN][kK][nN][oO][wW][nN])?$"
    )]
    status: Option<String>,
    /// Only reports received at or after this instant: RFC 3339 (URL-encode a `+` offset as
    /// `%2B`), or milliseconds since the epoch as Grafana's `${__timeFrom}` sends.
    #[param(schema_with = instant_schema, example = "2026-04-26T00:00:00Z")]
    from: Option<String>,
    /// Only reports received at or before this instant (same forms as `from`). A `to` before
    /// `from` selects nothing.
    #[param(schema_with = instant_schema, example = "1777248000000")]
    to: Option<String>,
    /// Rows per page, 1–1000 (default 100).
    #[param(schema_with = limit_schema)]
    limit: Option<String>,
    /// Rows to skip (offset paging, as Grafana Infinity does it). Past the end: [].
    #[param(schema_with = offset_schema)]
    offset: Option<String>,
    /// Only reports with an id below this one (keyset paging: pass the last id you got).
    #[param(schema_with = before_schema)]
    before: Option<String>,
}

/// A whole number in `minimum..=maximum`, or empty (the same as leaving it out).
fn whole_or_empty(minimum: i64, maximum: Option<i64>) -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Type};
    AnyOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(utoipa::openapi::schema::SchemaFormat::KnownFormat(
                    utoipa::openapi::schema::KnownFormat::Int64,
                )))
                .minimum(Some(minimum))
                .maximum(maximum),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(0)),
        )
        .into()
}

fn limit_schema() -> utoipa::openapi::schema::Schema {
    whole_or_empty(1, Some(i64::from(MAX_LIMIT)))
}

fn offset_schema() -> utoipa::openapi::schema::Schema {
    whole_or_empty(0, Some(i64::MAX))
}

fn before_schema() -> utoipa::openapi::schema::Schema {
    whole_or_empty(1, Some(i64::MAX))
}

/// An instant in a query: RFC 3339, or epoch milliseconds (up to 13 digits, the year 2286).
fn instant_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
    AnyOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[0-9]{0,13}$")),
        )
        .into()
}

#[cfg(test)]
impl HistoryQuery {
    /// kind, status, from, to, limit, offset, before, in that order.
    pub(super) fn from_values(values: &[Option<String>]) -> Self {
        let value = |i: usize| values.get(i).cloned().flatten();
        HistoryQuery {
            kind: value(0),
            status: value(1),
            from: value(2),
            to: value(3),
            limit: value(4),
            offset: value(5),
            before: value(6),
        }
    }
}

/// The `server_group` and `host` filters of `GET /history`.
#[derive(Debug, Deserialize)]
pub struct HostFilter {
    server_group: Option<String>,
    host: Option<String>,
}

/// Parses an optional parameter, recording the problem under its name.
fn param<T>(
    problems: &mut Vec<FieldProblem>,
    name: &str,
    text: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    match parse(text?) {
        Ok(value) => Some(value),
        Err(problem) => {
            problems.push(FieldProblem::new(name, problem));
            None
        }
    }
}

/// A whole number in `range`, described as `expected` in the error.
fn whole<'a, T, R>(range: R, expected: &'a str) -> impl FnOnce(&str) -> Result<T, String> + 'a
where
    T: std::str::FromStr + PartialOrd,
    R: std::ops::RangeBounds<T> + 'a,
{
    move |text| match text.parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!("must be {expected}; got {text:?}")),
    }
}

/// The filter the query asks for; the caller adds server_group and host.
pub(super) fn filter(query: &HistoryQuery) -> Result<HistoryFilter, ApiError> {
    let mut problems = Vec::new();
    let p = &mut problems;
    let kind = param(p, "kind", non_empty(&query.kind), ReportKind::parse);
    let status = param(p, "status", non_empty(&query.status), Status::parse);
    let from = param(p, "from", non_empty(&query.from), Timestamp::parse_query);
    let to = param(p, "to", non_empty(&query.to), Timestamp::parse_query);
    let limit = param(
        p,
        "limit",
        non_empty(&query.limit),
        whole(1..=MAX_LIMIT, "a whole number from 1 to 1000"),
    );
    let offset = param(
        p,
        "offset",
        non_empty(&query.offset),
        whole(
            0..=9_223_372_036_854_775_807_u64,
            "a whole number from 0 to 9223372036854775807",
        ),
    );
    let before = param(
        p,
        "before",
        non_empty(&query.before),
        whole(1.., "a report id (a whole number from 1)"),
    );
    if !problems.is_empty() {
        return Err(ApiError::Unprocessable(problems));
    }
    Ok(HistoryFilter {
        server_group: None,
        host: None,
        kind,
        status,
        from,
        to,
        before,
        limit: limit.unwrap_or(DEFAULT_LIMIT),
        offset: offset.unwrap_or(0),
    })
}

async fn respond(ctx: &AppContext, filter: HistoryFilter) -> Result<HttpResponse, ApiError> {
    let entries = ctx.store.history(&filter).await?;
    let rows = entries
        .into_iter()
        .map(HistoryRow::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(rows))
}

/// The audit trail: every accepted report, newest first.
///
/// Page with `limit` and `offset` (a page past the end is 200 with `[]`), or with `before`
/// set to the smallest id of the previous page. `from`/`to` bound `received_at`.
#[utoipa::path(
    security((), ("bearer" = ["read"])),
    tag = "history",
    params(
        ("server_group" = Option<String>, Query, description = "Only this server group (empty: all)",
         pattern = r"^$|^(?!(\.{1,2}|pipeline|cron)$)[A-Za-z0-9._-]{1,128}$"),
        ("host" = Option<String>, Query, description = "Only this host name (empty: all)",
         pattern = r"^$|^(?!\.{1,2}$)[A-Za-z0-9._-]{1,128}$"),
        HistoryQuery,
    ),
    responses(
        ReadAuthErrors,
        (status = 200, description = "Matching reports, newest first", body = Vec<HistoryRow>),
        (status = 400, description = "The query string cannot be read", body = ErrorBody, example = super::error::examples::bad_query),
        (status = 422, description = "Invalid parameters; `details` names each", body = ErrorBody, example = super::error::examples::invalid_query),
        (status = 500, description = "Database failure", body = ErrorBody, example = super::error::examples::internal),
    )
)]
#[get("/history")]
pub async fn history(
    ctx: web::Data<AppContext>,
    _reader: Reader,
    hosts: web::Query<HostFilter>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let group = non_empty(&hosts.server_group).map(parse_group).transpose();
    let host = non_empty(&hosts.host).map(parse_host).transpose();
    let ((server_group, host), filter) = both(both(group, host), filter(&query))?;
    respond(
        &ctx,
        HistoryFilter {
            server_group,
            host,
            ..filter
        },
    )
    .await
}

/// The audit trail of one host, newest first (the same parameters as `GET /history`).
///
/// An unknown host gives `[]`, as its history is empty.
#[utoipa::path(
    security((), ("bearer" = ["read"])),
    tag = "history",
    params(
        ("server_group" = GroupName, Path, example = "rsyslog-prod"),
        ("host" = Name, Path, example = "rsyslog-01"),
        HistoryQuery,
    ),
    responses(
        ReadAuthErrors,
        (status = 200, description = "The host's reports, newest first", body = Vec<HistoryRow>),
        (status = 400, description = "The query string cannot be read", body = ErrorBody, example = super::error::examples::bad_query),
        (status = 422, description = "Invalid parameters; `details` names each", body = ErrorBody, example = super::error::examples::invalid_query),
        (status = 500, description = "Database failure", body = ErrorBody, example = super::error::examples::internal),
    )
)]
#[get("/status/{server_group}/{host}/history")]
pub async fn host_history(
    ctx: web::Data<AppContext>,
    _reader: Reader,
    path: web::Path<(String, String)>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let (group, host) = path.into_inner();
    let ((group, host), filter) =
        both(both(parse_group(&group), parse_host(&host)), filter(&query))?;
    respond(
        &ctx,
        HistoryFilter {
            server_group: Some(group),
            host: Some(host),
            ..filter
        },
    )
    .await
}
