//! `DELETE /status/{server_group}/{host}`: a host leaves the fleet. The decommission is a
//! report of its own in the history (who, why, from where); the host is gone from the
//! current state, and a later pipeline or v1 report creates it anew.

use actix_web::{delete, web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{Observation, Report};
use crate::store::StoreError;

use super::auth::Caller;
use super::body::{Fields, GroupName, JsonObject, Name, OptionalJsonObject};
use super::error::{ApiError, ErrorBody, ReportErrors};
use super::status::{parse_group, parse_host};
use super::{both, request_meta, AppContext};

/// The longest `reason`, in characters.
pub const MAX_REASON_LEN: usize = 1024;

/// Why the host leaves; optional, like the body itself. Other members are kept in the
/// history's raw body.
#[allow(dead_code)] // documents the body; the handler reads it from the JSON object
#[derive(ToSchema)]
#[schema(example = json!({"reason": "replaced by rsyslog-05 (CHG-1234)"}))]
pub struct DecommissionBody {
    #[schema(max_length = 1024)]
    reason: Option<String>,
}

/// The answer to a decommission.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "success": true,
    "message": "host rsyslog-prod/rsyslog-01 decommissioned; its history stays",
    "report_id": 4711
}))]
pub struct Decommissioned {
    /// Always true.
    pub success: bool,
    pub message: String,
    /// The id of the decommission's row in the history.
    pub report_id: i64,
}

/// Decommission a host: remove it from the current state, keep its history.
///
/// Appends a report of kind `decommission` (the token's name, the optional `reason`, the
/// client's address) and removes the host from `GET /status`, `/status.json`,
/// `/status/{server_group}` and `GET /api/status`; `GET /status/{server_group}/{host}` is 404
/// afterwards. Its history stays readable. A later pipeline or v1 report creates the host
/// again; a cron report for it is 404, as for any unknown host. Needs a token with write
/// scope on the group, or admin. A 2xx means the decommission is committed to disk.
#[utoipa::path(
    security(("bearer" = ["write:{server_group}"])),
    tag = "reports",
    params(
        ("server_group" = GroupName, Path, example = "rsyslog-prod"),
        ("host" = Name, Path, example = "rsyslog-01"),
    ),
    // Optional: `openapi::spec` marks it so.
    request_body(content = DecommissionBody, content_type = "application/json",
                 description = "Optional: why the host leaves"),
    responses(
        (status = 200, description = "Decommissioned", body = Decommissioned),
        ReportErrors,
        (status = 404, description = "No such host (never reported, or already decommissioned); nothing was stored", body = ErrorBody, example = super::error::examples::no_host_to_decommission),
    )
)]
#[delete("/status/{server_group}/{host}")]
pub async fn decommission(
    ctx: web::Data<AppContext>,
    req: HttpRequest,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: OptionalJsonObject,
) -> Result<HttpResponse, ApiError> {
    let (group, host) = path.into_inner();
    let body = body.0.unwrap_or_else(|| JsonObject {
        fields: Default::default(),
        raw: "{}".to_owned(),
    });
    let reason = {
        let mut f = Fields::new(&body.fields);
        let _ = f.text("reason", MAX_REASON_LEN);
        f.finish()
    };
    let ((group, host), ()) = both(both(parse_group(&group), parse_host(&host)), reason)?;
    let principal = caller.authorize_write(&group)?;
    let meta = request_meta(&req, body.raw, principal);
    let report = Report {
        server_group: group.clone(),
        host: host.clone(),
        reported_at: None,
        observation: Observation::Decommission,
    };
    match super::write(&ctx, &req, report, meta, decommissioned).await? {
        Ok(response) => Ok(response),
        Err(StoreError::UnknownHost { server_group, host }) => {
            Err(ApiError::no_host_to_decommission(&server_group, &host))
        }
        Err(other) => Err(other.into()),
    }
}

fn decommissioned(
    _: &crate::domain::StalePolicy,
    recorded: &crate::store::Recorded,
) -> Result<crate::store::StoredAnswer, ApiError> {
    let state = &recorded.state;
    let body = Decommissioned {
        success: true,
        message: format!(
            "host {}/{} decommissioned; its history stays",
            state.server_group, state.host
        ),
        report_id: recorded.report_id,
    };
    Ok(crate::store::StoredAnswer {
        status: 200,
        body: serde_json::to_string(&body).map_err(ApiError::internal)?,
    })
}
