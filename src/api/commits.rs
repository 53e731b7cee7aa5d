//! Rollouts: `GET /commits` (every commit the groups' pipelines reported, and how far it has
//! converged) and `GET /commits/{commit_sha}` (which hosts run it, and which do not yet).

use actix_web::{get, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::{Rollout, RolloutFilter, RolloutHost};

use super::auth::Reader;
use super::error::{ApiError, ErrorBody, ReadAuthErrors};
use super::params::{names_schema, text_schema, Problems};
use super::status::SyncStatus;
use super::AppContext;

/// One commit in one server group.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "server_group": "rsyslog-prod", "commit_sha": "abc1234567890", "branch": "master",
    "first_reported": "2026-04-26T10:30:00.412Z", "last_reported": "2026-04-26T10:34:10.020Z",
    "hosts_on_commit": 11, "hosts_in_group": 12, "converged": false, "hosts_failed": 1
}))]
pub struct CommitRow {
    pub server_group: String,
    pub commit_sha: String,
    /// The branch of its newest pipeline report in the group.
    #[schema(required = true)]
    pub branch: Option<String>,
    /// When the server received the first pipeline report of it in the group.
    #[schema(format = DateTime)]
    pub first_reported: String,
    /// When the server received the newest one (rows are ordered by this, newest first).
    #[schema(format = DateTime)]
    pub last_reported: String,
    /// Hosts of the group whose current commit it is.
    pub hosts_on_commit: u64,
    pub hosts_in_group: u64,
    /// Every host of the group is on it.
    pub converged: bool,
    /// Hosts on it whose status is failed.
    pub hosts_failed: u64,
}

impl From<Rollout> for CommitRow {
    fn from(r: Rollout) -> Self {
        CommitRow {
            converged: r.converged(),
            server_group: r.server_group.to_string(),
            commit_sha: r.commit_sha,
            branch: r.branch,
            first_reported: r.first_reported.to_string(),
            last_reported: r.last_reported.to_string(),
            hosts_on_commit: r.hosts_on_commit,
            hosts_in_group: r.hosts_in_group,
            hosts_failed: r.hosts_failed,
        }
    }
}

/// The filters of `GET /commits`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CommitsQuery {
    /// Server group names or `*` globs, comma-separated.
    #[param(schema_with = names_schema, example = "rsyslog-*")]
    server_group: Option<String>,
    /// Commits or `*` globs (`abc123*`), comma-separated.
    #[param(schema_with = text_schema, example = "abc1234567890")]
    commit_sha: Option<String>,
    /// Only commits last reported at or after this instant (RFC 3339 or epoch milliseconds).
    #[param(schema_with = super::history::instant_schema, example = "2026-04-26T00:00:00Z")]
    from: Option<String>,
    /// Only commits last reported at or before this instant.
    #[param(schema_with = super::history::instant_schema, example = "1777248000000")]
    to: Option<String>,
    /// Rows, 1–1000 (default 100).
    #[param(schema_with = super::history::limit_schema)]
    limit: Option<String>,
}

/// Every commit the groups' pipelines reported, newest report first, with its rollout.
#[utoipa::path(
    security((), ("bearer" = ["read"])),
    tag = "fleet",
    params(CommitsQuery),
    responses(
        ReadAuthErrors,
        (status = 200, description = "One row per (server_group, commit_sha)", body = Vec<CommitRow>),
        (status = 400, description = "A query parameter this endpoint does not take", body = ErrorBody, example = super::error::examples::unknown_parameter),
        (status = 422, description = "Invalid parameters; `details` names each", body = ErrorBody, example = super::error::examples::invalid_query),
        (status = 500, description = "Database failure", body = ErrorBody, example = super::error::examples::internal),
    )
)]
#[get("/commits")]
pub async fn commits(
    ctx: web::Data<AppContext>,
    _reader: Reader,
    query: web::Query<CommitsQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut p = Problems::default();
    let filter = RolloutFilter {
        server_group: p.names("server_group", &query.server_group),
        commit_sha: p.patterns("commit_sha", &query.commit_sha),
        from: p.instant("from", &query.from),
        to: p.instant("to", &query.to),
        limit: p.limit(&query.limit),
    };
    p.finish()?;
    let rows: Vec<CommitRow> = ctx
        .store
        .rollouts(&filter)
        .await?
        .into_iter()
        .map(CommitRow::from)
        .collect();
    Ok(HttpResponse::Ok().json(rows))
}

/// A host of a group that reported the commit.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "server_group": "rsyslog-prod", "host": "rsyslog-01", "current_commit_sha": "abc1234567890",
    "on_commit": true, "status": "synced", "since": "2026-04-26T10:30:00.000Z"
}))]
pub struct CommitHostRow {
    pub server_group: String,
    pub host: String,
    /// The commit the host runs now (null: no pipeline report yet).
    #[schema(required = true)]
    pub current_commit_sha: Option<String>,
    /// Whether that is the commit asked for.
    pub on_commit: bool,
    pub status: SyncStatus,
    /// When its current commit was first reported deployed on it.
    #[schema(required = true, format = DateTime)]
    pub since: Option<String>,
}

impl CommitHostRow {
    fn of(host: RolloutHost, commit_sha: &str) -> Self {
        CommitHostRow {
            on_commit: host.current_commit_sha.as_deref() == Some(commit_sha),
            server_group: host.server_group.to_string(),
            host: host.host.to_string(),
            current_commit_sha: host.current_commit_sha,
            status: host.status.into(),
            since: host.since.map(|t| t.to_string()),
        }
    }
}

/// The hosts of every group whose pipelines reported this commit, by group and host: which
/// run it and which do not yet. A commit nobody reported gives [].
#[utoipa::path(
    security((), ("bearer" = ["read"])),
    tag = "fleet",
    params(("commit_sha" = String, Path, description = "The full commit, as the pipelines sent it", example = "abc1234567890")),
    responses(
        ReadAuthErrors,
        (status = 200, description = "The hosts of the groups that reported it", body = Vec<CommitHostRow>),
        (status = 400, description = "A query parameter this endpoint does not take", body = ErrorBody, example = super::error::examples::unknown_parameter),
        (status = 500, description = "Database failure", body = ErrorBody, example = super::error::examples::internal),
    )
)]
#[get("/commits/{commit_sha}")]
pub async fn commit_hosts(
    ctx: web::Data<AppContext>,
    _reader: Reader,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let commit_sha = path.into_inner();
    let rows: Vec<CommitHostRow> = ctx
        .store
        .rollout_hosts(&commit_sha)
        .await?
        .into_iter()
        .map(|host| CommitHostRow::of(host, &commit_sha))
        .collect();
    Ok(HttpResponse::Ok().json(rows))
}
