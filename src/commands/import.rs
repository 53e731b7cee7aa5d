//! `gitops-status import --db PATH FILE...`: the last state the old servers kept in their
//! files becomes one `import` report per host, so teams moving over keep it.
//!
//! Two formats are read: the v2 server's `status.json` (`{"version": "2.0", "servers":
//! {"group/host": {...}}}`) and the v1 status object (`repo`, `server`, `sync_status`,
//! `drift_count`, `files`, `last_check`). The file's own times become the report's
//! observation times, so live reports that are newer keep their place by the ordering rules.
//! Every file is read and checked before anything is written; then all of it is written in
//! one transaction, or nothing. An entry imported before (same host, same JSON) is skipped.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::Digest;

use crate::api::body::{Fields, JsonObject};
use crate::api::error::ApiError;
use crate::api::{legacy, pipeline, status};
use crate::config::DbTarget;
use crate::domain::{Clock, Observation, Report, Timestamp};
use crate::store::{RequestMeta, Store, StoreConfig};

/// The principal of imported reports.
pub const PRINCIPAL: &str = "import";

/// A problem with a file: its name, the JSON path, what is wrong.
#[derive(Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub path: String,
    pub problem: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.path, self.problem)
    }
}

/// One host's entry, ready to be written.
#[derive(Debug)]
pub struct Entry {
    pub report: Report,
    /// `{"file": …, "key": …, "entry": <the entry exactly as in the file>}`.
    pub raw_body: String,
    /// The SHA-256 of the entry's JSON with its keys sorted: the same entry however it was
    /// written out, to find it among earlier imports.
    pub entry_sha256: String,
}

/// SHA-256 (hex) of `value` written compactly with every object's keys sorted.
fn entry_sha256(value: &Value) -> String {
    let mut sorted = value.clone();
    sorted.sort_all_objects();
    hex::encode(sha2::Sha256::digest(sorted.to_string().as_bytes()))
}

/// `$.servers["rsyslog-prod/rsyslog-01"].status`
fn member_path(prefix: &str, field: &str) -> String {
    if field.starts_with('(') {
        prefix.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

fn problems_of(file: &str, prefix: &str, err: ApiError) -> Vec<Problem> {
    match err {
        ApiError::Unprocessable(list) => list
            .into_iter()
            .map(|p| Problem {
                file: file.to_owned(),
                path: member_path(prefix, &p.field),
                problem: p.problem,
            })
            .collect(),
        other => vec![Problem {
            file: file.to_owned(),
            path: prefix.to_owned(),
            problem: other.to_string(),
        }],
    }
}

fn raw_body(file: &str, key: Option<&str>, entry: &RawValue) -> Result<String, String> {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        file: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        key: Option<&'a str>,
        entry: &'a RawValue,
    }
    serde_json::to_string(&Body { file, key, entry }).map_err(|e| e.to_string())
}

/// Reads the entries of one file's text; `name` is the file's name and `modified` its
/// modification time, the observation time of an entry that carries none.
pub fn parse_file(name: &str, text: &str, modified: Timestamp) -> Result<Vec<Entry>, Vec<Problem>> {
    let problem = |path: &str, problem: String| {
        vec![Problem {
            file: name.to_owned(),
            path: path.to_owned(),
            problem,
        }]
    };
    let value: Value =
        serde_json::from_str(text).map_err(|e| problem("$", format!("not JSON: {e}")))?;
    let Value::Object(top) = value else {
        return Err(problem("$", "must be a JSON object".to_owned()));
    };
    if top.contains_key("servers") {
        parse_v2(name, text, &top, modified)
    } else if top.contains_key("repo") || top.contains_key("server") {
        let raw: Box<RawValue> =
            serde_json::from_str(text).map_err(|e| problem("$", e.to_string()))?;
        parse_v1(name, &raw, top, modified).map(|entry| vec![entry])
    } else {
        Err(problem(
            "$",
            "is neither a v2 status.json ({\"version\": \"2.0\", \"servers\": {...}}) nor a v1 \
             status object (repo, server, sync_status, ...)"
                .to_owned(),
        ))
    }
}

fn parse_v1(
    name: &str,
    raw: &RawValue,
    fields: Map<String, Value>,
    modified: Timestamp,
) -> Result<Entry, Vec<Problem>> {
    let object = JsonObject {
        fields,
        raw: raw.get().to_owned(),
    };
    let report = legacy::parse(&object).map_err(|e| problems_of(name, "$", e))?;
    let Observation::Legacy {
        status,
        changed_files,
        drift_count,
    } = report.observation
    else {
        return Err(problems_of(
            name,
            "$",
            ApiError::field("(body)", "is not a v1 status object"),
        ));
    };
    // A v1 object is a drift check: its last_check dates the status and the check.
    let at = report.reported_at.unwrap_or(modified);
    Ok(Entry {
        entry_sha256: entry_sha256(&Value::Object(object.fields.clone())),
        raw_body: raw_body(name, None, raw)
            .map_err(|e| problems_of(name, "$", ApiError::field("(body)", e)))?,
        report: Report {
            server_group: report.server_group,
            host: report.host,
            reported_at: Some(at),
            observation: Observation::Import {
                status,
                changed_files,
                drift_count,
                deployment: None,
                pipeline_at: None,
                cron_at: Some(at),
            },
        },
    })
}

fn parse_v2(
    name: &str,
    text: &str,
    top: &Map<String, Value>,
    modified: Timestamp,
) -> Result<Vec<Entry>, Vec<Problem>> {
    let one = |path: &str, problem: String| {
        vec![Problem {
            file: name.to_owned(),
            path: path.to_owned(),
            problem,
        }]
    };
    match top.get("version") {
        None => {}
        Some(Value::String(v)) if v == "2" || v.starts_with("2.") => {}
        Some(other) => {
            return Err(one(
                "$.version",
                format!("must be \"2.0\" (the v2 storage format), got {other}"),
            ))
        }
    }
    let Some(Value::Object(servers)) = top.get("servers") else {
        return Err(one(
            "$.servers",
            "must be an object keyed by \"group/host\"".to_owned(),
        ));
    };
    // The entries' exact text, to keep it as the old server wrote it.
    #[derive(serde::Deserialize)]
    struct RawServers<'a> {
        #[serde(borrow)]
        servers: std::collections::HashMap<String, &'a RawValue>,
    }
    let raws: RawServers =
        serde_json::from_str(text).map_err(|e| one("$.servers", e.to_string()))?;
    let mut entries = Vec::with_capacity(servers.len());
    let mut problems = Vec::new();
    for (key, value) in servers {
        let prefix = format!("$.servers[{}]", Value::String(key.clone()));
        match parse_v2_entry(
            name,
            &prefix,
            key,
            value,
            raws.servers.get(key).copied(),
            modified,
        ) {
            Ok(entry) => entries.push(entry),
            Err(mut more) => problems.append(&mut more),
        }
    }
    if problems.is_empty() {
        Ok(entries)
    } else {
        Err(problems)
    }
}

