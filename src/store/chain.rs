//! Reading the audit chain back: its head, and `verify`, which walks every row and names the
//! first one whose content, order or presence was changed.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, Row, SqliteConnection};

use crate::domain::chain::{is_hash, link, GENESIS};

/// The canonical content of a stored row, as SQLite renders it. The writer renders the same
/// members from the values it is about to insert (store/write.rs); the README gives auditors
/// the same expression.
pub const CANONICAL_ROW: &str = "json_object(\
    'id', id, 'received_at', received_at, 'kind', kind, 'server_group', server_group, \
    'host', host, 'status', status, 'changed_files', changed_files, \
    'project_name', project_name, 'repo_name', repo_name, 'server_type', server_type, \
    'environment', environment, 'validation_status', validation_status, \
    'validation_message', validation_message, 'commit_sha', commit_sha, 'branch', branch, \
    'updated_by', updated_by, 'last_pipeline_run', last_pipeline_run, \
    'last_cron_check', last_cron_check, 'drift_count', drift_count, \
    'observed_at', observed_at, 'principal', principal, 'client_addr', client_addr, \
    'forwarded_for', forwarded_for, 'user_agent', user_agent, 'raw_body', raw_body)";

/// A member's value in the canonical text: SQLite's INTEGER, TEXT or NULL.
#[derive(Clone, Copy, Debug)]
pub(super) enum Member<'a> {
    Int(Option<i64>),
    Text(Option<&'a str>),
}

/// What SQLite's `json_object(name, value, …)` renders for these members: `{"name":value,…}`
/// without spaces, NULL as `null`, integers in decimal, text as a JSON string escaped the way
/// SQLite escapes it (`push_json_string`). The writer hashes this instead of asking SQLite to
/// render each row; tests check the two agree on every kind of text.
#[cfg(test)]
pub(super) fn canonical_json<'a>(
    members: impl IntoIterator<Item = (&'a str, Member<'a>)>,
) -> String {
    let mut out = String::with_capacity(1024);
    out.push('{');
    push_members(&mut out, members);
    out.push('}');
    out
}

/// Appends members as `canonical_json` renders them, without the braces: `"a":1,"b":null`.
/// The writer renders a row's canonical text from such runs, some rendered in advance.
pub(super) fn push_members<'a>(
    out: &mut String,
    members: impl IntoIterator<Item = (&'a str, Member<'a>)>,
) {
    for (index, (name, value)) in members.into_iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        push_json_string(out, name);
        out.push(':');
        match value {
            Member::Int(Some(n)) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "{n}");
            }
            Member::Text(Some(text)) => push_json_string(out, text),
            Member::Int(None) | Member::Text(None) => out.push_str("null"),
        }
    }
}

/// Appends `text` as a JSON string, escaped as SQLite's json functions escape it
/// (`jsonAppendString` in SQLite's json.c): `"` and `\` get a backslash; backspace, tab, line
/// feed, form feed and carriage return their short escapes; other characters below U+0020
/// `\u00xx` with lower-case hex digits; everything else, including U+007F and non-ASCII, as is.
pub(super) fn push_json_string(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let mut plain = 0;
    for (index, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            b'\t' => "\\t",
            b'\n' => "\\n",
            0x0c => "\\f",
            b'\r' => "\\r",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&text[plain..index]);
        plain = index + 1;
        if escape.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        } else {
            out.push_str(escape);
        }
    }
    out.push_str(&text[plain..]);
    out.push('"');
}

/// The same members from bound values (?1…?25 in CANONICAL_ROW's order): what SQLite renders
/// for values before they are stored. Tests check `canonical_json` renders the same text.
#[cfg(test)]
pub(super) const CANONICAL_VALUES: &str = "SELECT json_object(\
    'id', ?1, 'received_at', ?2, 'kind', ?3, 'server_group', ?4, 'host', ?5, 'status', ?6, \
    'changed_files', ?7, 'project_name', ?8, 'repo_name', ?9, 'server_type', ?10, \
    'environment', ?11, 'validation_status', ?12, 'validation_message', ?13, \
    'commit_sha', ?14, 'branch', ?15, 'updated_by', ?16, 'last_pipeline_run', ?17, \
    'last_cron_check', ?18, 'drift_count', ?19, 'observed_at', ?20, 'principal', ?21, \
    'client_addr', ?22, 'forwarded_for', ?23, 'user_agent', ?24, 'raw_body', ?25)";

const BATCH: i64 = 5_000;

