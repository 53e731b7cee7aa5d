//! Property tests of request parsing and validation: no input panics, and whatever is
//! accepted satisfies the rules the domain types promise.

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::body::JsonObject;
use super::error::ApiError;
use super::{cron, history, legacy, pipeline};
use crate::domain::{HostName, ServerGroup, Status, Timestamp};

/// Cases per property; PROPTEST_CASES overrides it.
fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default);
    ProptestConfig::with_cases(cases)
}

const MEMBERS: [&str; 22] = [
    "server_group",
    "host",
    "status",
    "changed_files",
    "project_name",
    "repo_name",
    "server_type",
    "environment",
    "validation_status",
    "validation_message",
    "commit_sha",
    "branch",
    "updated_by",
    "last_pipeline_run",
    "last_cron_check",
    "repo",
    "server",
    "sync_status",
    "drift_count",
    "files",
    "last_check",
    "name",
];

/// Strings that reach deep into the validators: valid values, near misses, and noise.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("rsyslog-prod".to_owned()),
        Just("synced".to_owned()),
        Just("OUT_OF_SYNC".to_owned()),
        Just("2026-04-26T10:30:00Z".to_owned()),
        Just("9999-12-31T23:59:59-23:59".to_owned()),
        Just("0000-01-01T00:00:00+23:59".to_owned()),
        Just("..".to_owned()),
        Just(String::new()),
        "[a-zA-Z0-9._-]{1,130}",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})",
        any::<String>(),
        "\\PC{0,40}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        text().prop_map(Value::String),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(MEMBERS.to_vec()), inner), 0..6).prop_map(
                |entries| Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect()
                )
            ),
        ]
    })
}

/// An object whose members are mostly the API's own: random, or a valid report (v2 and v1
/// members) with random members added or overwritten, so both answers are reached.
fn report_object() -> impl Strategy<Value = Map<String, Value>> {
    prop_oneof![random_object(), valid_then_random()]
}

fn valid_then_random() -> impl Strategy<Value = Map<String, Value>> {
    let name = "[a-z0-9][a-z0-9._-]{0,20}";
    let status = prop::sample::select(vec!["synced", "OUT_OF_SYNC", "Failed", "unknown"]);
    (name, name, status, random_object()).prop_map(|(group, host, status, extra)| {
        let mut fields = Map::new();
        for (k, v) in [
            ("server_group", &group),
            ("host", &host),
            ("status", &status.to_owned()),
            ("repo", &group),
            ("server", &host),
            ("sync_status", &status.to_owned()),
        ] {
            fields.insert(k.to_owned(), Value::from(v.as_str()));
        }
        fields.extend(extra);
        fields
    })
}

fn random_object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec(
        (
            prop_oneof![4 => prop::sample::select(MEMBERS.to_vec()).prop_map(str::to_owned), 1 => any::<String>()],
            json(),
        ),
        0..8,
    )
    .prop_map(|entries| entries.into_iter().collect())
}

fn object(fields: Map<String, Value>) -> JsonObject {
    let raw = Value::Object(fields.clone()).to_string();
    JsonObject { fields, raw }
}

/// Accepted: the names are the body's own. Refused: a 422 naming real members.
fn check_outcome(
    fields: &Map<String, Value>,
    outcome: Result<crate::domain::Report, ApiError>,
    group_member: &str,
    host_member: &str,
) -> Result<(), TestCaseError> {
    match outcome {
        Ok(report) => {
            prop_assert_eq!(
                fields.get(group_member),
                Some(&Value::from(report.server_group.as_str()))
            );
            prop_assert_eq!(
                fields.get(host_member),
                Some(&Value::from(report.host.as_str()))
            );
            if let Some(files) = report.changed_files() {
                prop_assert!(files.as_slice().len() <= crate::domain::MAX_CHANGED_FILES);
            }
        }
        Err(ApiError::Unprocessable(problems)) => {
            prop_assert!(!problems.is_empty());
            for p in problems {
                let member = p.field.split(['[', '.']).next().unwrap_or("");
                prop_assert!(MEMBERS.contains(&member), "unexpected field {}", p.field);
                prop_assert!(!p.problem.is_empty());
            }
        }
        Err(other) => prop_assert!(false, "unexpected error {other:?}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(3000))]

    #[test]
    fn any_bytes_parse_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(body) = JsonObject::parse(&bytes) {
            let _ = pipeline::parse(&body);
            let _ = cron::parse(&body);
            let _ = legacy::parse(&body);
        }
    }

    #[test]
    fn json_text_round_trips_or_is_refused(value in json()) {
        let text = value.to_string();
        match JsonObject::parse(text.as_bytes()) {
            Ok(body) => {
                prop_assert!(value.is_object());
                prop_assert_eq!(body.raw, text);
            }
            Err(ApiError::Unprocessable(_)) => prop_assert!(!value.is_object()),
            Err(other) => prop_assert!(false, "valid JSON refused: {other:?}"),
        }
    }

    #[test]
    fn reports_are_accepted_only_when_valid(fields in report_object()) {
        let body = object(fields.clone());
        check_outcome(&fields, pipeline::parse(&body), "server_group", "host")?;
        check_outcome(&fields, cron::parse(&body), "server_group", "host")?;
        check_outcome(&fields, legacy::parse(&body), "repo", "server")?;
    }

    #[test]
    fn timestamps_parse_to_canonical_utc_or_are_refused(text in text()) {
        let parsed = [Timestamp::parse_rfc3339(&text), Timestamp::parse_query(&text)];
        for t in parsed.into_iter().flatten() {
            let canonical = t.to_string();
            prop_assert_eq!(canonical.len(), 24);
            prop_assert!(canonical.ends_with('Z'));
            prop_assert_eq!(Timestamp::parse_rfc3339(&canonical), Ok(t));
        }
    }

    #[test]
    fn names_and_statuses_accept_only_their_alphabet(text in text()) {
        if let Ok(name) = ServerGroup::parse(&text) {
            prop_assert!(!name.as_str().is_empty() && name.as_str().chars().count() <= 128);
            prop_assert!(name.as_str() != "." && name.as_str() != "..");
            prop_assert!(name.as_str().chars().all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c)));
            prop_assert!(HostName::parse(&text).is_ok());
        }
        if let Ok(status) = Status::parse(&text) {
            prop_assert!(status.as_str().eq_ignore_ascii_case(&text));
        }
    }

    #[test]
    fn history_parameters_never_panic(
        values in prop::collection::vec(prop::option::of(text()), 7),
    ) {
        let query = history::HistoryQuery::from_values(&values);
        if let Ok(filter) = history::filter(&query) {
            prop_assert!((1..=history::MAX_LIMIT).contains(&filter.limit));
            // `from` and `to` are taken as given, in either order: a `to` before `from` is
            // neither refused nor swapped (it selects nothing), so swapping the two
            // parameters swaps the bounds and nothing else.
            let mut swapped = values.clone();
            swapped.swap(2, 3);
            let swapped = history::filter(&history::HistoryQuery::from_values(&swapped));
            prop_assert!(swapped.is_ok(), "swapping from and to made the query invalid");
            if let Ok(swapped) = swapped {
                prop_assert_eq!(swapped.from, filter.to);
                prop_assert_eq!(swapped.to, filter.from);
            }
        }
    }
}
