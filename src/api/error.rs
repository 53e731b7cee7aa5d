//! The one error type of the HTTP API and its JSON body. Every failure the application
//! answers, from a handler, an extractor, an unknown route, a wrong method or a mounted
//! service, carries `ErrorBody` (only requests too malformed to reach the application, such
//! as a broken request line, get actix's bare 400). Internal causes are logged with their
//! whole chain and never sent to the client.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::ToSchema;

use crate::metrics::{AuthFailure, Refusal};
use crate::store::StoreError;

/// One problem with one field of the request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldProblem {
    /// The field (body member, query parameter or path segment), e.g. `changed_files[2]`.
    pub field: String,
    /// What is wrong with it, in words.
    pub problem: String,
}

impl FieldProblem {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "success": false,
    "error": "invalid request: server_group, status",
    "details": [
        {"field": "server_group", "problem": "is required"},
        {"field": "status", "problem": "must be one of synced, out_of_sync, failed, unknown (any case); got \"in_sync\""}
    ]
}))]
pub struct ErrorBody {
    /// Always false.
    pub success: bool,
    /// What went wrong, in one sentence.
    pub error: String,
    /// One entry per offending field; empty when the error is not about a field.
    pub details: Vec<FieldProblem>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON at all (400).
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// The query string cannot be read (400).
    #[error("invalid query string: {0}")]
    BadQuery(String),
    /// Query parameters the endpoint does not take (400): never silently ignored.
    #[error("unknown query parameter: {}", field_list(.0))]
    UnknownParameters(Vec<FieldProblem>),
    /// No token, or an unknown one (401 with WWW-Authenticate).
    #[error("{message}")]
    Unauthorized {
        message: String,
        invalid_token: bool,
    },
    /// A known token without the scope this request needs (403).
    #[error("{message}")]
    Forbidden { message: String, scope: String },
    #[error("{0}")]
    NotFound(String),
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed {
        method: Method,
        path: String,
        allow: Vec<Method>,
    },
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The body did not arrive within the request timeout (408).
    #[error("the request body did not arrive within {seconds} s")]
    RequestTimeout { seconds: u64 },
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Well-formed, but fields are missing or invalid (422).
    #[error("invalid request: {}", field_list(.0))]
    Unprocessable(Vec<FieldProblem>),
    #[error("{0}")]
    Unavailable(String),
    /// The token file could not be reloaded: no token is valid until it is (503 with
    /// `Retry-After`).
    #[error("{0}")]
    TokensUnavailable(String),
    /// More reports arrive than the database commits: 503 with `Retry-After`.
    #[error("{0}")]
    Overloaded(String),
    /// What this server does not do on the database it runs on (501): a backup of a
    /// PostgreSQL database is pg_dump's.
    #[error("{0}")]
    NotImplemented(String),
    #[error("internal error; the server log has the details")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What `Retry-After` says when the writer's queue is full: a group commit takes
/// milliseconds, so the queue drains well within a second.
const RETRY_AFTER_SECONDS: u32 = 1;

fn field_list(problems: &[FieldProblem]) -> String {
    let mut names: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    names.dedup();
    names.join(", ")
}

impl ApiError {
    pub fn field(field: impl Into<String>, problem: impl Into<String>) -> Self {
        ApiError::Unprocessable(vec![FieldProblem::new(field, problem)])
    }

    pub fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError::Internal(Box::new(err))
    }
}