fn parse_v2_entry(
    name: &str,
    prefix: &str,
    key: &str,
    value: &Value,
    raw: Option<&RawValue>,
    modified: Timestamp,
) -> Result<Entry, Vec<Problem>> {
    let fail =
        |field: &str, problem: String| problems_of(name, prefix, ApiError::field(field, problem));
    let (Value::Object(fields), Some(raw)) = (value, raw) else {
        return Err(fail("(entry)", "must be an object".to_owned()));
    };
    let Some((group, host)) = key.split_once('/') else {
        return Err(fail(
            "(entry)",
            format!("the key {key:?} is not \"server_group/host\""),
        ));
    };
    let mut fields = fields.clone();
    for (member, from_key) in [("server_group", group), ("host", host)] {
        match fields.get(member) {
            None | Some(Value::Null) => {
                fields.insert(member.to_owned(), Value::String(from_key.to_owned()));
            }
            Some(Value::String(s)) if s == from_key => {}
            Some(other) => {
                return Err(fail(
                    member,
                    format!("is {other}, but the entry's key says {from_key:?}"),
                ))
            }
        }
    }
    let object = JsonObject {
        fields,
        raw: raw.get().to_owned(),
    };
    // The deployment fields, status and files read as a pipeline report reads them.
    let parsed = pipeline::parse(&object);
    let mut f = Fields::new(&object.fields);
    let cron_at = f.timestamp("last_cron_check");
    let updated_at = f.timestamp("timestamp");
    let times = f.finish();
    let (report, ()) = crate::api::both(parsed, times).map_err(|e| problems_of(name, prefix, e))?;
    let Observation::Pipeline {
        status,
        changed_files,
        deployment,
    } = report.observation
    else {
        return Err(fail("(entry)", "is not a v2 entry".to_owned()));
    };
    let pipeline_at = report.reported_at;
    let said_deployment = pipeline_at.is_some() || *deployment != Default::default();
    // The old server stamped `timestamp` at every update: the status is as of then.
    let status_at = updated_at
        .or_else(|| pipeline_at.max(cron_at))
        .unwrap_or(modified);
    Ok(Entry {
        entry_sha256: entry_sha256(value),
        raw_body: raw_body(name, Some(key), raw).map_err(|e| fail("(entry)", e))?,
        report: Report {
            server_group: report.server_group,
            host: report.host,
            reported_at: Some(status_at),
            observation: Observation::Import {
                status,
                changed_files,
                drift_count: None,
                deployment: said_deployment.then_some(deployment),
                pipeline_at,
                cron_at,
            },
        },
    })
}

