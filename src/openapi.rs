//! The OpenAPI document: general information here, paths and schemas collected from the
//! handlers that `api::configure` registers.

use actix_web::App;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Spec;
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;

use crate::api;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "gitops-status",
        description = "Per-host GitOps sync status for Grafana, with an SQLite audit history.\n\n\
            CI pipelines and cron drift checks POST reports; Grafana's Infinity datasource reads \
            the current state of every host from `GET /status`; every accepted report is kept in \
            `GET /history`.\n\n\
            Every error has the same JSON body (`ErrorBody`): `success: false`, an `error` \
            sentence and `details` naming each offending field. A path the API does not have \
            answers 404; a known path with another method answers 405 with an `Allow` header. \
            Every GET also answers HEAD (the same status and headers, no body), and `Allow` \
            lists HEAD wherever it lists GET. Every response carries `X-Request-Id`: the \
            client's own when it sent a sane one (1–128 letters, digits, `-`, `_`, `.`, `:`), \
            else a new one; the server's log lines for the request carry it too. \
            Timestamps in responses are RFC 3339 UTC with millisecond precision.",
        license(name = "MIT", identifier = "MIT"),
    ),
    tags(
        (name = "reports", description = "Write endpoints for CI pipelines and cron drift checks"),
        (name = "status", description = "The current state of every host, for Grafana"),
        (name = "history", description = "The audit trail: every accepted report"),
        (name = "fleet", description = "Counts, changes of status and rollouts, for dashboards"),
        (name = "v1", description = "The v1 single-object API, kept for existing pipelines"),
        (name = "badges", description = "SVG and shields.io badges of a host or a group, for READMEs and chat"),
        (name = "probes", description = "Liveness, readiness and Prometheus metrics"),
        (name = "admin", description = "Retention on demand and backups, for a token with the admin scope"),
    ),
    servers(
        (url = "/", description = "The server that serves this document"),
    ),
    components(schemas(api::error::ErrorBody, api::error::FieldProblem)),
    modifiers(&BearerScheme)
)]
struct ApiDoc;

/// The `bearer` security scheme that operations name with their scopes.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut Spec) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from the server's token file (`gitops-status token new`). \
                         Writes need a `write:<glob>` scope matching the report's server_group \
                         (or `admin`); reads need `read` (or `admin`) only when the server runs \
                         with --read-requires-token; /admin/ needs `admin`. Without a token \
                         file no token is needed.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The whole document, as served at /api-docs/openapi.json.
pub fn spec() -> Spec {
    let (_, paths) = App::new()
        .into_utoipa_app()
        .configure(api::configure)
        .split_for_parts();
    let mut spec = ApiDoc::openapi();
    spec.merge(paths);
    optional_body(&mut spec, "/status/{server_group}/{host}");
    unknown_parameters_are_400(&mut spec);
    idempotency_keys(&mut spec);
    spec
}

/// The report endpoints take an `Idempotency-Key` header and mark a replayed answer
/// (`api::write`); documented here for all four at once.
fn idempotency_keys(spec: &mut Spec) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{Header, RefOr, Required};
    let writes = [
        ("/status/pipeline", "post"),
        ("/status/cron", "post"),
        ("/api/status", "post"),
        ("/status/{server_group}/{host}", "delete"),
    ];
    for (path, method) in writes {
        let Some(item) = spec.paths.paths.get_mut(path) else {
            continue;
        };
        let operation = match method {
            "post" => item.post.as_mut(),
            _ => item.delete.as_mut(),
        };
        let Some(operation) = operation else { continue };
        let key = ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "Makes retries safe: a repeat with the same key and the same request (token, \
                 path, body) within --idempotency-window (24h) writes nothing and gets the \
                 first answer again, with `Idempotent-Replayed: true`; a repeat that arrives \
                 while the first waits for the writer gets that answer once it commits. The \
                 same key with another request is a 422. 1–255 visible ASCII characters, e.g. \
                 a UUID; one per report, reused across its retries.",
            ))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[!-~]{1,255}$")),
            ))
            .example(Some(serde_json::json!(
                "4f7c3a9e-2b1d-4c8e-9a6f-0d5e7b8c1a23"
            )))
            .build();
        operation
            .parameters
            .get_or_insert_with(Vec::new)
            .push(RefOr::T(key));
        for (code, response) in operation.responses.responses.iter_mut() {
            let RefOr::T(response) = response else {
                continue;
            };
            if code.starts_with('2') {
                let mut header = Header::new(ObjectBuilder::new().schema_type(Type::String));
                header.description = Some(
                    "`true` when the answer is the stored answer of an earlier request with \
                     the same Idempotency-Key (nothing was written now)"
                        .to_owned(),
                );
                response
                    .headers
                    .insert("Idempotent-Replayed".to_owned(), RefOr::T(header));
            } else if code == "503" {
                response.description.push_str(
                    ". Except when the writer did not answer within 30 s (the `error` says so): \
                     then the report may be stored; retry with the same Idempotency-Key to find \
                     out, without a second row",
                );
            }
        }
    }
}

/// Every operation answers 400 to a query parameter it does not take (`api::strict_query`):
/// documented once here rather than on each handler.
fn unknown_parameters_are_400(spec: &mut Spec) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    const ALSO: &str = "A query parameter this endpoint does not take";
    for item in spec.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let responses = &mut operation.responses.responses;
            match responses.get_mut("400") {
                Some(RefOr::T(response)) if !response.description.contains(ALSO) => {
                    response.description = format!("{}; or: {ALSO}", response.description);
                }
                Some(_) => {}
                None => {
                    let content = ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .example(Some(api::error::examples::unknown_parameter()))
                        .build();
                    let response = ResponseBuilder::new()
                        .description(ALSO)
                        .content("application/json", content)
                        .build();
                    responses.insert("400".to_owned(), RefOr::T(response));
                }
            }
        }
    }
}

/// The DELETE of a host takes no body or an object. utoipa marks a body optional only when
/// its type is an `Option`, which would also document a JSON `null`; so it is marked here.
fn optional_body(spec: &mut Spec, path: &str) {
    use utoipa::openapi::Required;
    let body = spec
        .paths
        .paths
        .get_mut(path)
        .and_then(|item| item.delete.as_mut())
        .and_then(|operation| operation.request_body.as_mut());
    if let Some(utoipa::openapi::RefOr::T(body)) = body {
        body.required = Some(Required::False);
    }
}

/// The document as YAML: what `gitops-status openapi` prints and openapi.yaml holds.
pub fn yaml() -> anyhow::Result<String> {
    Ok(spec().to_yaml()?)
}
