//! The HTTP API: one module per resource, each holding its handlers and DTOs. `configure`
//! registers every handler; the OpenAPI document is collected from the same registration, so
//! routes and spec cannot drift.

pub mod admin;
pub mod auth;
pub mod badge;
pub mod body;
pub mod commits;
pub mod cron;
pub mod decommission;
pub mod error;
pub mod health;
pub mod history;
pub mod index;
pub mod legacy;
pub mod metrics;
pub mod middleware;
pub mod params;
pub mod pipeline;
#[cfg(test)]
mod prop_tests;
pub mod status;
pub mod summary;
pub mod transitions;

use actix_web::body::MessageBody;
use actix_web::dev::{ResourceDef, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::http::Method;
use actix_web::middleware::{ErrorHandlerResponse, Next};
use actix_web::{error::InternalError, web, HttpMessage as _, HttpRequest, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::store::{OnceKey, RequestMeta, Store, StoredAnswer, Written};

use self::error::ApiError;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppContext {
    pub store: Store,
    /// The token file's tokens; None: no token file, everything open.
    pub auth: Option<std::sync::Arc<crate::auth::Auth>>,
    /// How long a request body may take to arrive (then 408).
    pub body_timeout: std::time::Duration,
    /// The last rendered `GET /status` body.
    pub status_cache: std::sync::Arc<status::StatusCache>,
    /// Retention: its policy, its last pass, and a pass on demand.
    pub pruner: std::sync::Arc<crate::pruner::Pruner>,
    /// The background tasks: one that died makes `/ready` fail.
    pub supervisor: std::sync::Arc<crate::supervisor::Supervisor>,
    /// The server's clock.
    pub clock: crate::domain::Clock,
    /// Counters and histograms for `/metrics`.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// `/metrics` carries one series per host.
    pub metrics_per_host: bool,
    /// Badges need no token even with --read-requires-token.
    pub public_badges: bool,
}

/// Registers every API handler (the spec is collected from this).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(pipeline::post_pipeline)
        .service(cron::post_cron)
        .service(status::list_status)
        .service(status::list_status_json)
        .service(status::group_status)
        .service(status::host_status)
        .service(decommission::decommission)
        .service(history::host_history)
        .service(history::history)
        .service(legacy::post_v1_status)
        .service(legacy::get_v1_status)
        .service(health::health)
        .service(health::ready)
        .service(metrics::metrics)
        .service(index::index)
        .service(admin::prune)
        .service(admin::backup)
        .service(summary::summary)
        .service(summary::groups)
        .service(transitions::transitions)
        .service(commits::commits)
        .service(commits::commit_hosts)
        .service(badge::host_svg)
        .service(badge::host_json)
        .service(badge::group_svg)
        .service(badge::group_json);
}

/// Merges two validations so one 422 names the problems of both.
pub(crate) fn both<A, B>(
    a: Result<A, ApiError>,
    b: Result<B, ApiError>,
) -> Result<(A, B), ApiError> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(ApiError::Unprocessable(mut first)), Err(ApiError::Unprocessable(second))) => {
            first.extend(second);
            Err(ApiError::Unprocessable(first))
        }
        (Err(err), _) | (_, Err(err)) => Err(err),
    }
}

/// A query parameter's value, with an empty value counted as absent: Grafana sends `?host=`
/// for an empty dashboard variable.
pub(crate) fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// How an endpoint answers an accepted report: its status code and JSON body. The answer's
/// `stale` is as of the report's arrival, so the same report always gets the same answer.
pub(crate) type Render =
    fn(&crate::domain::StalePolicy, &crate::store::Recorded) -> Result<StoredAnswer, ApiError>;

/// The write path every report endpoint shares: parse the body, check the caller may write
/// its server_group, store it with who sent it, answer.
pub(crate) async fn record(
    ctx: &AppContext,
    req: &HttpRequest,
    caller: auth::Caller,
    body: body::JsonObject,
    parse: fn(&body::JsonObject) -> Result<crate::domain::Report, ApiError>,
    render: Render,
) -> Result<HttpResponse, ApiError> {
    let report = parse(&body)?;
    let principal = caller.authorize_write(&report.server_group)?;
    let meta = request_meta(req, body.raw, principal);
    Ok(write(ctx, req, report, meta, render).await??)
}

