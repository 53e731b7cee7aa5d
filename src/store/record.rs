//! The `reports` row, defined once. The column list of every SELECT and INSERT, the values
//! bound, the row type read back and the canonical text the audit chain hashes all derive
//! from the one list in `report_record!` below: a new column is a migration plus one line
//! there (and, because the canonical text changes with it, a new chain format).

use std::fmt::Write as _;
use std::sync::LazyLock;

/// A column's part in the audit chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    /// In the canonical text; known when the report is accepted.
    Content,
    /// In the canonical text; given by the writer when it links the row into the chain.
    Linked,
    /// The chain itself (`prev_hash`, `hash`): not in the canonical text.
    Chain,
    /// Set by the writer from what it knows when it writes the row, for the service's own use
    /// (retention's tier): not in the canonical text.
    Derived,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Column {
    pub name: &'static str,
    pub role: Role,
    /// INTEGER (else TEXT).
    pub int: bool,
}

/// A column's value as both backends store it: an integer, text or NULL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Value<'a> {
    Int(Option<i64>),
    Text(Option<&'a str>),
}

trait AsValue {
    /// Whether the column holds integers (else text).
    const INT: bool;
    fn value(&self) -> Value<'_>;
}

impl AsValue for i64 {
    const INT: bool = true;
    fn value(&self) -> Value<'_> {
        Value::Int(Some(*self))
    }
}

impl AsValue for Option<i64> {
    const INT: bool = true;
    fn value(&self) -> Value<'_> {
        Value::Int(*self)
    }
}

impl AsValue for String {
    const INT: bool = false;
    fn value(&self) -> Value<'_> {
        Value::Text(Some(self))
    }
}

impl AsValue for Option<String> {
    const INT: bool = false;
    fn value(&self) -> Value<'_> {
        Value::Text(self.as_deref())
    }
}

macro_rules! report_record {
    ($($(#[$doc:meta])* $name:ident: $ty:ty => $role:ident,)*) => {
        /// One row of `reports`, every column, in table order.
        #[derive(Clone, Debug, Default, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
        pub(super) struct ReportRecord {
            $($(#[$doc])* pub $name: $ty,)*
        }

        /// The columns of `reports`, in table order.
        pub(super) const COLUMNS: &[Column] = &[$(Column {
            name: stringify!($name),
            role: Role::$role,
            int: <$ty as AsValue>::INT,
        },)*];

        impl ReportRecord {
            /// Every column's value, in `COLUMNS`' order.
            pub(super) fn values(&self) -> [Value<'_>; COLUMNS.len()] {
                [$(AsValue::value(&self.$name),)*]
            }
        }
    };
}

report_record! {
    /// Increasing in the order reports were accepted (the chain's order).
    id: i64 => Linked,
    /// The server clock when it accepted the report.
    received_at: String => Linked,
    kind: String => Content,
    /// NULL only for rows that belong to no host (retention).
    server_group: Option<String> => Content,
    host: Option<String> => Content,
    status: Option<String> => Content,
    /// A JSON array of strings.
    changed_files: Option<String> => Content,
    project_name: Option<String> => Content,
    repo_name: Option<String> => Content,
    server_type: Option<String> => Content,
    environment: Option<String> => Content,
    validation_status: Option<String> => Content,
    validation_message: Option<String> => Content,
    commit_sha: Option<String> => Content,
    branch: Option<String> => Content,
    updated_by: Option<String> => Content,
    last_pipeline_run: Option<String> => Content,
    last_cron_check: Option<String> => Content,
    drift_count: Option<i64> => Content,
    /// The time the report is ordered by.
    observed_at: String => Linked,
    principal: Option<String> => Content,
    client_addr: Option<String> => Content,
    forwarded_for: Option<String> => Content,
    user_agent: Option<String> => Content,
    /// The request body exactly as received (for the service's own events, their
    /// description); valid JSON.
    raw_body: String => Content,
    prev_hash: String => Chain,
    hash: String => Chain,
    /// 1: the row changed something (kept for --retain-changes); 0: routine.
    is_change: i64 => Derived,
    /// Which canonical text `hash` covers (`CHAIN_FORMAT` for rows written now).
    chain_format: i64 => Chain,
}

/// The canonical text new rows are hashed over. Format 1: the JSON object of every `Content`
/// and `Linked` column in table order, as SQLite's `json_object` renders it (`canonical_sql`):
/// no white space, NULL as `null`, integers in decimal, text escaped as `push_json_string` says.
pub const CHAIN_FORMAT: i64 = 1;

/// Where the column `name` is in `COLUMNS` (and so in every row read with `column_list`).
fn column_index(name: &str) -> Option<usize> {
    COLUMNS.iter().position(|c| c.name == name)
}

/// `id, received_at, …, hash`: every column, for SELECT and INSERT.
pub(super) fn column_list() -> &'static str {
    static LIST: LazyLock<String> = LazyLock::new(|| {
        COLUMNS
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join(", ")
    });
    &LIST
}

fn canonical_columns() -> impl Iterator<Item = (usize, &'static Column)> {
    COLUMNS
        .iter()
        .enumerate()
        .filter(|(_, c)| matches!(c.role, Role::Content | Role::Linked))
}

/// Chain format 1 as SQLite renders it from a stored row: `json_object('id', id, …)` over
/// every column but the chain's own and the derived ones, as the README's auditor recipe
/// spells it; tests pin it and check the Rust renderers against it.
#[cfg(test)]
fn canonical_sql() -> &'static str {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        let members: Vec<String> = canonical_columns()
            .map(|(_, c)| format!("'{0}', {0}", c.name))
            .collect();
        format!("json_object({})", members.join(", "))
    });
    &SQL
}

