//! Reading report bodies. `JsonObject` is the extractor every POST uses: it checks the content
//! type and size, parses the JSON and keeps the exact bytes for the audit trail. `Fields` reads
//! members out of the object, collecting every problem so one 422 names all of them.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use serde_json::{Map, Value};

use crate::domain::{ChangedFiles, Timestamp, MAX_TEXT_LEN};

use super::error::{ApiError, FieldProblem};
use super::AppContext;

/// The largest request body accepted, in bytes (1 MiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The longest `ci_run` link a report may carry.
pub const MAX_CI_RUN_LEN: usize = 2048;

/// How long a body may take to arrive when no context says otherwise.
const DEFAULT_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A host name: 1–128 letters, digits, `.`, `_` and `-`, but not `.` or `..` (names are URL
/// path segments). The schema of what `HostName::parse` accepts.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(
    pattern = r"^(?!\.{1,2}$)[A-Za-z0-9._-]{1,128}$",
    example = "rsyslog-01"
)]
pub struct Name(pub String);

/// A server group: a name as for hosts, but not `pipeline` or `cron` (they are endpoints under
/// /status/). The schema of what `ServerGroup::parse` accepts.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(
    pattern = r"^(?!(\.{1,2}|pipeline|cron)$)[A-Za-z0-9._-]{1,128}$",
    example = "rsyslog-prod"
)]
pub struct GroupName(pub String);

/// A status: synced, out_of_sync, failed or unknown, in any case (v1 clients send SYNCED,
/// OUT_OF_SYNC, UNKNOWN). The schema of what `Status::parse` accepts.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(
    pattern = "^([sS][yY][nN][cC][eE][dD]|[oO][uU][tT]_[oO][fF]_[sS][yY][nN][cC]|[fF][aA][iI][lL][eE][dD]|[uU][nN][kK][nN][oO][wW][nN])$",
    example = "synced"
)]
pub struct StatusInput(pub String);

/// A file path of at most 4096 characters.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(max_length = 4096, example = "/etc/rsyslog.conf")]
pub struct FilePath(pub String);

/// A JSON object request body and its exact text.
pub struct JsonObject {
    pub fields: Map<String, Value>,
    pub raw: String,
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl JsonObject {
    /// Checks the Content-Type header's value: JSON, or 415.
    pub fn check_content_type(content_type: Option<&str>) -> Result<(), ApiError> {
        match content_type {
            Some(ct) if is_json(ct) => Ok(()),
            Some(ct) => Err(ApiError::UnsupportedMediaType(format!(
                "Content-Type must be application/json, got {ct}"
            ))),
            None => Err(ApiError::UnsupportedMediaType(
                "Content-Type must be application/json; the request has none \
                 (curl: -H 'Content-Type: application/json')"
                    .to_owned(),
            )),
        }
    }

    /// Parses a request body: UTF-8 JSON holding an object, or 400/422.
    pub fn parse(bytes: &[u8]) -> Result<JsonObject, ApiError> {
        let raw = String::from_utf8(bytes.to_vec())
            .map_err(|_| ApiError::MalformedJson("the body is not UTF-8".to_owned()))?;
        if raw.trim().is_empty() {
            return Err(ApiError::MalformedJson(
                "the body is empty; send a JSON object".to_owned(),
            ));
        }
        let value: Value =
            serde_json::from_str(&raw).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
        // serde_json keeps the last of two equal members while `raw` keeps both: the stored
        // fields and the audit trail's body would disagree.
        if let Some(member) = duplicate_member(&raw) {
            return Err(ApiError::field(
                member,
                "appears more than once in the body; send each member once",
            ));
        }
        match value {
            Value::Object(fields) => Ok(JsonObject { fields, raw }),
            other => Err(ApiError::field(
                "(body)",
                format!("must be a JSON object, got {}", json_type(&other)),
            )),
        }
    }
}

/// The first member that appears twice in one object of `raw` (well-formed JSON), named by
/// its path: `status`, `files[2].path`.
fn duplicate_member(raw: &str) -> Option<String> {
    let found = std::cell::RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(raw);
    let _ = serde::de::DeserializeSeed::deserialize(
        Unique {
            path: String::new(),
            found: &found,
        },
        &mut de,
    );
    found.into_inner()
}

/// Walks a JSON value and records the path of the first repeated member in `found` (then
/// stops with an error).
struct Unique<'a> {
    path: String,
    found: &'a std::cell::RefCell<Option<String>>,
}