/// The `Idempotency-Key` header: 1–255 visible ASCII characters, as the IETF httpapi draft
/// and Stripe have it.
fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let mut values = req.headers().get_all("idempotency-key");
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let problem = |p: &str| ApiError::field("Idempotency-Key", p);
    if values.next().is_some() {
        return Err(problem("is sent more than once; send one key"));
    }
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > 255 || !bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(problem(
            "must be 1 to 255 visible ASCII characters (no spaces), e.g. a UUID",
        ));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// The answer as a response; a replay says so.
fn answer(stored: StoredAnswer, replayed: bool) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(stored.status)
        .unwrap_or(actix_web::http::StatusCode::OK);
    let mut response = HttpResponse::build(status);
    response.content_type("application/json");
    if replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    response.body(stored.body)
}

/// Stores a parsed report and answers it. With an `Idempotency-Key`, a repeat of the same
/// request (same key, token, method, path and body) within the window writes nothing and gets
/// the first answer again with `Idempotent-Replayed: true`; a repeat still waiting for the
/// writer when the first commits gets that answer too. The outer error is the request's
/// (a bad key, or a key used for another request); the inner one the store's, for the
/// endpoint to word.
pub(crate) async fn write(
    ctx: &AppContext,
    req: &HttpRequest,
    report: crate::domain::Report,
    meta: RequestMeta,
    render: Render,
) -> Result<Result<HttpResponse, crate::store::StoreError>, ApiError> {
    let Some(key) = idempotency_key(req)? else {
        return Ok(match ctx.store.record(report, meta).await {
            Ok(recorded) => Ok(answer(render(ctx.store.stale_policy(), &recorded)?, false)),
            Err(err) => Err(err),
        });
    };
    let principal = meta.principal.clone().unwrap_or_default();
    let fingerprint = {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(req.method().as_str());
        hash.update(b"\n");
        hash.update(req.path());
        hash.update(b"\n");
        hash.update(&meta.raw_body);
        hex::encode(hash.finalize())
    };
    // A retry after a lost answer usually finds its key already stored: answer it without
    // queueing for the writer.
    let window = ctx.store.idempotency_window();
    if let Some((stored, found)) = ctx
        .store
        .stored_answer(&principal, &key, ctx.clock.now(), window)
        .await?
    {
        return if stored == fingerprint {
            Ok(Ok(answer(found, true)))
        } else {
            Err(crate::store::StoreError::KeyReused(key).into())
        };
    }
    let policy = std::sync::Arc::clone(ctx.store.stale_policy());
    let once = OnceKey {
        principal,
        key,
        fingerprint,
        render: Box::new(move |recorded| render(&policy, recorded).map_err(|err| err.to_string())),
    };
    Ok(match ctx.store.record_once(report, meta, once).await {
        Ok(Written::Fresh(_, Some(stored))) => Ok(answer(stored, false)),
        Ok(Written::Fresh(recorded, None)) => {
            Ok(answer(render(ctx.store.stale_policy(), &recorded)?, false))
        }
        Ok(Written::Replayed(stored)) => Ok(answer(stored, true)),
        Err(err) => Err(err),
    })
}

/// Who sent the request, for the audit trail.
pub(crate) fn request_meta(
    req: &HttpRequest,
    raw_body: String,
    principal: Option<String>,
) -> RequestMeta {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    RequestMeta {
        principal,
        client_addr: req.peer_addr().map(|a| a.ip().to_string()),
        forwarded_for: header("x-forwarded-for"),
        user_agent: header("user-agent"),
        raw_body,
        import_entry: None,
        request_id: req
            .extensions()
            .get::<middleware::RequestId>()
            .map(|id| id.0.clone()),
    }
}

/// The API's routes, their methods and each method's query parameters, from the spec: tells
/// 404 (no such path) from 405 (wrong method), and finds unknown query parameters.
#[derive(Debug)]
pub struct RouteTable(Vec<Route>);

/// A path, and each method on it with the query parameters it takes.
type Route = (ResourceDef, Vec<(Method, Vec<String>)>);