impl ReportRecord {
    /// The canonical members of each run of content columns (the columns between the ones the
    /// writer sets), rendered ahead of linking: on a request's own thread, not the writer's.
    pub(super) fn content_runs(&self) -> Vec<String> {
        let values = self.values();
        let mut runs: Vec<String> = Vec::new();
        let mut in_run = false;
        for (index, column) in canonical_columns() {
            if column.role != Role::Content {
                in_run = false;
                continue;
            }
            if !in_run {
                runs.push(String::with_capacity(256));
                in_run = true;
            }
            if let Some(run) = runs.last_mut() {
                if !run.is_empty() {
                    run.push(',');
                }
                push_member(run, column.name, values[index]);
            }
        }
        runs
    }

    /// The canonical text, byte for byte what SQLite's `json_object` renders from the stored
    /// row (`canonical_sql`), with the content columns taken from `runs`, which
    /// `content_runs` rendered from this row's content.
    pub(super) fn canonical_with(&self, runs: &[String]) -> String {
        let values = self.values();
        let mut out = String::with_capacity(runs.iter().map(String::len).sum::<usize>() + 160);
        out.push('{');
        let mut runs = runs.iter();
        let mut in_run = false;
        let mut first = true;
        for (index, column) in canonical_columns() {
            if column.role == Role::Content {
                if in_run {
                    continue;
                }
                in_run = true;
                if let Some(run) = runs.next() {
                    if !first {
                        out.push(',');
                    }
                    out.push_str(run);
                    first = false;
                }
                continue;
            }
            in_run = false;
            if !first {
                out.push(',');
            }
            push_member(&mut out, column.name, values[index]);
            first = false;
        }
        out.push('}');
        out
    }

    /// The canonical text (see `canonical_with`).
    #[cfg(test)]
    pub(super) fn canonical(&self) -> String {
        self.canonical_with(&self.content_runs())
    }

    /// Binds every column, in `COLUMNS`' order, to the next parameters of `query`.
    pub(super) fn bind<'q>(
        &'q self,
        mut query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
        for value in self.values() {
            query = match value {
                Value::Int(v) => query.bind(v),
                Value::Text(v) => query.bind(v),
            };
        }
        query
    }
}

/// A stored row as `verify` reads it: every column's value borrowed from the database's row
/// (no copy of its text), in `COLUMNS`' order.
pub(super) struct StoredRow<'r>(Vec<Value<'r>>);