/// The newest row of the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainHead {
    pub id: i64,
    pub hash: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verification {
    /// Every row links to the one before it and matches its hash, and every host's status
    /// row is what its reports make of it.
    Intact {
        rows: u64,
        first_id: Option<i64>,
        head: Option<ChainHead>,
        /// Hosts whose `status_row` was checked.
        hosts: u64,
    },
    /// SQLite's own integrity check failed.
    Damaged { problems: Vec<String> },
    /// The first row (by id) that was changed, removed, inserted or reordered.
    Broken { id: i64, problem: String },
    /// A host's materialised `GET /status` row differs from what its reports make of it.
    StaleHostRow { host: String, problem: String },
}

/// Walks the whole chain of the database at `path`, then checks every host's status row
/// against the reports it derives from (rendered with `render`), read-only, in one snapshot
/// (safe while the server runs).
pub async fn verify(path: &Path, render: super::RenderRow) -> anyhow::Result<Verification> {
    anyhow::ensure!(path.exists(), "{} does not exist", path.display());
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .busy_timeout(std::time::Duration::from_secs(5));
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    let problems: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await?;
    if problems != ["ok"] {
        return Ok(Verification::Damaged { problems });
    }
    // One read transaction: one snapshot, whatever the server appends meanwhile.
    let mut tx = conn.begin().await?;
    let sql = format!(
        "SELECT id, prev_hash, hash, {CANONICAL_ROW} AS canonical \
         FROM reports WHERE id > ?1 ORDER BY id LIMIT ?2"
    );
    let mut previous: Option<ChainHead> = None;
    let mut first_id = None;
    let mut rows = 0u64;
    loop {
        let after = previous.as_ref().map_or(0, |p| p.id);
        let batch = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(after)
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await?;
        if batch.is_empty() {
            break;
        }
        for row in batch {
            let id: i64 = row.try_get("id")?;
            let prev_hash: String = row.try_get("prev_hash")?;
            let hash: String = row.try_get("hash")?;
            let canonical: String = row.try_get("canonical")?;
            if let Some(problem) = check_link(previous.as_ref(), id, &prev_hash, &hash, &canonical)
            {
                return Ok(Verification::Broken { id, problem });
            }
            first_id.get_or_insert(id);
            rows += 1;
            previous = Some(ChainHead { id, hash });
        }
    }
    let hosts = sqlx::query_as::<_, (String, String, Option<String>)>(
        "SELECT server_group, host, status_row FROM hosts ORDER BY server_group, host",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (group, host, stored) in &hosts {
        let name = format!("{group}/{host}");
        let state = super::read::fetch_host_state(&mut *tx, group, host)
            .await
            .with_context(|| format!("cannot read the current state of {name}"))?;
        let expected = state.map(|state| render(&state)).transpose()?;
        let problem = match (stored, expected) {
            (None, _) => "has no status_row (the server renders it at its next start)",
            (Some(_), None) => "has a status_row but no current state",
            (Some(stored), Some(expected)) if *stored != expected => {
                "its status_row differs from what its reports make of it"
            }
            _ => continue,
        };
        return Ok(Verification::StaleHostRow {
            host: name,
            problem: problem.to_owned(),
        });
    }
    tx.rollback().await?;
    Ok(Verification::Intact {
        rows,
        first_id,
        head: previous,
        hosts: hosts.len() as u64,
    })
}

/// What is wrong with one row given the row before it, if anything.
fn check_link(
    previous: Option<&ChainHead>,
    id: i64,
    prev_hash: &str,
    hash: &str,
    canonical: &str,
) -> Option<String> {
    if !is_hash(prev_hash) || !is_hash(hash) {
        return Some("its hash or prev_hash is not 64 lower-case hex digits".to_owned());
    }
    match previous {
        // The first remaining row anchors the chain; only row 1 has a known predecessor.
        None if id == 1 && prev_hash != GENESIS => {
            return Some("the first row's prev_hash is not the genesis value".to_owned())
        }
        None => {}
        Some(before) if id != before.id + 1 => {
            return Some(format!(
                "ids jump from {} to {id}: rows between them are missing",
                before.id
            ))
        }
        Some(before) if prev_hash != before.hash => {
            return Some(format!(
                "its prev_hash is not the hash of row {}: a row before it was changed, \
                 removed or reordered",
                before.id
            ))
        }
        Some(_) => {}
    }
    if link(prev_hash, canonical) != hash {
        return Some("its content does not match its hash: the row was changed".to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(id: i64, canonical: &str, prev: &str) -> (ChainHead, String) {
        let hash = link(prev, canonical);
        (
            ChainHead {
                id,
                hash: hash.clone(),
            },
            hash,
        )
    }

    #[test]
    fn links_are_checked_in_order() {
        let (first, h1) = head(1, "a", GENESIS);
        assert_eq!(check_link(None, 1, GENESIS, &h1, "a"), None);
        let h2 = link(&h1, "b");
        assert_eq!(check_link(Some(&first), 2, &h1, &h2, "b"), None);
        assert!(check_link(Some(&first), 2, &h1, &h2, "B")
            .unwrap()
            .contains("content"));
        assert!(check_link(Some(&first), 3, &h1, &h2, "b")
            .unwrap()
            .contains("missing"));
        let other = link(GENESIS, "x");
        assert!(check_link(Some(&first), 2, &other, &link(&other, "b"), "b")
            .unwrap()
            .contains("prev_hash"));
        assert!(check_link(None, 1, &h1, &link(&h1, "a"), "a")
            .unwrap()
            .contains("genesis"));
        // After retention, the first remaining row anchors the chain.
        assert_eq!(check_link(None, 7, &h1, &h2, "b"), None);
    }
}

#[cfg(test)]
mod canonical_tests {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use sqlx::{Connection, SqliteConnection};

    use super::{canonical_json, Member, CANONICAL_VALUES};

    /// CANONICAL_VALUES' member names, in order: the quoted words of `'name', ?N, …`.
    fn names() -> Vec<&'static str> {
        CANONICAL_VALUES.split('\'').skip(1).step_by(2).collect()
    }

    /// ?1 (id) and ?19 (drift_count) are integers.
    fn is_int(index: usize) -> bool {
        index == 0 || index == 18
    }

    /// SQLite's own rendering of the members, bound as CANONICAL_VALUES' parameters.
    async fn sqlite_renders(
        conn: &mut SqliteConnection,
        ints: &[Option<i64>],
        texts: &[Option<String>],
    ) -> String {
        let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(CANONICAL_VALUES));
        let (mut ints, mut texts) = (ints.iter(), texts.iter());
        for index in 0..names().len() {
            query = if is_int(index) {
                query.bind(*ints.next().unwrap())
            } else {
                query.bind(texts.next().unwrap().clone())
            };
        }
        query.fetch_one(conn).await.unwrap()
    }

    fn rust_renders(ints: &[Option<i64>], texts: &[Option<String>]) -> String {
        let (mut ints, mut texts) = (ints.iter(), texts.iter());
        canonical_json(names().into_iter().enumerate().map(|(index, name)| {
            let member = if is_int(index) {
                Member::Int(*ints.next().unwrap())
            } else {
                Member::Text(texts.next().unwrap().as_deref())
            };
            (name, member)
        }))
    }

    fn text() -> impl Strategy<Value = Option<String>> {
        prop::option::of(prop_oneof![
            any::<String>(),
            // Every ASCII character, control characters and quotes included.
            prop::collection::vec(0u8..0x80, 0..40)
                .prop_map(|bytes| bytes.into_iter().map(char::from).collect()),
        ])
    }

    #[test]
    fn canonical_json_is_what_sqlite_json_object_renders() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut conn = runtime
            .block_on(SqliteConnection::connect("sqlite::memory:"))
            .unwrap();
        let names = names();
        assert_eq!(
            (names.len(), names[0], names[18]),
            (25, "id", "drift_count")
        );
        // Each ASCII character alone, then random members.
        for byte in 0u8..0x80 {
            let texts = vec![Some(char::from(byte).to_string()); 23];
            let ints = [Some(i64::MIN), None];
            let sqlite = runtime.block_on(sqlite_renders(&mut conn, &ints, &texts));
            assert_eq!(rust_renders(&ints, &texts), sqlite, "byte {byte:#04x}");
        }
        let conn = std::cell::RefCell::new(conn);
        let mut runner = TestRunner::new(Config::with_cases(2000));
        let members = (
            prop::collection::vec(prop::option::of(any::<i64>()), 2),
            prop::collection::vec(text(), 23),
        );
        runner
            .run(&members, |(ints, texts)| {
                let sqlite =
                    runtime.block_on(sqlite_renders(&mut conn.borrow_mut(), &ints, &texts));
                prop_assert_eq!(rust_renders(&ints, &texts), sqlite);
                Ok(())
            })
            .unwrap();
    }
}