impl RouteTable {
    pub fn from_spec(spec: &utoipa::openapi::OpenApi) -> Self {
        use utoipa::openapi::path::{Operation, ParameterIn};
        let query_names = |operation: &Operation| -> Vec<String> {
            operation
                .parameters
                .iter()
                .flatten()
                .filter_map(|p| match p {
                    utoipa::openapi::RefOr::T(p)
                        if matches!(p.parameter_in, ParameterIn::Query) =>
                    {
                        Some(p.name.clone())
                    }
                    _ => None,
                })
                .collect()
        };
        let routes = spec
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let methods = [
                    (Method::GET, &item.get),
                    (Method::POST, &item.post),
                    (Method::PUT, &item.put),
                    (Method::DELETE, &item.delete),
                    (Method::PATCH, &item.patch),
                ]
                .into_iter()
                .filter_map(|(method, operation)| {
                    operation.as_ref().map(|op| (method, query_names(op)))
                })
                .collect();
                (ResourceDef::new(path.as_str()), methods)
            })
            .collect();
        RouteTable(routes)
    }

    /// The routes a path belongs to: a literal route (`/status/cron`) is the resource; a
    /// template that also matches (`/status/{server_group}`) is not.
    fn routes(&self, path: &str) -> Vec<&Route> {
        let matching: Vec<_> = self
            .0
            .iter()
            .filter(|(def, _)| def.is_match(path))
            .collect();
        let literal: Vec<_> = matching
            .iter()
            .copied()
            .filter(|(def, _)| !def.pattern().is_some_and(|p| p.contains('{')))
            .collect();
        if literal.is_empty() {
            matching
        } else {
            literal
        }
    }

    /// The methods `path` answers; every GET answers HEAD too.
    fn allowed(&self, path: &str) -> Vec<Method> {
        let mut allowed: Vec<Method> = self
            .routes(path)
            .into_iter()
            .flat_map(|(_, methods)| methods.iter().map(|(method, _)| method.clone()))
            .collect();
        if allowed.contains(&Method::GET) {
            allowed.push(Method::HEAD);
        }
        allowed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        allowed.dedup();
        allowed
    }

    /// Whether HEAD on `path` is answered as GET: the API has a GET there, or the path is not
    /// the API's (Swagger UI and the spec it serves).
    pub(crate) fn answers_get(&self, path: &str) -> bool {
        let routes = self.routes(path);
        routes.is_empty()
            || routes
                .iter()
                .any(|(_, methods)| methods.iter().any(|(m, _)| *m == Method::GET))
    }

    /// The query parameters `method` on `path` takes; None when the API has no such operation
    /// (then 404 or 405 answers it).
    fn parameters(&self, method: &Method, path: &str) -> Option<&[String]> {
        self.routes(path).into_iter().find_map(|(_, methods)| {
            methods
                .iter()
                .find(|(m, _)| m == method)
                .map(|(_, names)| names.as_slice())
        })
    }
}

/// Refuses a request whose query string names a parameter its operation does not take (400
/// naming each one), so `?stauts=failed` is never read as "no filter".
pub async fn strict_query(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<impl MessageBody>>, actix_web::Error> {
    let unknown = match (req.query_string(), req.app_data::<web::Data<RouteTable>>()) {
        ("", _) | (_, None) => Vec::new(),
        (query, Some(routes)) => match routes.parameters(req.method(), req.path()) {
            None => Vec::new(),
            Some(known) => unknown_parameters(query, known, req.method(), req.path()),
        },
    };
    if unknown.is_empty() {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let response = actix_web::ResponseError::error_response(&ApiError::UnknownParameters(unknown));
    Ok(req.into_response(response).map_into_right_body())
}

fn unknown_parameters(
    query: &str,
    known: &[String],
    method: &Method,
    path: &str,
) -> Vec<error::FieldProblem> {
    let Ok(pairs) = web::Query::<Vec<(String, String)>>::from_query(query) else {
        // Not even name=value pairs: a 400 as well, whether or not the handler reads the
        // query.
        return vec![error::FieldProblem::new(
            "(query)",
            format!("{query:?} cannot be read as name=value pairs"),
        )];
    };
    let takes = if known.is_empty() {
        "it takes no query parameters".to_owned()
    } else {
        format!("it takes: {}", known.join(", "))
    };
    let mut names: Vec<&str> = Vec::new();
    for (name, _) in pairs.iter() {
        if !known.iter().any(|k| k == name) && !names.contains(&name.as_str()) {
            names.push(name);
        }
    }
    names
        .into_iter()
        .map(|name| {
            error::FieldProblem::new(
                name,
                format!("is not a parameter of {method} {path}; {takes}"),
            )
        })
        .collect()
}

/// Answers every request no handler matched: 405 with `Allow` when the path exists, else 404.
pub async fn fallback(req: HttpRequest, routes: web::Data<RouteTable>) -> ApiError {
    let allow = routes.allowed(req.path());
    if allow.is_empty() {
        ApiError::NotFound(format!("no such endpoint: {} {}", req.method(), req.path()))
    } else {
        ApiError::MethodNotAllowed {
            method: req.method().clone(),
            path: req.path().to_owned(),
            allow,
        }
    }
}

/// actix's own extractor failures, answered in the API's error shape.
pub fn query_error(err: actix_web::error::QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    let api = ApiError::BadQuery(err.to_string());
    let response = actix_web::ResponseError::error_response(&api);
    InternalError::from_response(err, response).into()
}

pub fn path_error(err: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    let api = ApiError::field("(path)", err.to_string());
    let response = actix_web::ResponseError::error_response(&api);
    InternalError::from_response(err, response).into()
}

/// Gives error responses that actix or a mounted service (Swagger UI) produced without a body
/// the API's JSON error shape, so clients meet one error format everywhere.
pub fn json_error_body<B>(
    response: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    // JSON errors are ours; an SVG is an unknown badge's grey image (meant for an <img>); an
    // HTML page is one of the pages' own (an unknown host, the sign-in form).
    let is_ours = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            let v = v.as_bytes();
            v.starts_with(b"application/json")
                || v == b"image/svg+xml"
                || v == b"text/html; charset=utf-8"
        });
    if is_ours {
        return Ok(ErrorHandlerResponse::Response(
            response.map_into_left_body(),
        ));
    }
    let status = response.status();
    let error = match status.canonical_reason() {
        Some(reason) => format!("{reason}: {}", response.request().path()),
        None => format!("HTTP {}", status.as_u16()),
    };
    let (request, _) = response.into_parts();
    let body = HttpResponse::build(status).json(error::ErrorBody {
        success: false,
        error,
        details: Vec::new(),
    });
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(request, body).map_into_right_body(),
    ))
}

