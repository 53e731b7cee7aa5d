//! The audit trail: `GET /history` and `GET /status/{server_group}/{host}/history`, one row
//! per accepted report, newest first.

use actix_web::{get, web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

use crate::domain::{AnyOf, HistoryEntry, HistoryFilter, Pattern, ReportKind};

use super::auth::Reader;
use super::body::{GroupName, Name};
use super::error::{ApiError, ErrorBody, ReadAuthErrors};
use super::params::{kinds_schema, statuses_schema, whole, Problems};
use super::status::{parse_group, parse_host, SyncStatus};
use super::{both, AppContext};

pub use super::params::{DEFAULT_LIMIT, MAX_LIMIT};

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
    /// Which canonical text of the row `hash` covers (README, Tamper-evident history).
    #[schema(minimum = 1)]
    pub chain_format: i64,
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
            chain_format: e.chain_format,
        })
    }
}

/// Filters and paging shared by both history endpoints. Values are read as text and
/// validated here, so every bad parameter is named in one 422. An empty value (`?kind=`) is
/// the same as leaving the parameter out, as Grafana sends for an empty variable; `kind` and
/// `status` take several comma-separated values.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Only rows of these kinds (comma-separated): reports through `POST /status/pipeline`
    /// (`pipeline`), `/status/cron` (`cron`) or `/api/status` (`legacy`), or the service's
    /// own events (`decommission`, `import`, `retention`).
    #[param(schema_with = kinds_schema, example = "pipeline,cron")]
    kind: Option<String>,
    /// Only reports with one of these statuses (comma-separated; v1 or v2 spelling, any case).
    #[param(schema_with = statuses_schema, example = "out_of_sync,failed")]
    status: Option<String>,
    /// Only reports received at or after this instant: RFC 3339 (URL-encode a `+` offset as
    /// `%2B`), or milliseconds since the epoch as Grafana's `${__from}` sends.
    #[param(schema_with = instant_schema, example = "2026-04-26T00:00:00Z")]
    from: Option<String>,
    /// Only reports received at or before this instant (same forms as `from`). A `to` before
    /// `from` selects nothing.
    #[param(schema_with = instant_schema, example = "1777248000000")]
    to: Option<String>,
    /// Rows per page, 1–1000 (default 100).
    #[param(schema_with = limit_schema)]
    limit: Option<String>,
    /// Rows to skip (offset paging). Past the end: []. With `envelope=true` every page skips
    /// them again after its `before`: leave it out when paging by cursor.
    #[param(schema_with = offset_schema)]
    offset: Option<String>,
    /// Only reports with an id below this one (keyset paging: pass the last id you got, or
    /// `next_before` of the envelope).
    #[param(schema_with = before_schema)]
    before: Option<String>,
    /// `true`: answer `{"rows": [...], "next_before": id or null}` for cursor paging
    /// (Grafana Infinity's cursor mode); otherwise the plain array.
    #[param(value_type = Option<String>, pattern = "^(true|false)?$", example = "true")]
    envelope: Option<String>,
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

pub(super) fn limit_schema() -> utoipa::openapi::schema::Schema {
    whole_or_empty(1, Some(i64::from(MAX_LIMIT)))
}

fn offset_schema() -> utoipa::openapi::schema::Schema {
    whole_or_empty(0, Some(i64::MAX))
}

pub(super) fn before_schema() -> utoipa::openapi::schema::Schema {
    whole_or_empty(1, Some(i64::MAX))
}

/// An instant in a query: RFC 3339, or epoch milliseconds (up to 13 digits, the year 2286).
pub(super) fn instant_schema() -> utoipa::openapi::schema::Schema {
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
    /// kind, status, from, to, limit, offset, before, envelope, in that order.
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
            envelope: value(7),
        }
    }
}

/// The `server_group` and `host` filters of `GET /history`.
#[derive(Debug, Deserialize)]
pub struct HostFilter {
    server_group: Option<String>,
    host: Option<String>,
}

/// The filter the query asks for (the caller adds server_group and host), and whether the
/// answer is the envelope.
#[cfg(test)]
pub(super) fn filter(query: &HistoryQuery) -> Result<HistoryFilter, ApiError> {
    let mut p = Problems::default();
    let filter = parse(&mut p, query);
    p.finish()?;
    Ok(filter)
}