impl ApiError {
    /// A DELETE for a host that is not in the fleet.
    pub fn no_host_to_decommission(
        group: &crate::domain::ServerGroup,
        host: &crate::domain::HostName,
    ) -> Self {
        ApiError::NotFound(format!(
            "no host {group}/{host}: it was never reported or is already decommissioned; \
             nothing was stored"
        ))
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::UnknownHost { server_group, host } => ApiError::NotFound(format!(
                "no host {server_group}/{host}: cron reports need a host that a pipeline \
                 (POST /status/pipeline) or v1 report (POST /api/status) created"
            )),
            StoreError::Timeout => {
                ApiError::Unavailable("the database did not answer in time; retry later".to_owned())
            }
            StoreError::Unanswered => ApiError::Unavailable(
                "the report was handed to the writer but not answered within 30 s: it may be \
                 stored. Retry with the same Idempotency-Key: a stored report is then answered, \
                 without a second row"
                    .to_owned(),
            ),
            StoreError::KeyReused(_) => ApiError::field(
                "Idempotency-Key",
                "was used within the idempotency window for a different request (another \
                 body, path or token); nothing was stored. Use a new key for a new report",
            ),
            StoreError::Overloaded => ApiError::Overloaded(
                "too many reports are waiting to be written; nothing was stored, retry after \
                 the Retry-After delay"
                    .to_owned(),
            ),
            StoreError::Closed => ApiError::Unavailable(
                "the server is shutting down; nothing was stored, retry later".to_owned(),
            ),
            err @ StoreError::Unwritable { .. } => {
                tracing::error!(error = %error_chain(&err), "write failed");
                ApiError::Unavailable(format!("{err}; nothing was stored, retry later"))
            }
            err @ StoreError::Busy(_) => {
                tracing::warn!(error = %error_chain(&err), "database busy");
                ApiError::Unavailable(
                    "the database is locked by another connection; retry later".to_owned(),
                )
            }
            StoreError::Unsupported(what) => ApiError::NotImplemented(what.to_owned()),
            other => ApiError::internal(other),
        }
    }
}

/// `err: cause: cause…`, for logs.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) | ApiError::BadQuery(_) | ApiError::UnknownParameters(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) | ApiError::Overloaded(_) | ApiError::TokensUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %error_chain(self), "request failed");
        }
        let details = match self {
            ApiError::Unprocessable(problems) | ApiError::UnknownParameters(problems) => {
                problems.clone()
            }
            _ => Vec::new(),
        };
        let mut response = HttpResponse::build(status);
        // RFC 6750: how to authenticate, and why the token was refused.
        let challenge = match self {
            ApiError::Unauthorized {
                invalid_token: false,
                ..
            } => Some(r#"Bearer realm="gitops-status""#.to_owned()),
            ApiError::Unauthorized { .. } => {
                Some(r#"Bearer realm="gitops-status", error="invalid_token""#.to_owned())
            }
            ApiError::Forbidden { scope, .. } => Some(format!(
                r#"Bearer realm="gitops-status", error="insufficient_scope", scope="{scope}""#
            )),
            _ => None,
        };
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response.insert_header((header::WWW_AUTHENTICATE, value));
        }
        if let ApiError::Overloaded(_) | ApiError::TokensUnavailable(_) = self {
            response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECONDS));
        }
        if let ApiError::MethodNotAllowed { allow, .. } = self {
            let allow = allow
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            if let Ok(value) = HeaderValue::from_str(&allow) {
                response.insert_header((header::ALLOW, value));
            }
        }
        let mut response = response.json(ErrorBody {
            success: false,
            error: self.to_string(),
            details,
        });
        // For the request middleware's counters (`/metrics`).
        response.extensions_mut().insert(self.refusal());
        if let Some(failure) = self.auth_failure() {
            response.extensions_mut().insert(failure);
        }
        response
    }
}

impl ApiError {
    /// Why a report answered with this error was refused, for `/metrics`.
    pub fn refusal(&self) -> Refusal {
        match self {
            ApiError::Unauthorized { .. }
            | ApiError::Forbidden { .. }
            | ApiError::TokensUnavailable(_) => Refusal::Auth,
            ApiError::NotFound(_) => Refusal::NotFound,
            ApiError::Overloaded(_) => Refusal::QueueFull,
            ApiError::Unavailable(_) | ApiError::NotImplemented(_) | ApiError::Internal(_) => {
                Refusal::Storage
            }
            ApiError::MalformedJson(_)
            | ApiError::BadQuery(_)
            | ApiError::UnknownParameters(_)
            | ApiError::MethodNotAllowed { .. }
            | ApiError::PayloadTooLarge { .. }
            | ApiError::RequestTimeout { .. }
            | ApiError::UnsupportedMediaType(_)
            | ApiError::Unprocessable(_) => Refusal::Validation,
        }
    }

    /// How the request's token failed, if it did.
    pub fn auth_failure(&self) -> Option<AuthFailure> {
        match self {
            ApiError::Unauthorized {
                invalid_token: false,
                ..
            } => Some(AuthFailure::Missing),
            ApiError::Unauthorized { .. } => Some(AuthFailure::Invalid),
            ApiError::Forbidden { .. } => Some(AuthFailure::Scope),
            _ => None,
        }
    }
}