impl<'r> StoredRow<'r> {
    /// Reads a row selected with `column_list()`, from either backend.
    pub(super) fn read<R>(row: &'r R) -> Result<Self, sqlx::Error>
    where
        R: sqlx::Row,
        usize: sqlx::ColumnIndex<R>,
        i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        &'r str: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        COLUMNS
            .iter()
            .enumerate()
            .map(|(index, column)| {
                Ok(if column.int {
                    Value::Int(row.try_get(index)?)
                } else {
                    Value::Text(row.try_get(index)?)
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map(StoredRow)
    }

    fn int(&self, name: &str) -> Option<i64> {
        match self.value(name) {
            Some(Value::Int(value)) => value,
            _ => None,
        }
    }

    fn text(&self, name: &str) -> &'r str {
        match self.value(name) {
            Some(Value::Text(Some(value))) => value,
            _ => "",
        }
    }

    fn value(&self, name: &str) -> Option<Value<'r>> {
        self.0.get(column_index(name)?).copied()
    }

    pub(super) fn id(&self) -> i64 {
        self.int("id").unwrap_or(0)
    }

    pub(super) fn prev_hash(&self) -> &'r str {
        self.text("prev_hash")
    }

    pub(super) fn hash(&self) -> &'r str {
        self.text("hash")
    }

    /// The canonical text of the format this row records, which its `hash` must cover.
    pub(super) fn recorded_canonical(&self) -> Result<String, String> {
        match self.int("chain_format") {
            Some(1) => Ok(canonical_of(&self.0)),
            other => Err(format!(
                "it records chain format {}, which this gitops-status does not know \
                 (it knows format {CHAIN_FORMAT}); verify it with a newer release",
                other.map_or_else(|| "NULL".to_owned(), |n| n.to_string())
            )),
        }
    }
}

