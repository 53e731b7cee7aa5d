//! Pages for people without Grafana, rendered on the server from `templates/` (askama: the
//! templates are compiled with the binary and escape every value by default). They call the
//! same store and domain functions as the JSON API. No script, no CDN, nothing fetched from
//! elsewhere: they work in an air-gapped cluster, under a strict Content-Security-Policy.

mod fleet;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};

/// Nothing but this origin's style sheet; no script at all, no frames, forms only to here.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// How often the fleet page reloads itself (a `<meta http-equiv="refresh">`: the URL, and so
/// the filters, stay as they are).
pub const REFRESH_SECONDS: u32 = 30;

/// Registers the pages.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // `/ui` first: the scope would take it and find nothing.
    cfg.route("/ui", web::get().to(to_ui)).service(
        web::scope("/ui")
            .wrap(actix_web::middleware::from_fn(security_headers))
            .route("/", web::get().to(fleet::page))
            .route("/style.css", web::get().to(style)),
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
