//! Operations on the whole service, for a token with the `admin` scope (open only without a
//! token file): `POST /admin/prune` runs retention now, `GET /admin/backup` streams a
//! consistent copy of the database.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::http::header::{self, ContentEncoding};
use actix_web::{get, post, web, HttpMessage as _, HttpResponse};
use serde::Serialize;
use tokio::sync::mpsc;
use utoipa::ToSchema;

use super::auth::Admin;
use super::error::{AdminAuthErrors, ApiError, ErrorBody};
use super::AppContext;

/// The retention policy the server runs with.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "retain_reports": "30d", "retain_changes": "400d", "retain_per_host": 100,
    "prune_interval": "10m"
}))]
pub struct RetentionPolicyView {
    /// `--retain-reports`: routine reports older than this are removed (`off`: never).
    pub retain_reports: String,
    /// `--retain-changes`: reports that changed something are kept this long (`off`: forever).
    pub retain_changes: String,
    /// `--retain-per-host`: the newest this many reports of every host are always kept.
    pub retain_per_host: u32,
    /// `--prune-interval`: how often retention runs.
    pub prune_interval: String,
}

impl RetentionPolicyView {
    pub fn of(ctx: &AppContext) -> Self {
        let policy = ctx.pruner.policy();
        RetentionPolicyView {
            retain_reports: policy.reports_text(),
            retain_changes: policy.changes_text(),
            retain_per_host: policy.per_host,
            prune_interval: ctx.pruner.interval().to_string(),
        }
    }
}

/// What a retention pass did.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "scanned": 120000, "removed": 98500, "retention_rows": 394, "interrupted": false,
    "policy": {"retain_reports": "30d", "retain_changes": "400d", "retain_per_host": 100,
               "prune_interval": "10m"}
}))]
pub struct PruneResult {
    /// History rows the pass read.
    pub scanned: u64,
    /// Rows it removed.
    pub removed: u64,
    /// Retention rows it appended to the history (one per transaction, each listing what
    /// that transaction removed; `GET /history?kind=retention`).
    pub retention_rows: u64,
    /// The pass stopped early because the server is shutting down.
    pub interrupted: bool,
    pub policy: RetentionPolicyView,
}

/// Run retention now.
///
/// Runs one pruning pass with the server's policy (after the one in progress, if any) and
/// answers when it is done. The background pass runs shortly after start and every
/// `--prune-interval` anyway; this is for after changing the policy, or before a backup.
#[utoipa::path(
    security(("bearer" = ["admin"])),
    tag = "admin",
    responses(
        (status = 200, description = "The pass is done", body = PruneResult),
        AdminAuthErrors,
        (status = 503, description = "The database cannot be written now", body = ErrorBody, example = super::error::examples::overloaded),
    )
)]
#[post("/admin/prune")]
pub async fn prune(ctx: web::Data<AppContext>, admin: Admin) -> Result<HttpResponse, ApiError> {
    tracing::info!(principal = ?admin.principal, "retention pass requested");
    let summary = ctx.pruner.run_now().await?;
    Ok(HttpResponse::Ok().json(PruneResult {
        scanned: summary.scanned,
        removed: summary.removed,
        retention_rows: summary.records,
        interrupted: summary.interrupted,
        policy: RetentionPolicyView::of(&ctx),
    }))
}

/// A SQLite database file.
#[allow(dead_code)] // documents the response body
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct DatabaseFile(Vec<u8>);

/// A database copy on its way to the client: its exact size up front, then its pages.
struct Pages {
    size: u64,
    sent: u64,
    chunks: mpsc::Receiver<Vec<u8>>,
}

impl MessageBody for Pages {
    type Error = std::io::Error;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.size)
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<web::Bytes, Self::Error>>> {
        match self.chunks.poll_recv(cx) {
            Poll::Ready(Some(chunk)) => {
                self.sent += chunk.len() as u64;
                Poll::Ready(Some(Ok(web::Bytes::from(chunk))))
            }
            // The copy failed part-way: the connection is cut short of Content-Length, so the
            // client (curl -f) sees an incomplete transfer, never a short file that looks whole.
            Poll::Ready(None) if self.sent < self.size => Poll::Ready(Some(Err(
                std::io::Error::other("the backup failed part-way; the copy is incomplete"),
            ))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Download a consistent copy of the database.
///
/// Streams the database as one SQLite file, as of the moment the request arrived, while
/// reports keep being written (the server reads one snapshot; its WAL grows until the copy
/// ends). The copy is as large as the database file: every page, free ones included, about
/// 550 bytes per drift check and 1.2 KB per deployment report kept (the README's sizing
/// table: 1.2 GiB for 100 hosts on a 2-minute cron under the default retention).
/// `Content-Length` gives the exact size before the first byte; a copy cut short fails the
/// transfer. It passes `gitops-status verify`; the README has the restore procedure. For a
/// Kubernetes CronJob: `curl -fsS -H "Authorization: Bearer $TOKEN" -o backup.db …/admin/backup`.
#[utoipa::path(
    security(("bearer" = ["admin"])),
    tag = "admin",
    responses(
        (status = 200, description = "The database file (Content-Length: its size in bytes)",
         content_type = "application/vnd.sqlite3", body = DatabaseFile,
         headers(("Content-Disposition" = String, description = "attachment; filename=\"gitops-status-<time>.db\""))),
        AdminAuthErrors,
        (status = 501, description = "The server runs on PostgreSQL, whose backups are pg_dump's", body = ErrorBody, example = super::error::examples::backup_on_postgres),
        (status = 503, description = "The database cannot be read now", body = ErrorBody, example = super::error::examples::not_ready),
    )
)]
#[get("/admin/backup")]
pub async fn backup(
    ctx: web::Data<AppContext>,
    admin: Admin,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let at = ctx.clock.now().to_string().replace([':', '.'], "-");
    let disposition = format!("attachment; filename=\"gitops-status-{at}.db\"");
    if req.extensions().get::<super::middleware::Head>().is_some() {
        // HEAD: the headers without taking a copy (its size is known only by taking one).
        return Ok(HttpResponse::Ok()
            .content_type("application/vnd.sqlite3")
            .insert_header((header::CONTENT_DISPOSITION, disposition))
            .body(actix_web::body::None::new()));
    }
    let copy = ctx.store.backup().await?;
    tracing::info!(principal = ?admin.principal, bytes = copy.size, "backup streaming");
    Ok(HttpResponse::Ok()
        .content_type("application/vnd.sqlite3")
        .insert_header((header::CONTENT_DISPOSITION, disposition))
        // Sent as is: the Compress middleware leaves a response with an encoding alone.
        .insert_header(ContentEncoding::Identity)
        .body(Pages {
            size: copy.size,
            sent: 0,
            chunks: copy.chunks,
        }))
}