/// Error bodies for the OpenAPI document, rendered from real `ApiError`s so the examples show
/// exactly what clients receive.
pub mod examples {
    use serde_json::Value;

    use super::{ApiError, ErrorBody, FieldProblem};
    use crate::api::body::MAX_BODY_BYTES;

    fn render(err: ApiError) -> Value {
        let details = match &err {
            ApiError::Unprocessable(problems) => problems.clone(),
            _ => Vec::new(),
        };
        let body = ErrorBody {
            success: false,
            error: err.to_string(),
            details,
        };
        serde_json::to_value(body).unwrap_or_default()
    }

    pub fn unauthorized() -> Value {
        render(ApiError::Unauthorized {
            message: "the bearer token is not known".to_owned(),
            invalid_token: true,
        })
    }

    pub fn forbidden() -> Value {
        render(ApiError::Forbidden {
            message: "token splunk-ci may not write server_group rsyslog-prod".to_owned(),
            scope: "write:rsyslog-prod".to_owned(),
        })
    }

    pub fn forbidden_read() -> Value {
        render(ApiError::Forbidden {
            message: "token rsyslog-ci may not read (it needs the read scope)".to_owned(),
            scope: "read".to_owned(),
        })
    }

    pub fn malformed_json() -> Value {
        render(ApiError::MalformedJson(
            "expected `:` at line 1 column 16".to_owned(),
        ))
    }

    pub fn request_timeout() -> Value {
        render(ApiError::RequestTimeout { seconds: 10 })
    }

    pub fn too_large() -> Value {
        render(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        })
    }

    pub fn media_type() -> Value {
        render(ApiError::UnsupportedMediaType(
            "Content-Type must be application/json, got application/x-www-form-urlencoded"
                .to_owned(),
        ))
    }

    pub fn invalid_report() -> Value {
        render(ApiError::Unprocessable(vec![
            FieldProblem::new("server_group", "is required"),
            FieldProblem::new(
                "status",
                "must be one of synced, out_of_sync, failed, unknown (any case); got \"in_sync\"",
            ),
            FieldProblem::new("changed_files[1]", "must be a string, got a number"),
        ]))
    }

    pub fn invalid_name() -> Value {
        render(ApiError::field(
            "server_group",
            "may contain only letters, digits, `.`, `_` and `-`; found ' '",
        ))
    }

    pub fn invalid_query() -> Value {
        render(ApiError::Unprocessable(vec![
            FieldProblem::new(
                "limit",
                "must be a whole number from 1 to 1000; got \"5000\"",
            ),
            FieldProblem::new(
                "from",
                "`yesterday` is neither epoch milliseconds nor an RFC 3339 timestamp",
            ),
        ]))
    }

    pub fn invalid_filter() -> Value {
        render(ApiError::Unprocessable(vec![FieldProblem::new(
            "status",
            "must be one of synced, out_of_sync, failed, unknown (any case); got \"green\"",
        )]))
    }

    pub fn unknown_parameter() -> Value {
        render(ApiError::UnknownParameters(vec![FieldProblem::new(
            "stauts",
            "is not a parameter of GET /status; it takes: status, environment, server_type, \
             server_group, host, repo_name, project_name, branch, commit_sha, \
             validation_status, stale",
        )]))
    }

    pub fn bad_query() -> Value {
        render(ApiError::BadQuery("duplicate field `limit`".to_owned()))
    }

    pub fn unknown_host() -> Value {
        let (Ok(server_group), Ok(host)) = (
            crate::domain::ServerGroup::parse("rsyslog-prod"),
            crate::domain::HostName::parse("rsyslog-99"),
        ) else {
            return Value::Null;
        };
        render(ApiError::from(crate::store::StoreError::UnknownHost {
            server_group,
            host,
        }))
    }

    pub fn no_host_to_decommission() -> Value {
        let (Ok(group), Ok(host)) = (
            crate::domain::ServerGroup::parse("rsyslog-prod"),
            crate::domain::HostName::parse("rsyslog-99"),
        ) else {
            return Value::Null;
        };
        render(ApiError::no_host_to_decommission(&group, &host))
    }

    pub fn forbidden_admin() -> Value {
        render(ApiError::Forbidden {
            message: "token rsyslog-ci may not do this (it needs the admin scope)".to_owned(),
            scope: "admin".to_owned(),
        })
    }

    pub fn host_not_found() -> Value {
        render(ApiError::NotFound(
            "no host rsyslog-prod/rsyslog-99".to_owned(),
        ))
    }

    pub fn internal() -> Value {
        render(ApiError::Internal("example".into()))
    }

    pub fn tokens_unavailable() -> Value {
        render(ApiError::TokensUnavailable(
            "the token file /etc/gitops-status/auth/tokens could not be reloaded: line 3: \
             expected NAME SHA256_HEX SCOPES, found 2 fields; no token is accepted until it \
             loads again (the server re-reads it on SIGHUP and when it changes); retry later"
                .to_owned(),
        ))
    }

    pub fn overloaded() -> Value {
        render(ApiError::from(crate::store::StoreError::Overloaded))
    }

    pub fn backup_on_postgres() -> Value {
        render(ApiError::from(crate::store::StoreError::Unsupported(
            "this server runs on PostgreSQL: back the database up with pg_dump (or your \
             platform's backups and point-in-time recovery), not through this server",
        )))
    }

    pub fn not_ready() -> Value {
        render(ApiError::Unavailable(
            "database not ready: database error: error returned from database: \
             (code: 1) no such table: current_status"
                .to_owned(),
        ))
    }
}