/// Reads every file; all problems of all files, or every entry.
pub fn read_files(files: &[PathBuf]) -> Result<Vec<Entry>, Vec<Problem>> {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let read = std::fs::read(path).and_then(|bytes| {
            let modified = std::fs::metadata(path)?.modified()?;
            Ok((bytes, modified))
        });
        let (bytes, modified) = match read {
            Ok(read) => read,
            Err(e) => {
                problems.push(Problem {
                    file: path.display().to_string(),
                    path: "$".to_owned(),
                    problem: format!("cannot read it: {e}"),
                });
                continue;
            }
        };
        let modified = modified
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_millis()).ok())
            .and_then(|ms| Timestamp::from_epoch_millis(ms).ok())
            .unwrap_or_else(Timestamp::now);
        let Ok(text) = String::from_utf8(bytes) else {
            problems.push(Problem {
                file: name,
                path: "$".to_owned(),
                problem: "is not UTF-8 text".to_owned(),
            });
            continue;
        };
        match parse_file(&name, &text, modified) {
            Ok(mut more) => entries.append(&mut more),
            Err(mut more) => problems.append(&mut more),
        }
    }
    if problems.is_empty() {
        Ok(entries)
    } else {
        Err(problems)
    }
}

pub async fn run(
    db: &Path,
    password_file: Option<PathBuf>,
    files: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let target = DbTarget::parse(db, password_file)?;
    let entries = match read_files(files) {
        Ok(entries) => entries,
        Err(problems) => {
            for problem in &problems {
                eprintln!("{problem}");
            }
            eprintln!(
                "nothing imported: {} {} in the files",
                problems.len(),
                if problems.len() == 1 {
                    "problem"
                } else {
                    "problems"
                }
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    // The lock: refuses while a server (or another import) has the database open.
    let config = StoreConfig {
        read_connections: 1,
        chain_log_every: 0,
        write_queue: 16,
        render_row: status::render_row,
        clock: Clock::system(),
        stale_policy: Default::default(),
        idempotency_window: crate::config::DEFAULT_IDEMPOTENCY_WINDOW,
        metrics: std::sync::Arc::new(crate::metrics::Metrics::new()?),
        panic_on_host: None,
    };
    let opened = match &target {
        DbTarget::Sqlite(path) => Store::open(path, config).await,
        DbTarget::Postgres { url, password_file } => {
            let password = match password_file {
                Some(file) => Some(crate::app::read_password(file).await?),
                None => None,
            };
            Store::open_postgres(url, password.as_deref(), config).await
        }
    };
    let (store, writer) = opened.with_context(|| format!("nothing imported into {target}"))?;
    let writer = tokio::spawn(writer.run());
    let outcome = import(&store, entries).await;
    store.close().await;
    writer
        .await
        .context("the writer ended abnormally; check the database with `gitops-status verify`")?;
    let outcome = outcome?;
    for line in &outcome.lines {
        println!("{line}");
    }
    println!(
        "imported {} {} ({} already imported, skipped)",
        outcome.imported,
        if outcome.imported == 1 {
            "host"
        } else {
            "hosts"
        },
        outcome.skipped
    );
    Ok(ExitCode::SUCCESS)
}

/// What an import run did.
pub struct Imported {
    pub imported: usize,
    pub skipped: usize,
    pub lines: Vec<String>,
}

async fn import(store: &Store, entries: Vec<Entry>) -> anyhow::Result<Imported> {
    let mut seen = HashSet::new();
    let mut batch = Vec::new();
    let mut skipped = 0;
    for entry in entries {
        let key = (
            entry.report.server_group.to_string(),
            entry.report.host.to_string(),
            entry.entry_sha256.clone(),
        );
        let before = store
            .imported_before(
                &entry.report.server_group,
                &entry.report.host,
                &entry.entry_sha256,
            )
            .await?;
        if before || !seen.insert(key) {
            skipped += 1;
            continue;
        }
        let meta = RequestMeta {
            principal: Some(PRINCIPAL.to_owned()),
            raw_body: entry.raw_body,
            import_entry: Some(entry.entry_sha256),
            ..RequestMeta::default()
        };
        batch.push((entry.report, meta));
    }
    let names: Vec<String> = batch
        .iter()
        .map(|(r, _)| format!("{}/{}", r.server_group, r.host))
        .collect();
    let recorded = if batch.is_empty() {
        Vec::new()
    } else {
        store.record_all(batch).await?
    };
    let lines = names
        .iter()
        .zip(&recorded)
        .map(|(name, r)| {
            let what = if r.created {
                "created the host".to_owned()
            } else if !r.changed {
                "newer live state kept".to_owned()
            } else if r.kept_newer.is_empty() {
                "updated the host".to_owned()
            } else {
                format!("newer live state kept for: {}", r.kept_newer.join(", "))
            };
            format!("{name}: report {} ({what})", r.report_id)
        })
        .collect();
    Ok(Imported {
        imported: recorded.len(),
        skipped,
        lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn a_v2_entry_keeps_its_times_and_text() {
        let text = r#"{"version": "2.0", "servers": {"rsyslog-prod/rsyslog-01": {
            "server_group": "rsyslog-prod", "host": "rsyslog-01", "status": "synced",
            "changed_files": [], "commit_sha": "abc1234",
            "last_pipeline_run": "2026-04-26T10:30:00Z",
            "last_cron_check": "2026-04-26T11:00:00Z", "timestamp": "2026-04-26T11:00:00Z"}}}"#;
        let entries = parse_file("status.json", text, at("2026-05-01T00:00:00Z")).unwrap();
        let [entry] = &entries[..] else {
            panic!("one entry")
        };
        assert_eq!(entry.report.reported_at, Some(at("2026-04-26T11:00:00Z")));
        let Observation::Import {
            pipeline_at,
            cron_at,
            deployment,
            ..
        } = &entry.report.observation
        else {
            panic!("an import")
        };
        assert_eq!(*pipeline_at, Some(at("2026-04-26T10:30:00Z")));
        assert_eq!(*cron_at, Some(at("2026-04-26T11:00:00Z")));
        assert_eq!(
            deployment.as_ref().unwrap().commit_sha.as_deref(),
            Some("abc1234")
        );
        let body: Value = serde_json::from_str(&entry.raw_body).unwrap();
        assert_eq!(body["file"], "status.json");
        assert_eq!(body["key"], "rsyslog-prod/rsyslog-01");
        assert!(
            entry
                .raw_body
                .contains(r#""changed_files": [], "commit_sha""#),
            "verbatim"
        );
    }

    #[test]
    fn problems_name_the_file_and_the_json_path() {
        let text = r#"{"version": "2.0", "servers": {
            "g/h": {"status": "in_sync", "last_cron_check": "yesterday"},
            "bad key": {"status": "synced"},
            "g/other": {"status": "synced", "host": "someone-else"}}}"#;
        let problems = parse_file("status.json", text, Timestamp::now()).unwrap_err();
        let paths: Vec<String> = problems.iter().map(|p| p.path.clone()).collect();
        assert!(
            paths.contains(&r#"$.servers["g/h"].status"#.to_owned()),
            "{paths:?}"
        );
        assert!(
            paths.contains(&r#"$.servers["g/h"].last_cron_check"#.to_owned()),
            "{paths:?}"
        );
        assert!(
            paths.contains(&r#"$.servers["bad key"]"#.to_owned()),
            "{paths:?}"
        );
        assert!(
            paths.contains(&r#"$.servers["g/other"].host"#.to_owned()),
            "{paths:?}"
        );
        assert!(problems[0]
            .to_string()
            .starts_with("status.json: $.servers["));
        let v1 = r#"{"repo": "rsyslog", "server": "rsyslog-lab", "sync_status": "MAYBE"}"#;
        let problems = parse_file("v1.json", v1, Timestamp::now()).unwrap_err();
        assert_eq!(problems[0].path, "$.sync_status");
        assert_eq!(
            parse_file("x.json", "[1]", Timestamp::now()).unwrap_err()[0].path,
            "$"
        );
        let problems = parse_file(
            "x.json",
            r#"{"version": "3.0", "servers": {}}"#,
            Timestamp::now(),
        )
        .unwrap_err();
        assert_eq!(problems[0].path, "$.version");
    }

    #[test]
    fn a_v1_object_is_a_drift_check_as_of_its_last_check() {
        let text = r#"{"repo": "rsyslog", "server": "rsyslog-lab", "sync_status": "OUT_OF_SYNC",
            "drift_count": 2, "files": [{"name": "rsyslog.conf"}, "rsyslog.d/30-lab.conf"],
            "last_check": "2026-04-21T10:32:15Z"}"#;
        let entries = parse_file("status.json", text, at("2026-05-01T00:00:00Z")).unwrap();
        let report = &entries[0].report;
        assert_eq!(report.server_group.as_str(), "rsyslog");
        assert_eq!(report.reported_at, Some(at("2026-04-21T10:32:15Z")));
        let Observation::Import {
            cron_at,
            drift_count,
            deployment,
            changed_files,
            ..
        } = &report.observation
        else {
            panic!("an import")
        };
        assert_eq!(*cron_at, Some(at("2026-04-21T10:32:15Z")));
        assert_eq!(*drift_count, Some(2));
        assert!(deployment.is_none());
        assert_eq!(changed_files.as_ref().unwrap().as_slice().len(), 2);
    }
}
