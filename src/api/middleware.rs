//! What wraps every request: its span and request id, its log line and counters, and HEAD
//! answered as GET.
//!
//! Written by hand rather than with `tracing-actix-web`: that crate always generates its own
//! request id and never reads an incoming `X-Request-Id` (by design, its maintainer says), does
//! not echo it, and fixes the root span's level, while probes here log at DEBUG. Around it we
//! would still need our own middleware for the header and the metrics; this is that middleware
//! alone.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage as _};
use tracing::Instrument as _;

use crate::metrics::{AuthFailure, Refusal};

use super::{AppContext, RouteTable};

/// The header that carries a request's id, in and out.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest incoming `X-Request-Id` honoured.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The requests that are reports (their errors count as refusals): the three POSTs, and a
/// decommission.
const REPORT_ROUTES: [(Method, &str); 4] = [
    (Method::POST, "/status/pipeline"),
    (Method::POST, "/status/cron"),
    (Method::POST, "/api/status"),
    (Method::DELETE, "/status/{server_group}/{host}"),
];

/// A method as a metric label: the standard ones, every other name as `other` (actix accepts
/// any token as a method; a label per name would let anyone grow the metrics without bound).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Routes polled by machines every few seconds: their lines log at DEBUG.
const QUIET_ROUTES: [&str; 3] = ["/health", "/ready", "/metrics"];

/// Marks a HEAD request that runs as GET: a handler whose body is costly to make (a backup)
/// answers with its headers alone.
#[derive(Clone, Copy, Debug)]
pub struct Head;

/// The request's id, in the request's extensions.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// An incoming id is honoured when it is 1–128 letters, digits, `-`, `_`, `.` or `:` (UUIDs,
/// W3C trace ids, the ids ingresses and load balancers add); anything else could forge log
/// lines or carry secrets, and is replaced.
fn incoming_id(value: &HeaderValue) -> Option<String> {
    let bytes = value.as_bytes();
    let sane = (1..=MAX_REQUEST_ID_LEN).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b));
    sane.then(|| String::from_utf8_lossy(bytes).into_owned())
}

/// 128 random bits in hex; a counter-free fallback if the OS random source fails.
fn new_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = nanos.to_le_bytes();
    }
    hex::encode(bytes)
}

/// Gives each request its span (`request`, with the matched route template, the method and
/// the request id), echoes the id in `X-Request-Id`, logs one line when the response is
/// ready, and counts the request for `/metrics`.
pub async fn trace_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().clone();
    // The route table is known before routing: the template names the span from the start.
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(incoming_id)
        .unwrap_or_else(new_id);
    req.extensions_mut().insert(RequestId(id.clone()));
    let quiet = QUIET_ROUTES.contains(&route.as_str());
    let span = if quiet {
        tracing::debug_span!("request", route = %route, method = %method, request_id = %id)
    } else {
        tracing::info_span!("request", route = %route, method = %method, request_id = %id)
    };
    let context = req.app_data::<web::Data<AppContext>>().cloned();
    let mut response = next.call(req).instrument(span.clone()).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    let micros = elapsed.as_micros();
    span.in_scope(|| {
        if quiet {
            tracing::debug!(status, micros, "request");
        } else {
            tracing::info!(status, micros, "request");
        }
    });
    if let Some(ctx) = context {
        let metrics = &ctx.metrics;
        metrics.request(
            &route,
            method_label(&method),
            response.status().as_str(),
            elapsed.as_secs_f64(),
        );
        let extensions = response.response().extensions();
        if let Some(failure) = extensions.get::<AuthFailure>() {
            metrics.auth_failed(*failure);
        }
        if REPORT_ROUTES
            .iter()
            .any(|(m, r)| *m == method && *r == route)
            && !response.status().is_success()
        {
            let reason = extensions.get::<Refusal>().copied().unwrap_or(
                if response.status().is_server_error() {
                    Refusal::Storage
                } else {
                    Refusal::Validation
                },
            );
            metrics.refused(reason);
        }
    }
    Ok(response)
}

/// Answers HEAD as the GET on the same path would, without the body (RFC 9110, 9.3.2): the
/// request goes on as GET, and actix's HTTP/1 encoder, which knows the request was HEAD,
/// sends the headers (Content-Length included) and no body. A path without GET keeps HEAD and
/// gets the 405 that lists what it allows.
pub async fn head_as_get(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if req.method() == Method::HEAD {
        let has_get = req
            .app_data::<web::Data<RouteTable>>()
            .is_none_or(|routes| routes.answers_get(req.path()));
        if has_get {
            req.head_mut().method = Method::GET;
            req.extensions_mut().insert(Head);
        }
    }
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_ids_are_honoured_only_when_sane() {
        let id = |text: &str| incoming_id(&HeaderValue::from_str(text).unwrap());
        assert_eq!(
            id("3f2b9c1e-8a7d-4e21-9b0a-1c2d3e4f5a6b").as_deref(),
            Some("3f2b9c1e-8a7d-4e21-9b0a-1c2d3e4f5a6b")
        );
        assert_eq!(
            id("woodpecker:4711.2").as_deref(),
            Some("woodpecker:4711.2")
        );
        assert_eq!(id(""), None);
        assert_eq!(id("two words"), None);
        assert_eq!(id("a\"quote"), None);
        assert_eq!(id(&"x".repeat(129)), None);
        assert!(id(&"x".repeat(128)).is_some());
    }

    #[test]
    fn new_ids_are_distinct_hex() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