/// The canonical text of chain format 1 of a row's values in `COLUMNS`' order: every
/// `Content` and `Linked` member in table order, in one JSON object.
fn canonical_of(values: &[Value<'_>]) -> String {
    let mut out = String::with_capacity(1024);
    out.push('{');
    for (n, (index, column)) in canonical_columns().enumerate() {
        if n > 0 {
            out.push(',');
        }
        if let Some(value) = values.get(index) {
            push_member(&mut out, column.name, *value);
        }
    }
    out.push('}');
    out
}

/// Appends one member as SQLite's `json_object` renders it: `"name":value`, NULL as `null`,
/// integers in decimal, text as a JSON string (`push_json_string`).
pub(super) fn push_member(out: &mut String, name: &str, value: Value<'_>) {
    push_json_string(out, name);
    out.push(':');
    match value {
        // Writing to a String cannot fail.
        Value::Int(Some(n)) => {
            let _ = write!(out, "{n}");
        }
        Value::Text(Some(text)) => push_json_string(out, text),
        Value::Int(None) | Value::Text(None) => out.push_str("null"),
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

/// A JSON array of strings, as stored in `reports.changed_files`.
pub(super) fn json_string_array(items: &[String]) -> String {
    let mut out = String::with_capacity(2 + items.iter().map(|i| i.len() + 3).sum::<usize>());
    out.push('[');
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        push_json_string(&mut out, item);
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use sqlx::{Connection, SqliteConnection};

    use super::*;

    /// The canonical text of the chains written before the columns had one source: it must
    /// never change, or every existing row would stop verifying.
    const CANONICAL_ROW_OF_MIGRATION_0001: &str = "json_object('id', id, \
        'received_at', received_at, 'kind', kind, 'server_group', server_group, \
        'host', host, 'status', status, 'changed_files', changed_files, \
        'project_name', project_name, 'repo_name', repo_name, 'server_type', server_type, \
        'environment', environment, 'validation_status', validation_status, \
        'validation_message', validation_message, 'commit_sha', commit_sha, 'branch', branch, \
        'updated_by', updated_by, 'last_pipeline_run', last_pipeline_run, \
        'last_cron_check', last_cron_check, 'drift_count', drift_count, \
        'observed_at', observed_at, 'principal', principal, 'client_addr', client_addr, \
        'forwarded_for', forwarded_for, 'user_agent', user_agent, 'raw_body', raw_body)";

    #[test]
    fn the_canonical_text_is_the_one_existing_chains_use() {
        assert_eq!(canonical_sql(), CANONICAL_ROW_OF_MIGRATION_0001);
        assert_eq!(COLUMNS.len(), 29);
        assert!(column_list().starts_with("id, received_at, kind, server_group,"));
        assert!(column_list().ends_with("raw_body, prev_hash, hash, is_change, chain_format"));
    }

    #[test]
    fn changed_files_are_a_json_array() {
        let files = vec!["/etc/a \"b\"".to_owned(), "c\\d\n".to_owned()];
        let text = json_string_array(&files);
        let back: Vec<String> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, files);
        assert_eq!(json_string_array(&[]), "[]");
    }

    /// A record whose integer columns hold `ints` and text columns `texts`, in column order.
    fn record(ints: &[Option<i64>], texts: &[Option<String>]) -> ReportRecord {
        let (mut ints, mut texts) = (ints.iter().copied(), texts.iter().cloned());
        let mut int = || ints.next().flatten();
        let mut text = || texts.next().flatten();
        ReportRecord {
            id: int().unwrap_or(0),
            received_at: text().unwrap_or_default(),
            kind: text().unwrap_or_default(),
            server_group: text(),
            host: text(),
            status: text(),
            changed_files: text(),
            project_name: text(),
            repo_name: text(),
            server_type: text(),
            environment: text(),
            validation_status: text(),
            validation_message: text(),
            commit_sha: text(),
            branch: text(),
            updated_by: text(),
            last_pipeline_run: text(),
            last_cron_check: text(),
            drift_count: int(),
            observed_at: text().unwrap_or_default(),
            principal: text(),
            client_addr: text(),
            forwarded_for: text(),
            user_agent: text(),
            raw_body: text().unwrap_or_default(),
            prev_hash: String::new(),
            hash: String::new(),
            is_change: 0,
            chain_format: CHAIN_FORMAT,
        }
    }

    /// SQLite's own rendering of a record's canonical members, from bound values.
    async fn sqlite_renders(conn: &mut SqliteConnection, record: &ReportRecord) -> String {
        let members: Vec<String> = canonical_columns()
            .enumerate()
            .map(|(n, (_, c))| format!("'{}', ?{}", c.name, n + 1))
            .collect();
        let sql = format!("SELECT json_object({})", members.join(", "));
        let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
        let values = record.values();
        for (index, _) in canonical_columns() {
            query = match values[index] {
                Value::Int(v) => query.bind(v),
                Value::Text(v) => query.bind(v.map(str::to_owned)),
            };
        }
        query.fetch_one(conn).await.unwrap()
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
    fn canonical_text_is_what_sqlite_json_object_renders() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut conn = runtime
            .block_on(SqliteConnection::connect("sqlite::memory:"))
            .unwrap();
        // Every canonical column but the two integers (id, drift_count).
        let texts = canonical_columns().count() - 2;
        // Each ASCII character alone, then random members.
        for byte in 0u8..0x80 {
            let record = record(
                &[Some(i64::MIN), None],
                &vec![Some(char::from(byte).to_string()); texts],
            );
            let sqlite = runtime.block_on(sqlite_renders(&mut conn, &record));
            assert_eq!(canonical_of(&record.values()), sqlite, "byte {byte:#04x}");
            assert_eq!(record.canonical(), sqlite, "byte {byte:#04x}");
        }
        let conn = std::cell::RefCell::new(conn);
        let mut runner = TestRunner::new(Config::with_cases(2000));
        let members = (
            prop::collection::vec(prop::option::of(any::<i64>()), 2),
            prop::collection::vec(text(), texts),
        );
        runner
            .run(&members, |(ints, texts)| {
                let record = record(&ints, &texts);
                let sqlite = runtime.block_on(sqlite_renders(&mut conn.borrow_mut(), &record));
                prop_assert_eq!(canonical_of(&record.values()), sqlite.as_str());
                prop_assert_eq!(record.canonical(), sqlite);
                Ok(())
            })
            .unwrap();
    }
}
