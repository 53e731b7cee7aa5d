//! Badges for READMEs and chat: one host's status or one group's, as an SVG image or as the
//! JSON that shields.io's endpoint badge reads. An unknown name is a grey "unknown" badge with
//! status 404 (it is shown inside an `<img>`, where a JSON error helps nobody).
//!
//! Rendered with the `shields` crate: its SVG is byte-identical to shields.io's for the same
//! parameters, text widths come from shields.io's own font tables, and text is XML-escaped.

use actix_web::http::header;
use actix_web::{get, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::{FleetFilter, FleetSummary, HostGauge, Status};

use super::auth::BadgeReader;
use super::error::{ApiError, ErrorBody, ReadAuthErrors};
use super::AppContext;

/// How long clients and proxies may keep a badge (short: a README shows a change within a
/// minute).
const CACHE_SECONDS: u32 = 60;
/// shields.io ignores endpoint `cacheSeconds` below its default of 300.
const SHIELDS_CACHE_SECONDS: u32 = 300;
/// The longest `label` taken.
const MAX_LABEL_LEN: usize = 64;

/// The shields.io endpoint schema (`schemaVersion` 1), for `https://img.shields.io/endpoint?url=…`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"schemaVersion": 1, "label": "rsyslog-prod", "message": "12/12 synced", "color": "brightgreen", "cacheSeconds": 300}))]
pub struct ShieldsEndpoint {
    /// Always 1.
    pub schema_version: u8,
    pub label: String,
    pub message: String,
    /// A shields.io colour name: brightgreen, orange, red, yellow or lightgrey.
    pub color: String,
    /// How long shields.io keeps it (its minimum, 300).
    pub cache_seconds: u32,
}

/// The SVG image.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct SvgImage(#[allow(dead_code)] Vec<u8>);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BadgeQuery {
    /// The left-hand text (0–64 characters); default: the host's or group's name.
    #[param(max_length = 64, example = "rsyslog")]
    label: Option<String>,
    /// `flat` (default) or `flat-square`.
    #[param(pattern = "^(flat|flat-square)$", example = "flat-square")]
    style: Option<String>,
}

struct Look {
    label: String,
    style: shields::BadgeStyle,
}

fn look(query: &BadgeQuery, default_label: &str) -> Result<Look, ApiError> {
    let mut problems = Vec::new();
    let label = query
        .label
        .clone()
        .unwrap_or_else(|| default_label.to_owned());
    if label.chars().count() > MAX_LABEL_LEN {
        problems.push(super::error::FieldProblem::new(
            "label",
            format!("must be at most {MAX_LABEL_LEN} characters"),
        ));
    }
    let style = match query.style.as_deref() {
        None | Some("flat") => shields::BadgeStyle::Flat,
        Some("flat-square") => shields::BadgeStyle::FlatSquare,
        Some(other) => {
            problems.push(super::error::FieldProblem::new(
                "style",
                format!("must be flat or flat-square; got {other:?}"),
            ));
            shields::BadgeStyle::Flat
        }
    };
    if problems.is_empty() {
        Ok(Look { label, style })
    } else {
        Err(ApiError::Unprocessable(problems))
    }
}

/// What a badge says: its message and colour.
struct Verdict {
    message: String,
    color: &'static str,
}

fn color(status: Status) -> &'static str {
    match status {
        Status::Synced => "brightgreen",
        Status::OutOfSync => "orange",
        Status::Failed => "red",
        Status::Unknown => "lightgrey",
    }
}

/// A host: its status in words; a stale host says so and turns yellow unless it failed.
fn host_verdict(host: &HostGauge) -> Verdict {
    match (host.stale, host.status) {
        (true, Status::Failed) => Verdict {
            message: "failed, stale".to_owned(),
            color: "red",
        },
        (true, status) => Verdict {
            message: format!("{}, stale", status.words()),
            color: "yellow",
        },
        (false, status) => Verdict {
            message: status.words().to_owned(),
            color: color(status),
        },
    }
}

/// A group: "12/12 synced", or its worst state with a count ("2/12 failed").
fn group_verdict(s: &FleetSummary) -> Verdict {
    let worst = [
        (s.failed, "failed", "red"),
        (s.out_of_sync, "out of sync", "orange"),
        (s.stale, "stale", "yellow"),
        (s.unknown, "unknown", "lightgrey"),
    ]
    .into_iter()
    .find(|(count, _, _)| *count > 0);
    match worst {
        Some((count, what, color)) => Verdict {
            message: format!("{count}/{} {what}", s.hosts),
            color,
        },
        None => Verdict {
            message: format!("{}/{} synced", s.synced, s.hosts),
            color: "brightgreen",
        },
    }
}

const UNKNOWN: Verdict = Verdict {
    message: String::new(),
    color: "lightgrey",
};

enum Format {
    Svg,
    Json,
}

