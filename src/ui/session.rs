//! Pages under `--read-requires-token`: a page asks for a read token once, through a small
//! form, and keeps it in an `HttpOnly`, `SameSite=Strict` cookie scoped to `/ui/` (`Secure`
//! when the request came over HTTPS, directly or as an ingress says with
//! `X-Forwarded-Proto: https`). The cookie holds the token itself, checked on every request
//! against the token file as a bearer token is: removing the token from the file signs every
//! browser that saved it out at the next reload. Without `--read-requires-token` the pages are
//! as open as the JSON reads.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use crate::api::auth::{page_reader, token_may_read, PAGE_COOKIE};
use crate::api::error::ApiError;

/// How long a browser keeps the token: a working month; signing out, or removing the token
/// from the token file, ends it sooner.
const COOKIE_DAYS: i64 = 30;
/// The longest token the form takes (tokens are 43 characters; room for other generators).
const MAX_TOKEN: usize = 512;

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage<'a> {
    title: &'a str,
    refresh_seconds: u32,
    problem: &'a str,
    next: &'a str,
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    token: String,
    #[serde(default)]
    next: String,
}

/// Where to go after signing in: a page of this service, nothing else (no open redirect).
fn next_page(next: &str) -> &str {
    // No `.` or `..` segment (a browser resolves `/ui/..` to `/`), plain or percent-encoded.
    let path = next.split(['?', '#']).next().unwrap_or("");
    let dots = path.split('/').any(|segment| {
        let lower = segment.to_ascii_lowercase().replace("%2e", ".");
        lower == "." || lower == ".."
    });
    let local = next.starts_with("/ui/")
        && !next.contains("//")
        && !next.contains('\\')
        && !dots
        && next.chars().all(|c| c.is_ascii_graphic());
    if local {
        next
    } else {
        "/ui/"
    }
}

/// The sign-in page, with the status and problem that led to it.
fn sign_in_page(status: StatusCode, problem: &str, next: &str) -> Result<HttpResponse, ApiError> {
    let page = SignInPage {
        title: "Sign in",
        refresh_seconds: 0,
        problem,
        next: next_page(next),
    };
    let mut response = super::html(page.render())?;
    *response.status_mut() = status;
    Ok(response)
}

/// What a refused read shows: the sign-in form (401/403), or the error itself when no token
/// can help (the token file cannot be loaded: 503).
fn refused(err: ApiError, next: &str) -> HttpResponse {
    // Opening a page before signing in is the usual way in, not a failed authentication.
    let failure = match &err {
        ApiError::Unauthorized {
            invalid_token: false,
            ..
        } => None,
        _ => err.auth_failure(),
    };
    let page = match &err {
        ApiError::Unauthorized { invalid_token, .. } => {
            let problem = if *invalid_token {
                "That token is not known (it may have been removed from the token file)."
            } else {
                ""
            };
            sign_in_page(StatusCode::UNAUTHORIZED, problem, next)
        }
        ApiError::Forbidden { message, .. } => sign_in_page(StatusCode::FORBIDDEN, message, next),
        _ => Err(err),
    };
    let mut response = page.unwrap_or_else(|err| actix_web::ResponseError::error_response(&err));
    if let Some(failure) = failure {
        // Counted in gitops_status_auth_failures_total like any refused read.
        response.extensions_mut().insert(failure);
    }
    response
}

/// Lets a page through when it may be read; otherwise answers with the sign-in form.
pub async fn require_reader(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let open = matches!(
        req.path(),
        "/ui/style.css" | "/ui/favicon.svg" | "/ui/reload.js" | "/ui/sign-in" | "/ui/sign-out"
    );
    if !open {
        if let Err(err) = page_reader(req.request()) {
            let here = match req.query_string() {
                "" => req.path().to_owned(),
                query => format!("{}?{query}", req.path()),
            };
            let response = refused(err, &here);
            return Ok(req.into_response(response).map_into_right_body());
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// A sign-in or sign-out posted by another site's page (login CSRF: signing a visitor in with
/// someone else's token, or out): browsers say where a request came from in
/// `Sec-Fetch-Site`; a form of this server's own pages is `same-origin`. Requests without
/// the header (curl, older browsers) are taken.
fn from_elsewhere(req: &HttpRequest) -> Option<HttpResponse> {
    let site = req.headers().get("sec-fetch-site")?.to_str().ok()?;
    if matches!(site, "same-origin" | "none") {
        return None;
    }
    tracing::warn!(
        path = req.path(),
        sec_fetch_site = site,
        "refused: a sign-in form posted from another site"
    );
    let page = sign_in_page(
        StatusCode::FORBIDDEN,
        "Sign in through this server's own form.",
        "/ui/",
    );
    Some(page.unwrap_or_else(|err| actix_web::ResponseError::error_response(&err)))
}

/// The cookie with the token, for HTTPS only when the request came over HTTPS.
fn cookie(req: &HttpRequest, value: String, max_age: CookieDuration) -> Cookie<'static> {
    let secure = req.connection_info().scheme() == "https";
    Cookie::build(PAGE_COOKIE, value)
        .path("/ui/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(max_age)
        .finish()
}

/// `POST /ui/sign-in` (form: `token`, `next`): keeps a token that may read in the cookie and
/// goes back to the page that asked.
pub async fn sign_in(
    req: HttpRequest,
    form: web::Form<SignInForm>,
) -> Result<HttpResponse, ApiError> {
    if let Some(refused) = from_elsewhere(&req) {
        return Ok(refused);
    }
    let form = form.into_inner();
    let token = form.token.trim();
    if token.is_empty() || token.len() > MAX_TOKEN || !token.chars().all(|c| c.is_ascii_graphic()) {
        return sign_in_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Paste a token: printable characters without spaces, at most 512.",
            &form.next,
        );
    }
    if let Err(err) = token_may_read(&req, token) {
        return Ok(refused(err, &form.next));
    }
    let kept = cookie(&req, token.to_owned(), CookieDuration::days(COOKIE_DAYS));
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, next_page(&form.next)))
        // Percent-encoded, as `HttpRequest::cookie` decodes it: a token may hold `;` or `%`.
        .append_header((header::SET_COOKIE, kept.encoded().to_string()))
        .finish())
}

/// `POST /ui/sign-out`: forgets the token in this browser.
pub async fn sign_out(req: HttpRequest) -> HttpResponse {
    if let Some(refused) = from_elsewhere(&req) {
        return refused;
    }
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/ui/"))
        .cookie(cookie(&req, String::new(), CookieDuration::ZERO))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::next_page;

    #[test]
    fn only_pages_of_this_service_are_gone_back_to() {
        assert_eq!(next_page("/ui/hosts/g/h?page=2"), "/ui/hosts/g/h?page=2");
        // A path of this server still (the browser asks for /ui/%2F%2Fevil here).
        assert_eq!(next_page("/ui/%2F%2Fevil"), "/ui/%2F%2Fevil");
        assert_eq!(next_page("/ui/?q=a..b"), "/ui/?q=a..b");
        for elsewhere in [
            "",
            "https://evil.example/",
            "//evil.example/ui/",
            "/ui//evil",
            "/ui/\\evil",
            "/admin/prune",
            "/ui/ x",
            "/ui/..",
            "/ui/../admin/prune",
            "/ui/%2e%2E/x",
            "/ui/./x",
        ] {
            assert_eq!(next_page(elsewhere), "/ui/", "{elsewhere:?}");
        }
    }
}
