//! Pages for people without Grafana, rendered on the server from `templates/` (askama: the
//! templates are compiled with the binary and escape every value by default). They call the
//! same store and domain functions as the JSON API. No script, no CDN, nothing fetched from
//! elsewhere: they work in an air-gapped cluster, under a strict Content-Security-Policy.

mod commit;
mod fleet;
mod host;
mod session;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use askama::Template;

use crate::domain::{HostName, ServerGroup, Status};

/// Nothing but this origin's style sheet and one script file (the reload), no inline script,
/// no frames, forms only to here.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// How often the fleet and commit pages reload themselves by default. `/ui/reload.js` does it
/// (the URL, and so the filters, stay as they are) and the page says so, with a link to stop
/// it (`refresh=0`), as WCAG 2.2.1 asks of anything that moves a page under its reader. Not a
/// `<meta http-equiv="refresh">`: that offers no way to turn it off, and axe-core rates it
/// critical. Without JavaScript the pages simply do not reload.
pub const REFRESH_SECONDS: u32 = 30;
/// The range `refresh` takes, in seconds.
const REFRESH_RANGE: std::ops::RangeInclusive<u32> = 10..=3600;

/// `refresh`: absent or empty for the default, 0 for none, else seconds within REFRESH_RANGE.
fn parse_refresh(value: Option<&str>) -> Result<u32, crate::api::error::FieldProblem> {
    match value.map(str::trim).unwrap_or("") {
        "" => Ok(REFRESH_SECONDS),
        "0" => Ok(0),
        text => text
            .parse::<u32>()
            .ok()
            .filter(|n| REFRESH_RANGE.contains(n))
            .ok_or_else(|| {
                crate::api::error::FieldProblem::new(
                    "refresh",
                    format!(
                        "must be 0 (no reload) or whole seconds from {} to {}",
                        REFRESH_RANGE.start(),
                        REFRESH_RANGE.end()
                    ),
                )
            }),
    }
}

/// Registers the pages.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // `/ui` first: the scope would take it and find nothing.
    cfg.route("/ui", web::get().to(to_ui)).service(
        web::scope("/ui")
            // Runs second: every page, the sign-in page included, gets the headers.
            .wrap(actix_web::middleware::from_fn(session::require_reader))
            .wrap(actix_web::middleware::from_fn(security_headers))
            .route("/", web::get().to(fleet::page))
            .route("/hosts/{server_group}/{host}", web::get().to(host::page))
            .route("/commits/{commit_sha}", web::get().to(commit::page))
            .route("/sign-in", web::post().to(session::sign_in))
            .route("/sign-out", web::post().to(session::sign_out))
            .route("/style.css", web::get().to(style))
            .route("/favicon.svg", web::get().to(favicon))
            .route("/reload.js", web::get().to(reload_script)),
    );
}

async fn to_ui() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/ui/"))
        .finish()
}

async fn style() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "max-age=300"))
        .body(include_str!("../../templates/style.css"))
}

/// The pages' icon (a browser asks for one; without it, it asks for /favicon.ico and logs the
/// 404 as a console error).
async fn favicon() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header((header::CACHE_CONTROL, "max-age=86400"))
        .body(include_str!("../../templates/favicon.svg"))
}

/// The fleet and commit pages' reload (see REFRESH_SECONDS).
async fn reload_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "max-age=300"))
        .body(include_str!("../../templates/reload.js"))
}

/// The headers every page carries.
async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut response = next.call(req).await?;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Ok(response)
}

/// A rendered page, or the error that stopped it.
fn html(
    rendered: Result<String, askama::Error>,
) -> Result<HttpResponse, crate::api::error::ApiError> {
    let body = rendered.map_err(crate::api::error::ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    title: &'a str,
    refresh_seconds: u32,
    message: &'a str,
}

/// A short page with a status code: a host or commit the server does not know, say.
fn message(
    status: StatusCode,
    title: &str,
    text: &str,
) -> Result<HttpResponse, crate::api::error::ApiError> {
    let page = MessagePage {
        title,
        refresh_seconds: 0,
        message: text,
    };
    let mut response = html(page.render())?;
    *response.status_mut() = status;
    Ok(response)
}

/// A status as the pages show it: a symbol and a word as well as a colour (WCAG 1.4.1).
fn status_look(status: Status) -> (&'static str, &'static str) {
    let symbol = match status {
        Status::Synced => "✓",
        Status::OutOfSync => "⚠",
        Status::Failed => "✗",
        Status::Unknown => "?",
    };
    (symbol, status.words())
}

/// Percent-encodes a path segment or query value: RFC 3986 unreserved characters stay, and
/// `*` and `,` (sub-delimiters; the filters' globs and lists read better unencoded).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~*,".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The page of one host.
fn host_link(group: &ServerGroup, host: &HostName) -> String {
    format!(
        "/ui/hosts/{}/{}",
        encode(group.as_str()),
        encode(host.as_str())
    )
}

/// The page of one commit's rollout.
fn commit_link(commit_sha: &str) -> String {
    format!("/ui/commits/{}", encode(commit_sha))
}

/// A duration for people: the two largest units (`3d 4h`, `2h 5m`, `45s`).
fn human_duration(millis: i64) -> String {
    let seconds = millis.max(0) / 1000;
    let (days, hours, minutes, secs) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m {secs}s")
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_their_two_largest_units() {
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(-5), "0s");
        assert_eq!(human_duration(45_999), "45s");
        assert_eq!(human_duration(125_000), "2m 5s");
        assert_eq!(human_duration(7_500_000), "2h 5m");
        assert_eq!(human_duration(3 * 86_400_000 + 4 * 3_600_000 + 1), "3d 4h");
    }

    #[test]
    fn refresh_is_off_or_a_sane_number_of_seconds() {
        assert_eq!(parse_refresh(None).ok(), Some(REFRESH_SECONDS));
        assert_eq!(parse_refresh(Some("")).ok(), Some(REFRESH_SECONDS));
        assert_eq!(parse_refresh(Some("0")).ok(), Some(0));
        assert_eq!(parse_refresh(Some("30")).ok(), Some(30));
        for bad in ["5", "3601", "x", "-1"] {
            assert!(parse_refresh(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn links_encode_what_is_not_unreserved() {
        assert_eq!(encode("a b&c/d?é"), "a%20b%26c%2Fd%3F%C3%A9");
        assert_eq!(commit_link("abc123"), "/ui/commits/abc123");
    }
}