/// The badge as a response: 200 or 404, a short cache lifetime, and an ETag of its bytes
/// (a request that sends it back in If-None-Match gets 304).
fn respond(
    req: &HttpRequest,
    format: Format,
    look: &Look,
    verdict: Option<Verdict>,
) -> HttpResponse {
    let found = verdict.is_some();
    let verdict = verdict.unwrap_or(UNKNOWN);
    let message = if found {
        verdict.message.as_str()
    } else {
        "unknown"
    };
    let (content_type, body) = match format {
        Format::Svg => {
            let params = shields::BadgeParams {
                style: look.style,
                message_color: Some(verdict.color),
                ..shields::BadgeParams::new(&look.label, message)
            };
            ("image/svg+xml", shields::render_badge_svg(&params))
        }
        Format::Json => (
            "application/json",
            serde_json::to_string(&ShieldsEndpoint {
                schema_version: 1,
                label: look.label.clone(),
                message: message.to_owned(),
                color: verdict.color.to_owned(),
                cache_seconds: SHIELDS_CACHE_SECONDS,
            })
            .unwrap_or_default(),
        ),
    };
    let etag = {
        use sha2::{Digest, Sha256};
        format!(
            "\"{}\"",
            hex::encode(&Sha256::digest(body.as_bytes())[..12])
        )
    };
    let cache = format!("max-age={CACHE_SECONDS}");
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    let mut response = if matches {
        HttpResponse::NotModified()
    } else if found {
        HttpResponse::Ok()
    } else {
        HttpResponse::NotFound()
    };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, cache));
    if matches {
        return response.finish();
    }
    response.content_type(content_type).body(body)
}

async fn host_badge(
    ctx: &AppContext,
    req: &HttpRequest,
    group: &str,
    host: &str,
    query: &BadgeQuery,
    format: Format,
) -> Result<HttpResponse, ApiError> {
    let look = look(query, host)?;
    // A name that cannot exist is as unknown as one that does not.
    let names = crate::domain::ServerGroup::parse(group)
        .ok()
        .zip(crate::domain::HostName::parse(host).ok());
    let gauge = match names {
        Some((group, host)) => ctx.store.host_gauge(&group, &host, ctx.clock.now()).await?,
        None => None,
    };
    Ok(respond(
        req,
        format,
        &look,
        gauge.as_ref().map(host_verdict),
    ))
}

async fn group_badge(
    ctx: &AppContext,
    req: &HttpRequest,
    group: &str,
    query: &BadgeQuery,
    format: Format,
) -> Result<HttpResponse, ApiError> {
    let look = look(query, group)?;
    let summary = match crate::domain::ServerGroup::parse(group) {
        Ok(name) => {
            let filter = FleetFilter {
                server_group: crate::domain::AnyOf(vec![crate::domain::Pattern::parse(
                    name.as_str(),
                )
                .map_err(ApiError::BadQuery)?]),
                ..FleetFilter::default()
            };
            Some(ctx.store.summary(&filter, ctx.clock.now()).await?)
        }
        Err(_) => None,
    };
    let verdict = summary.filter(|s| s.hosts > 0).as_ref().map(group_verdict);
    Ok(respond(req, format, &look, verdict))
}

/// One host's badge, SVG: its status ("synced", "out of sync", "failed", "unknown"; a stale
/// host adds ", stale"). An unknown host: a grey "unknown" badge, status 404.
#[utoipa::path(
    security((), ("bearer" = ["read"])),
    tag = "badges",
    params(
        ("server_group" = String, Path, description = "e.g. rsyslog-prod", example = "rsyslog-prod"),
        ("host" = String, Path, description = "e.g. rsyslog-01", example = "rsyslog-01"),
        BadgeQuery,
    ),
    responses(
        ReadAuthErrors,
        (status = 200, description = "The badge", content_type = "image/svg+xml", body = SvgImage, headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 304, description = "Unchanged since the ETag sent in If-None-Match"),
        (status = 404, description = "A grey \"unknown\" badge: no such host", content_type = "image/svg+xml", body = SvgImage),
        (status = 422, description = "`label` or `style` is not valid", body = ErrorBody, example = super::error::examples::invalid_filter),
        (status = 500, description = "Database failure", body = ErrorBody, example = super::error::examples::internal),
    )
)]
#[get("/badge/{server_group}/{host}.svg")]
pub async fn host_svg(
    ctx: web::Data<AppContext>,
    req: HttpRequest,
    _reader: BadgeReader,
    path: web::Path<(String, String)>,
    query: web::Query<BadgeQuery>,
) -> Result<HttpResponse, ApiError> {
    let (group, host) = path.into_inner();
    host_badge(&ctx, &req, &group, &host, &query, Format::Svg).await
}

