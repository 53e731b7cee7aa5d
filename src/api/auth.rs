//! Bearer authentication for the API: who is calling, and may they write this server_group or
//! read. Without a token file everything is open, as in the seeds. Failures are logged with the
//! client's address and, when known, the token's name; never with the token.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};

use crate::auth::Token;
use crate::domain::ServerGroup;

use super::error::ApiError;
use super::AppContext;

/// The caller of a write endpoint: anyone (no token file) or the token it authenticated with.
pub enum Caller {
    Open,
    Token { token: Token, client: String },
}

fn client_addr(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The bearer token of the request, if it sent one.
fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
        .filter(|t| !t.is_empty())
}

fn context(req: &HttpRequest) -> Result<&web::Data<AppContext>, ApiError> {
    req.app_data::<web::Data<AppContext>>().ok_or_else(|| {
        ApiError::internal(std::io::Error::other("the application context is missing"))
    })
}

/// Authenticates the request against the server's tokens, or 401. Open without a token file.
fn authenticate(req: &HttpRequest, ctx: &AppContext) -> Result<Caller, ApiError> {
    authenticate_presented(req, ctx, bearer(req))
}

/// The same for a token the request presented some other way (the pages' cookie or form).
fn authenticate_presented(
    req: &HttpRequest,
    ctx: &AppContext,
    presented: Option<String>,
) -> Result<Caller, ApiError> {
    let Some(auth) = &ctx.auth else {
        return Ok(Caller::Open);
    };
    let client = client_addr(req);
    let Some(presented) = presented else {
        tracing::warn!(client = %client, path = req.path(), "authentication failed: no bearer token");
        return Err(ApiError::Unauthorized {
            message: "this endpoint needs a bearer token (Authorization: Bearer <token>)".into(),
            invalid_token: false,
        });
    };
    let tokens = auth.valid_tokens().map_err(|failure| {
        tracing::warn!(client = %client, path = req.path(), problem = %failure, "refused: no token is valid while the token file cannot be loaded");
        ApiError::TokensUnavailable(format!(
            "{failure}; no token is accepted until it loads again (the server re-reads it on \
             SIGHUP and when it changes); retry later"
        ))
    })?;
    match tokens.authenticate(&presented) {
        Some(token) => Ok(Caller::Token {
            token: token.clone(),
            client,
        }),
        None => {
            tracing::warn!(client = %client, path = req.path(), "authentication failed: unknown token");
            Err(ApiError::Unauthorized {
                message: "the bearer token is not known".into(),
                invalid_token: true,
            })
        }
    }
}

impl Caller {
    /// The principal to store with a report for `group` (the token's name), or 403.
    pub fn authorize_write(&self, group: &ServerGroup) -> Result<Option<String>, ApiError> {
        match self {
            Caller::Open => Ok(None),
            Caller::Token { token, .. } if token.may_write(group) => Ok(Some(token.name.clone())),
            Caller::Token { token, client } => {
                tracing::warn!(client = %client, token = %token.name, server_group = %group, "forbidden: no write scope for the group");
                Err(ApiError::Forbidden {
                    message: format!("token {} may not write server_group {group}", token.name),
                    scope: format!("write:{group}"),
                })
            }
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Caller, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(context(req).and_then(|ctx| authenticate(req, ctx)))
    }
}

/// Permission to read: always, unless the server runs with --read-requires-token; then a
/// token with the `read` or `admin` scope.
pub struct Reader;

/// Whether `presented` may read (always, unless the server runs with --read-requires-token).
fn check_read(
    req: &HttpRequest,
    ctx: &AppContext,
    presented: Option<String>,
) -> Result<(), ApiError> {
    if !ctx.auth.as_ref().is_some_and(|a| a.read_requires_token) {
        return Ok(());
    }
    match authenticate_presented(req, ctx, presented)? {
        Caller::Token { token, .. } if token.may_read() => Ok(()),
        Caller::Token { token, client } => {
            tracing::warn!(client = %client, token = %token.name, "forbidden: no read scope");
            Err(ApiError::Forbidden {
                message: format!(
                    "token {} may not read (it needs the read scope)",
                    token.name
                ),
                scope: "read".into(),
            })
        }
        Caller::Open => Ok(()),
    }
}

impl FromRequest for Reader {
    type Error = ApiError;
    type Future = Ready<Result<Reader, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            context(req)
                .and_then(|ctx| check_read(req, ctx, bearer(req)))
                .map(|()| Reader),
        )
    }
}

/// The cookie the pages under `/ui/` keep a read token in (`POST /ui/sign-in`).
pub const PAGE_COOKIE: &str = "gitops_status_token";

/// May a request for a page read: reads are open, or it carries a token with the read scope
/// in its Authorization header or in the pages' cookie.
pub fn page_reader(req: &HttpRequest) -> Result<(), ApiError> {
    let presented = bearer(req).or_else(|| {
        req.cookie(PAGE_COOKIE)
            .map(|cookie| cookie.value().to_owned())
            .filter(|value| !value.is_empty())
    });
    let ctx = context(req)?;
    let required = ctx.auth.as_ref().is_some_and(|a| a.read_requires_token);
    if required && presented.is_none() {
        // A page opened before signing in: the sign-in form, without a warning in the log.
        return Err(ApiError::Unauthorized {
            message: "this page needs a read token".into(),
            invalid_token: false,
        });
    }
    check_read(req, ctx, presented)
}

/// May `token`, typed into the sign-in form, read.
pub fn token_may_read(req: &HttpRequest, token: &str) -> Result<(), ApiError> {
    let presented = Some(token.trim().to_owned()).filter(|t| !t.is_empty());
    context(req).and_then(|ctx| check_read(req, ctx, presented))
}

/// Permission to read a badge: as for any read, unless the server runs with
/// `--public-badges` (READMEs cannot send tokens).
pub struct BadgeReader;

impl FromRequest for BadgeReader {
    type Error = ApiError;
    type Future = Ready<Result<BadgeReader, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        match context(req) {
            Ok(ctx) if ctx.public_badges => ready(Ok(BadgeReader)),
            Ok(_) => ready(
                Reader::from_request(req, payload)
                    .into_inner()
                    .map(|_| BadgeReader),
            ),
            Err(err) => ready(Err(err)),
        }
    }
}

/// Permission for operations on the whole service (`/admin/…`): a token with the `admin`
/// scope; open only when the server runs without a token file.
pub struct Admin {
    /// The token's name; None without a token file.
    pub principal: Option<String>,
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Admin, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let check = |ctx: &web::Data<AppContext>| match authenticate(req, ctx)? {
            Caller::Open => Ok(Admin { principal: None }),
            Caller::Token { token, .. } if token.is_admin() => Ok(Admin {
                principal: Some(token.name.clone()),
            }),
            Caller::Token { token, client } => {
                tracing::warn!(client = %client, token = %token.name, path = req.path(), "forbidden: no admin scope");
                Err(ApiError::Forbidden {
                    message: format!(
                        "token {} may not do this (it needs the admin scope)",
                        token.name
                    ),
                    scope: "admin".into(),
                })
            }
        };
        ready(context(req).and_then(check))
    }
}