impl Unique<'_> {
    fn child(&self, path: String) -> Self {
        Unique {
            path,
            found: self.found,
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Unique<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Unique<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        while seq
            .next_element_seed(self.child(format!("{}[{index}]", self.path)))?
            .is_some()
        {
            index += 1;
        }
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let path = if self.path.is_empty() {
                key.to_string()
            } else {
                format!("{}.{key}", self.path)
            };
            if !seen.insert(key) {
                *self.found.borrow_mut() = Some(path);
                return Err(serde::de::Error::custom("duplicate member"));
            }
            map.next_value_seed(self.child(path))?;
        }
        Ok(())
    }
}

/// The request's body, read within the body timeout and the size limit: the future to
/// await, and the Content-Type header.
fn read_body(
    req: &HttpRequest,
    payload: &mut Payload,
) -> (
    impl Future<Output = Result<web::Bytes, ApiError>> + 'static,
    Option<String>,
) {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("(not text)").to_owned());
    let timeout = req
        .app_data::<web::Data<AppContext>>()
        .map_or(DEFAULT_BODY_TIMEOUT, |ctx| ctx.body_timeout);
    let body = web::Bytes::from_request(req, payload);
    let read = async move {
        // A client trickling its body must not hold a worker's attention forever.
        tokio::time::timeout(timeout, body)
            .await
            .map_err(|_| ApiError::RequestTimeout {
                seconds: timeout.as_secs(),
            })?
            .map_err(|err| match err.as_error::<PayloadError>() {
                Some(PayloadError::Overflow) => ApiError::PayloadTooLarge {
                    limit: MAX_BODY_BYTES,
                },
                _ => ApiError::MalformedJson(format!("cannot read the request body: {err}")),
            })
    };
    (read, content_type)
}

impl FromRequest for JsonObject {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let (body, content_type) = read_body(req, payload);
        Box::pin(async move {
            // Not polled before the content type is checked: a refused body is never read.
            JsonObject::check_content_type(content_type.as_deref())?;
            JsonObject::parse(&body.await?)
        })
    }
}

/// A body that may be left out (a DELETE's): None when the request has none; otherwise a
/// JSON object, checked as `JsonObject` is.
pub struct OptionalJsonObject(pub Option<JsonObject>);

impl FromRequest for OptionalJsonObject {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
        let (body, content_type) = read_body(req, payload);
        Box::pin(async move {
            if declared.unwrap_or(0) == 0 && !chunked {
                return Ok(OptionalJsonObject(None));
            }
            JsonObject::check_content_type(content_type.as_deref())?;
            let bytes = body.await?;
            if bytes.is_empty() {
                return Ok(OptionalJsonObject(None));
            }
            JsonObject::parse(&bytes).map(|object| OptionalJsonObject(Some(object)))
        })
    }
}

pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads members of a JSON object. Absent and `null` members are the same: not sent.
/// Every problem is recorded; `finish` turns them into one 422.
pub struct Fields<'a> {
    object: &'a Map<String, Value>,
    problems: Vec<FieldProblem>,
}

impl<'a> Fields<'a> {
    pub fn new(object: &'a Map<String, Value>) -> Self {
        Fields {
            object,
            problems: Vec::new(),
        }
    }