/// One host's badge in the shields.io endpoint form.
#[utoipa::path(
    security((), ("bearer" = ["read"])),
    tag = "badges",
    params(
        ("server_group" = String, Path, description = "e.g. rsyslog-prod", example = "rsyslog-prod"),
        ("host" = String, Path, description = "e.g. rsyslog-01", example = "rsyslog-01"),
        BadgeQuery,
    ),
    responses(
        ReadAuthErrors,
        (status = 200, description = "The badge", body = ShieldsEndpoint, headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 304, description = "Unchanged since the ETag sent in If-None-Match"),
        (status = 404, description = "A grey \"unknown\" badge: no such host", body = ShieldsEndpoint),
        (status = 422, description = "`label` or `style` is not valid", body = ErrorBody, example = super::error::examples::invalid_filter),
        (status = 500, description = "Database failure", body = ErrorBody, example = super::error::examples::internal),
    )
)]
#[get("/badge/{server_group}/{host}.json")]
pub async fn host_json(
    ctx: web::Data<AppContext>,
    req: HttpRequest,
    _reader: BadgeReader,
    path: web::Path<(String, String)>,
    query: web::Query<BadgeQuery>,
) -> Result<HttpResponse, ApiError> {
    let (group, host) = path.into_inner();
    host_badge(&ctx, &req, &group, &host, &query, Format::Json).await
}

/// One group's badge, SVG: "12/12 synced", or its worst state with a count ("2/12 failed",
/// then out of sync, stale, unknown). An unknown group: a grey "unknown" badge, status 404.
#[utoipa::path(
    security((), ("bearer" = ["read"])),
    tag = "badges",
    params(
        ("server_group" = String, Path, description = "e.g. rsyslog-prod", example = "rsyslog-prod"),
        BadgeQuery,
    ),
    responses(
        ReadAuthErrors,
        (status = 200, description = "The badge", content_type = "image/svg+xml", body = SvgImage, headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 304, description = "Unchanged since the ETag sent in If-None-Match"),
        (status = 404, description = "A grey \"unknown\" badge: no such group", content_type = "image/svg+xml", body = SvgImage),
        (status = 422, description = "`label` or `style` is not valid", body = ErrorBody, example = super::error::examples::invalid_filter),
        (status = 500, description = "Database failure", body = ErrorBody, example = super::error::examples::internal),
    )
)]
#[get("/badge/{server_group}.svg")]
pub async fn group_svg(
    ctx: web::Data<AppContext>,
    req: HttpRequest,
    _reader: BadgeReader,
    path: web::Path<String>,
    query: web::Query<BadgeQuery>,
) -> Result<HttpResponse, ApiError> {
    group_badge(&ctx, &req, &path.into_inner(), &query, Format::Svg).await
}

/// One group's badge in the shields.io endpoint form.
#[utoipa::path(
    security((), ("bearer" = ["read"])),
    tag = "badges",
    params(
        ("server_group" = String, Path, description = "e.g. rsyslog-prod", example = "rsyslog-prod"),
        BadgeQuery,
    ),
    responses(
        ReadAuthErrors,
        (status = 200, description = "The badge", body = ShieldsEndpoint, headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 304, description = "Unchanged since the ETag sent in If-None-Match"),
        (status = 404, description = "A grey \"unknown\" badge: no such group", body = ShieldsEndpoint),
        (status = 422, description = "`label` or `style` is not valid", body = ErrorBody, example = super::error::examples::invalid_filter),
        (status = 500, description = "Database failure", body = ErrorBody, example = super::error::examples::internal),
    )
)]
#[get("/badge/{server_group}.json")]
pub async fn group_json(
    ctx: web::Data<AppContext>,
    req: HttpRequest,
    _reader: BadgeReader,
    path: web::Path<String>,
    query: web::Query<BadgeQuery>,
) -> Result<HttpResponse, ApiError> {
    group_badge(&ctx, &req, &path.into_inner(), &query, Format::Json).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(hosts: u64, synced: u64, out: u64, failed: u64, stale: u64) -> FleetSummary {
        FleetSummary {
            hosts,
            synced,
            out_of_sync: out,
            failed,
            unknown: hosts - synced - out - failed,
            stale,
            ..FleetSummary::default()
        }
    }

    #[test]
    fn a_group_shows_all_synced_or_its_worst_state_with_a_count() {
        let cases = [
            (summary(12, 12, 0, 0, 0), "12/12 synced", "brightgreen"),
            (summary(12, 9, 1, 2, 1), "2/12 failed", "red"),
            (summary(12, 10, 2, 0, 1), "2/12 out of sync", "orange"),
            (summary(12, 12, 0, 0, 3), "3/12 stale", "yellow"),
            (summary(12, 11, 0, 0, 0), "1/12 unknown", "lightgrey"),
        ];
        for (s, message, color) in cases {
            let v = group_verdict(&s);
            assert_eq!((v.message.as_str(), v.color), (message, color));
        }
    }
}