fn parse(p: &mut Problems, query: &HistoryQuery) -> HistoryFilter {
    HistoryFilter {
        server_group: AnyOf::default(),
        host: AnyOf::default(),
        kind: p.kinds("kind", &query.kind),
        status: p.statuses("status", &query.status),
        from: p.instant("from", &query.from),
        to: p.instant("to", &query.to),
        limit: p.limit(&query.limit),
        offset: p
            .one(
                "offset",
                &query.offset,
                whole(
                    0..=9_223_372_036_854_775_807_u64,
                    "a whole number from 0 to 9223372036854775807",
                ),
            )
            .unwrap_or(0),
        before: p.before(&query.before),
    }
}

/// The plain array, or the page with its cursor when `envelope=true`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum HistoryAnswer {
    Rows(Vec<HistoryRow>),
    Page(HistoryPage),
}

/// A page of rows and the cursor of the next one, for Grafana Infinity's cursor paging
/// (size parameter `limit`, cursor parameter `before`, extraction path `next_before`, root
/// selector `rows`).
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryPage {
    pub rows: Vec<HistoryRow>,
    /// The `before` of the next page; null on the last page.
    #[schema(required = true)]
    pub next_before: Option<i64>,
}

async fn respond(
    ctx: &AppContext,
    mut filter: HistoryFilter,
    envelope: bool,
) -> Result<HttpResponse, ApiError> {
    // One row more than asked tells whether another page follows.
    let limit = filter.limit;
    if envelope {
        filter.limit += 1;
    }
    let mut entries = ctx.store.history(&filter).await?;
    let more = entries.len() > limit as usize;
    entries.truncate(limit as usize);
    let rows = entries
        .into_iter()
        .map(HistoryRow::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    let answer = if envelope {
        let next_before = if more {
            rows.last().map(|r| r.id)
        } else {
            None
        };
        HistoryAnswer::Page(HistoryPage { rows, next_before })
    } else {
        HistoryAnswer::Rows(rows)
    };
    Ok(HttpResponse::Ok().json(answer))
}

/// Whether `envelope=true` was asked.
pub(super) fn envelope(p: &mut Problems, text: &Option<String>) -> bool {
    p.one("envelope", text, |text| match text {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("must be true or false; got {other:?}")),
    })
    .unwrap_or(false)
}

/// The audit trail: every accepted report, newest first.
///
/// Page with `limit` and `offset` (a page past the end is 200 with `[]`), or with `before`
/// set to the smallest id of the previous page. `from`/`to` bound `received_at`.
#[utoipa::path(
    security((), ("bearer" = ["read"])),
    tag = "history",
    params(
        ("server_group" = Option<String>, Query, description = "Only these server groups: comma-separated names or `*` globs (empty or `*`: all)",
         pattern = "^[A-Za-z0-9._*,-]*$", max_length = 1024, example = "rsyslog-*"),
        ("host" = Option<String>, Query, description = "Only these hosts: comma-separated names or `*` globs (empty or `*`: all)",
         pattern = "^[A-Za-z0-9._*,-]*$", max_length = 1024, example = "rsyslog-01"),
        HistoryQuery,
    ),
    responses(
        ReadAuthErrors,
        (status = 200, description = "Matching reports, newest first (with `envelope=true`: a `HistoryPage`)", body = HistoryAnswer),
        (status = 400, description = "The query string cannot be read, or names a parameter this endpoint does not take", body = ErrorBody, example = super::error::examples::bad_query),
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
    let mut p = Problems::default();
    let filter = HistoryFilter {
        server_group: p.names("server_group", &hosts.server_group),
        host: p.names("host", &hosts.host),
        ..parse(&mut p, &query)
    };
    let envelope = envelope(&mut p, &query.envelope);
    p.finish()?;
    respond(&ctx, filter, envelope).await
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
        (status = 200, description = "The host's reports, newest first (with `envelope=true`: a `HistoryPage`)", body = HistoryAnswer),
        (status = 400, description = "The query string cannot be read, or names a parameter this endpoint does not take", body = ErrorBody, example = super::error::examples::bad_query),
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
    let mut p = Problems::default();
    let filter = parse(&mut p, &query);
    let envelope = envelope(&mut p, &query.envelope);
    let ((group, host), ()) = both(both(parse_group(&group), parse_host(&host)), p.finish())?;
    let one = |name: &str| Pattern::parse(name).map(|p| AnyOf(vec![p]));
    let (Ok(server_group), Ok(host)) = (one(group.as_str()), one(host.as_str())) else {
        return Err(ApiError::field("(path)", "a name is empty"));
    };
    respond(
        &ctx,
        HistoryFilter {
            server_group,
            host,
            ..filter
        },
        envelope,
    )
    .await
}