    fn get(&self, name: &'static str) -> Option<&'a Value> {
        self.object.get(name).filter(|v| !v.is_null())
    }

    pub fn problem(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        self.problems.push(FieldProblem::new(field, problem));
    }

    fn string(&mut self, name: &'static str) -> Option<&'a str> {
        match self.get(name)? {
            Value::String(s) => Some(s),
            other => {
                self.problem(name, format!("must be a string, got {}", json_type(other)));
                None
            }
        }
    }

    /// A member that must be present, as a string that `parse` accepts.
    pub fn required<T>(
        &mut self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        if self.get(name).is_none() {
            self.problem(name, "is required");
            return None;
        }
        self.optional(name, parse)
    }

    /// A member that may be absent, as a string that `parse` accepts.
    pub fn optional<T>(
        &mut self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let text = self.string(name)?;
        match parse(text) {
            Ok(value) => Some(value),
            Err(problem) => {
                self.problem(name, problem);
                None
            }
        }
    }

    /// Free text of at most `max` characters, without U+0000 (PostgreSQL text cannot hold
    /// it, and both backends must take the same reports).
    pub fn text(&mut self, name: &'static str, max: usize) -> Option<String> {
        self.optional(name, |s| {
            if s.chars().count() > max {
                Err(format!("must be at most {max} characters"))
            } else if s.contains('\0') {
                Err("must not contain the character U+0000 (NUL)".to_owned())
            } else {
                Ok(s.to_owned())
            }
        })
    }

    /// A short free-text field (names, commit, branch…).
    pub fn short_text(&mut self, name: &'static str) -> Option<String> {
        self.text(name, MAX_TEXT_LEN)
    }

    /// The optional `ci_run` link every report body documents: checked (a string of at most
    /// 2048 characters), then kept in the raw body only.
    pub fn ci_run(&mut self) {
        self.text("ci_run", MAX_CI_RUN_LEN);
    }

    /// An RFC 3339 time with a time zone.
    pub fn timestamp(&mut self, name: &'static str) -> Option<Timestamp> {
        self.optional(name, Timestamp::parse_rfc3339)
    }

    /// A non-negative integer.
    pub fn count(&mut self, name: &'static str) -> Option<u32> {
        let value = self.get(name)?;
        // JSON has one number type: 2.0 is the integer 2, as JSON Schema's "integer" says.
        let whole = value.as_u64().or_else(|| {
            value
                .as_f64()
                .filter(|f| f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(f))
                .map(|f| f as u64)
        });
        match whole.and_then(|n| u32::try_from(n).ok()) {
            Some(n) => Some(n),
            None => {
                let problem = match value {
                    Value::Number(_) => "must be a whole number from 0 to 4294967295".to_owned(),
                    other => format!("must be a number, got {}", json_type(other)),
                };
                self.problem(name, problem);
                None
            }
        }
    }

    /// A list of files. Each entry is read by `entry`, which returns the path or a problem;
    /// problems name the entry by index, e.g. `changed_files[2]`.
    pub fn files(
        &mut self,
        name: &'static str,
        entry: impl Fn(&Value) -> Result<String, (Option<&'static str>, String)>,
    ) -> Option<ChangedFiles> {
        let items = match self.get(name)? {
            Value::Array(items) => items,
            other => {
                self.problem(name, format!("must be an array, got {}", json_type(other)));
                return None;
            }
        };
        let mut paths = Vec::with_capacity(items.len());
        let mut ok = true;
        for (index, item) in items.iter().enumerate() {
            match entry(item) {
                Ok(path) => paths.push(path),
                Err((member, problem)) => {
                    ok = false;
                    let field = match member {
                        Some(member) => format!("{name}[{index}].{member}"),
                        None => format!("{name}[{index}]"),
                    };
                    self.problem(field, problem);
                }
            }
        }
        if !ok {
            return None;
        }
        match ChangedFiles::new(paths) {
            Ok(files) => Some(files),
            Err((index, problem)) => {
                let field = match index {
                    Some(i) => format!("{name}[{i}]"),
                    None => name.to_owned(),
                };
                self.problem(field, problem);
                None
            }
        }
    }

    /// The 422 for the problems so far (used when a required member is missing).
    pub fn into_error(self) -> ApiError {
        ApiError::Unprocessable(self.problems)
    }

    /// Ok when no problem was recorded.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(self.into_error())
        }
    }
}

/// A `changed_files` entry in v2: a string.
pub fn string_entry(item: &Value) -> Result<String, (Option<&'static str>, String)> {
    match item {
        Value::String(s) => Ok(s.clone()),
        other => Err((None, format!("must be a string, got {}", json_type(other)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("Application/JSON"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("application/x-www-form-urlencoded"));
        assert!(!is_json("text/json"));
    }

    #[test]
    fn every_problem_is_collected() {
        let body = object(json!({"host": 5, "changed_files": ["a", 1, "b", {}]}));
        let mut f = Fields::new(&body);
        assert_eq!(f.required("server_group", |s| Ok(s.to_owned())), None);
        assert_eq!(f.required("host", |s| Ok(s.to_owned())), None);
        assert!(f.files("changed_files", string_entry).is_none());
        let ApiError::Unprocessable(problems) = f.finish().unwrap_err() else {
            panic!("expected 422")
        };
        let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "server_group",
                "host",
                "changed_files[1]",
                "changed_files[3]"
            ]
        );
        assert_eq!(problems[1].problem, "must be a string, got a number");
    }

    #[test]
    fn null_is_the_same_as_absent() {
        let body = object(json!({"commit_sha": null}));
        let mut f = Fields::new(&body);
        assert_eq!(f.short_text("commit_sha"), None);
        assert!(f.finish().is_ok());
    }

    #[test]
    fn counts_must_be_small_non_negative_integers() {
        let body = object(json!({"a": 2, "b": -1, "c": "2", "d": 1.5, "e": 3.0}));
        let mut f = Fields::new(&body);
        assert_eq!(f.count("a"), Some(2));
        assert_eq!(f.count("e"), Some(3));
        assert_eq!(f.count("b"), None);
        assert_eq!(f.count("c"), None);
        assert_eq!(f.count("d"), None);
        let ApiError::Unprocessable(problems) = f.finish().unwrap_err() else {
            panic!("expected 422")
        };
        assert_eq!(problems.len(), 3);
    }
}