/// Documented error responses with examples rendered from real errors.
fn error_responses(
    list: Vec<(&'static str, &'static str, serde_json::Value)>,
) -> BTreeMap<String, RefOr<Response>> {
    list.into_iter()
        .map(|(status, description, example)| {
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .example(Some(example))
                .build();
            let response = ResponseBuilder::new()
                .description(description)
                .content("application/json", content)
                .build();
            (status.to_owned(), RefOr::T(response))
        })
        .collect()
}

/// The error responses every report endpoint (POST) documents: `responses(..., ReportErrors)`.
pub struct ReportErrors;

impl utoipa::IntoResponses for ReportErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut responses = error_responses(vec![
            ("400", "The body is not JSON", examples::malformed_json()),
            (
                "401",
                "With a token file: no bearer token, or an unknown one (WWW-Authenticate says which)",
                examples::unauthorized(),
            ),
            (
                "403",
                "The token has no write scope for this server_group; nothing was stored",
                examples::forbidden(),
            ),
            (
                "408",
                "The body did not arrive within the request timeout",
                examples::request_timeout(),
            ),
            ("413", "The body is larger than 1 MiB", examples::too_large()),
            ("415", "The Content-Type is not application/json", examples::media_type()),
            (
                "422",
                "Members are missing or invalid; `details` names each",
                examples::invalid_report(),
            ),
            ("500", "Database failure; nothing was stored", examples::internal()),
            (
                "503",
                "The database cannot take the report now (the writer's queue is full, another \
                 connection holds its lock, the disk is full), or the token file could not be \
                 reloaded and no token is accepted until it is; nothing was stored, retry",
                examples::overloaded(),
            ),
        ]);
        if let Some(RefOr::T(response)) = responses.get_mut("503") {
            let header = HeaderBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
                .description(Some(
                    "When the writer's queue is full or the token file could not be reloaded: \
                     seconds to wait before retrying",
                ))
                .build();
            response
                .headers
                .insert("Retry-After".to_owned(), RefOr::T(header));
        }
        responses
    }
}

/// The answers of admin endpoints to a caller without the admin scope.
pub struct AdminAuthErrors;

impl utoipa::IntoResponses for AdminAuthErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_responses(vec![
            (
                "401",
                "With a token file: no bearer token, or an unknown one",
                examples::unauthorized(),
            ),
            (
                "403",
                "The token has no admin scope",
                examples::forbidden_admin(),
            ),
        ])
    }
}

/// The answers of read endpoints when the server runs with --read-requires-token.
pub struct ReadAuthErrors;

impl utoipa::IntoResponses for ReadAuthErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_responses(vec![
            (
                "401",
                "With --read-requires-token: no bearer token, or an unknown one",
                examples::unauthorized(),
            ),
            (
                "403",
                "With --read-requires-token: the token has no read scope",
                examples::forbidden_read(),
            ),
            (
                "503",
                "With --read-requires-token: the token file could not be reloaded, and no \
                 token is accepted until it is; retry",
                examples::tokens_unavailable(),
            ),
        ])
    }
}