/// Lets `fallback` return the error itself as its response.
impl actix_web::Responder for ApiError {
    type Body = actix_web::body::BoxBody;

    fn respond_to(self, _: &HttpRequest) -> HttpResponse {
        actix_web::ResponseError::error_response(&self)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};
    use utoipa::openapi::{RefOr, Schema};
    use utoipa::PartialSchema;

    use super::body::JsonObject;
    use super::error::ApiError;
    use crate::domain::Report;

    type Parse = fn(&JsonObject) -> Result<Report, ApiError>;

    fn documented_members<T: PartialSchema>() -> Vec<String> {
        match T::schema() {
            RefOr::T(Schema::Object(object)) => object.properties.keys().cloned().collect(),
            _ => panic!("not an object schema"),
        }
    }

    fn body(value: &Value) -> JsonObject {
        JsonObject {
            fields: value.as_object().unwrap().clone(),
            raw: value.to_string(),
        }
    }

    /// The body schemas document what the parsers read: every documented member is read
    /// (a value of the wrong type for it is refused, naming it).
    fn assert_parser_reads_every_documented_member(
        members: Vec<String>,
        valid: Value,
        parse: Parse,
    ) {
        assert!(parse(&body(&valid)).is_ok(), "the valid body parses");
        assert!(!members.is_empty());
        for member in members {
            let mut invalid = valid.clone();
            invalid[&member] = json!({"not": "valid for any member"});
            match parse(&body(&invalid)) {
                Err(ApiError::Unprocessable(problems)) => assert!(
                    problems.iter().any(|p| p.field == member),
                    "{member} not named in {problems:?}"
                ),
                other => panic!("{member}: expected 422, got {other:?}"),
            }
        }
    }

    #[test]
    fn pipeline_parser_reads_every_documented_member() {
        assert_parser_reads_every_documented_member(
            documented_members::<super::pipeline::PipelineReportBody>(),
            json!({"server_group": "g", "host": "h", "status": "synced"}),
            super::pipeline::parse,
        );
    }

    #[test]
    fn cron_parser_reads_every_documented_member() {
        assert_parser_reads_every_documented_member(
            documented_members::<super::cron::CronReportBody>(),
            json!({"server_group": "g", "host": "h"}),
            super::cron::parse,
        );
    }

    #[test]
    fn v1_parser_reads_every_documented_member() {
        assert_parser_reads_every_documented_member(
            documented_members::<super::legacy::V1StatusBody>(),
            json!({"repo": "g", "server": "h", "sync_status": "SYNCED"}),
            super::legacy::parse,
        );
    }
}
