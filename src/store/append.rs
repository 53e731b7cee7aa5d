//! Appending reports to the audit chain: a report's row as far as the request's own thread
//! can render it (`NewRow`), the id, times and hashes the writer gives it (`Link`), and the
//! multi-row INSERT that stores a group of them. Shared by the writer's group commits and the
//! benchmark's bulk loader.

use std::sync::LazyLock;

use sqlx::SqliteConnection;

use crate::domain::{chain, Deployment, Report, ReportKind, Timestamp};

use super::chain::push_members;
use super::{RequestMeta, StoreError};

/// Reports per INSERT statement, at most (27 parameters each, far below SQLite's limit).
pub(super) const MAX_ROWS_PER_STATEMENT: usize = 32;

/// The newest link of the audit chain, and the id the next report gets.
#[derive(Clone, Debug)]
pub(super) struct Tip {
    pub next_id: i64,
    pub hash: String,
}

/// The chain's tip as stored. Ids continue from `sqlite_sequence`, which remembers the
/// highest id even after rows are deleted from the start of the chain.
pub(super) async fn load_tip(conn: &mut SqliteConnection) -> Result<Tip, StoreError> {
    let (seq, hash): (Option<i64>, Option<String>) = sqlx::query_as(
        "SELECT (SELECT seq FROM sqlite_sequence WHERE name = 'reports'),
                (SELECT hash FROM reports ORDER BY id DESC LIMIT 1)",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(Tip {
        next_id: seq.unwrap_or(0) + 1,
        hash: hash.unwrap_or_else(|| chain::GENESIS.to_owned()),
    })
}

/// A `reports` row about to be inserted, as far as it is known before the writer takes it:
/// everything but its id, its times and its links in the chain. The canonical text of the
/// members in between is rendered here too, on the request's thread, so the writer only
/// adds the members it decides and hashes.
pub(super) struct NewRow {
    kind: &'static str,
    server_group: String,
    host: String,
    status: Option<&'static str>,
    changed_files: Option<String>,
    deployment: Deployment,
    last_pipeline_run: Option<String>,
    last_cron_check: Option<String>,
    drift_count: Option<i64>,
    principal: Option<String>,
    pub client_addr: Option<String>,
    forwarded_for: Option<String>,
    user_agent: Option<String>,
    raw_body: String,
    /// The canonical members from `kind` to `drift_count`.
    canonical_middle: String,
    /// The canonical members from `principal` to `raw_body`.
    canonical_tail: String,
}

/// What the writer adds to a `NewRow`: its id, times and place in the chain.
pub(super) struct Link {
    /// The report's place in its group.
    pub index: usize,
    pub id: i64,
    received_at: String,
    observed_at: String,
    prev_hash: String,
    pub hash: String,
}

impl NewRow {
    pub(super) fn new(report: &Report, meta: RequestMeta) -> Self {
        use super::chain::Member::{Int, Text};
        let kind = report.kind();
        let reported_at = report.reported_at.map(|t| t.to_string());
        let (last_pipeline_run, last_cron_check) = match kind {
            ReportKind::Pipeline => (reported_at, None),
            _ => (None, reported_at),
        };
        let mut row = NewRow {
            kind: kind.as_str(),
            server_group: report.server_group.as_str().to_owned(),
            host: report.host.as_str().to_owned(),
            status: report.status().map(|s| s.as_str()),
            changed_files: report
                .changed_files()
                .map(|files| json_string_array(files.as_slice())),
            deployment: report.deployment().cloned().unwrap_or_default(),
            last_pipeline_run,
            last_cron_check,
            drift_count: report.drift_count().map(i64::from),
            principal: meta.principal,
            client_addr: meta.client_addr,
            forwarded_for: meta.forwarded_for,
            user_agent: meta.user_agent,
            raw_body: meta.raw_body,
            canonical_middle: String::new(),
            canonical_tail: String::new(),
        };
        let d = &row.deployment;
        let mut middle = String::with_capacity(512);
        push_members(
            &mut middle,
            [
                ("kind", Text(Some(row.kind))),
                ("server_group", Text(Some(&row.server_group))),
                ("host", Text(Some(&row.host))),
                ("status", Text(row.status)),
                ("changed_files", Text(row.changed_files.as_deref())),
                ("project_name", Text(d.project_name.as_deref())),
                ("repo_name", Text(d.repo_name.as_deref())),
                ("server_type", Text(d.server_type.as_deref())),
                ("environment", Text(d.environment.as_deref())),
                ("validation_status", Text(d.validation_status.as_deref())),
                ("validation_message", Text(d.validation_message.as_deref())),
                ("commit_sha", Text(d.commit_sha.as_deref())),
                ("branch", Text(d.branch.as_deref())),
                ("updated_by", Text(d.updated_by.as_deref())),
                ("last_pipeline_run", Text(row.last_pipeline_run.as_deref())),
                ("last_cron_check", Text(row.last_cron_check.as_deref())),
                ("drift_count", Int(row.drift_count)),
            ],
        );
        let mut tail = String::with_capacity(row.raw_body.len() + 256);
        push_members(
            &mut tail,
            [
                ("principal", Text(row.principal.as_deref())),
                ("client_addr", Text(row.client_addr.as_deref())),
                ("forwarded_for", Text(row.forwarded_for.as_deref())),
                ("user_agent", Text(row.user_agent.as_deref())),
                ("raw_body", Text(Some(&row.raw_body))),
            ],
        );
        row.canonical_middle = middle;
        row.canonical_tail = tail;
        row
    }

    /// The row as report `id` of the chain after `prev_hash`. Its canonical text is byte for
    /// byte what SQLite's `json_object` renders from the stored row (`chain::CANONICAL_ROW`),
    /// which `verify` and auditors recompute.
    pub(super) fn link(
        &self,
        index: usize,
        id: i64,
        received_at: Timestamp,
        observed_at: Timestamp,
        prev_hash: &str,
    ) -> Link {
        use super::chain::Member::{Int, Text};
        let received_at = received_at.to_string();
        let observed_at = observed_at.to_string();
        let mut canonical =
            String::with_capacity(self.canonical_middle.len() + self.canonical_tail.len() + 128);
        canonical.push('{');
        push_members(
            &mut canonical,
            [
                ("id", Int(Some(id))),
                ("received_at", Text(Some(&received_at))),
            ],
        );
        canonical.push(',');
        canonical.push_str(&self.canonical_middle);
        canonical.push(',');
        push_members(&mut canonical, [("observed_at", Text(Some(&observed_at)))]);
        canonical.push(',');
        canonical.push_str(&self.canonical_tail);
        canonical.push('}');
        Link {
            index,
            id,
            received_at,
            observed_at,
            prev_hash: prev_hash.to_owned(),
            hash: chain::link(prev_hash, &canonical),
        }
    }
}

/// A JSON array of strings, as stored in `reports.changed_files`.
fn json_string_array(items: &[String]) -> String {
    let mut out = String::with_capacity(2 + items.iter().map(|i| i.len() + 3).sum::<usize>());
    out.push('[');
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        super::chain::push_json_string(&mut out, item);
    }
    out.push(']');
    out
}

const REPORT_COLUMNS: &str = "id, received_at, kind, server_group, host, status, changed_files, \
    project_name, repo_name, server_type, environment, validation_status, validation_message, \
    commit_sha, branch, updated_by, last_pipeline_run, last_cron_check, drift_count, \
    observed_at, principal, client_addr, forwarded_for, user_agent, raw_body, prev_hash, hash";
const REPORT_PARAMS: usize = 27;

/// One multi-row statement (`INSERT … VALUES (…), (…) …`) prepared for 1, 2, 4, …
/// MAX_ROWS_PER_STATEMENT rows: any number of rows is written with a few statements whose text
/// repeats, so SQLite's prepared statements are reused.
pub(super) struct MultiRow(Vec<String>);

impl MultiRow {
    /// `head VALUES (?, …), … tail`, with `params` parameters per row.
    pub(super) fn new(head: &str, params: usize, tail: &str) -> Self {
        let tuple = format!("({})", vec!["?"; params].join(", "));
        MultiRow(
            (0..=MAX_ROWS_PER_STATEMENT.ilog2())
                .map(|power| {
                    format!(
                        "{head} VALUES {}{tail}",
                        vec![tuple.as_str(); 1 << power].join(", ")
                    )
                })
                .collect(),
        )
    }

    /// The statements that write `rows`, each with the rows it binds, in order.
    pub(super) fn chunks<'r, T>(&self, rows: &'r [T]) -> impl Iterator<Item = (&str, &'r [T])> {
        let mut rest = rows;
        statement_sizes(rows.len()).map(move |size| {
            let (chunk, after) = rest.split_at(size);
            rest = after;
            (self.0[size.ilog2() as usize].as_str(), chunk)
        })
    }
}

/// Splits `n` rows into statement sizes: powers of two, largest first.
fn statement_sizes(mut n: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if n == 0 {
            return None;
        }
        let size = MAX_ROWS_PER_STATEMENT.min(1 << n.ilog2());
        n -= size;
        Some(size)
    })
}

static INSERT_REPORTS: LazyLock<MultiRow> = LazyLock::new(|| {
    MultiRow::new(
        &format!("INSERT INTO reports ({REPORT_COLUMNS})"),
        REPORT_PARAMS,
        "",
    )
});

/// Inserts linked rows, in the order given.
pub(super) async fn insert_reports(
    conn: &mut SqliteConnection,
    rows: &[(&NewRow, &Link)],
) -> Result<(), StoreError> {
    for (sql, chunk) in INSERT_REPORTS.chunks(rows) {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (row, link) in chunk {
            let d = &row.deployment;
            query = query
                .bind(link.id)
                .bind(link.received_at.as_str())
                .bind(row.kind)
                .bind(row.server_group.as_str())
                .bind(row.host.as_str())
                .bind(row.status)
                .bind(row.changed_files.as_deref())
                .bind(d.project_name.as_deref())
                .bind(d.repo_name.as_deref())
                .bind(d.server_type.as_deref())
                .bind(d.environment.as_deref())
                .bind(d.validation_status.as_deref())
                .bind(d.validation_message.as_deref())
                .bind(d.commit_sha.as_deref())
                .bind(d.branch.as_deref())
                .bind(d.updated_by.as_deref())
                .bind(row.last_pipeline_run.as_deref())
                .bind(row.last_cron_check.as_deref())
                .bind(row.drift_count)
                .bind(link.observed_at.as_str())
                .bind(row.principal.as_deref())
                .bind(row.client_addr.as_deref())
                .bind(row.forwarded_for.as_deref())
                .bind(row.user_agent.as_deref())
                .bind(row.raw_body.as_str())
                .bind(link.prev_hash.as_str())
                .bind(link.hash.as_str());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_sizes_are_powers_of_two_that_add_up() {
        for n in 0..=300 {
            let sizes: Vec<usize> = statement_sizes(n).collect();
            assert_eq!(sizes.iter().sum::<usize>(), n);
            assert!(sizes
                .iter()
                .all(|s| s.is_power_of_two() && *s <= MAX_ROWS_PER_STATEMENT));
        }
        assert_eq!(statement_sizes(37).collect::<Vec<_>>(), [32, 4, 1]);
    }

    #[test]
    fn multi_row_sql_has_one_tuple_per_row() {
        let statement = MultiRow::new("INSERT INTO t (a, b)", 2, " ON CONFLICT DO NOTHING");
        let chunks: Vec<(&str, &[u8])> = statement.chunks(&[1, 2]).collect();
        assert_eq!(
            chunks,
            [(
                "INSERT INTO t (a, b) VALUES (?, ?), (?, ?) ON CONFLICT DO NOTHING",
                &[1u8, 2][..]
            )]
        );
        assert_eq!(INSERT_REPORTS.0.len(), 6);
        assert_eq!(
            INSERT_REPORTS.0[5].matches('?').count(),
            REPORT_PARAMS * MAX_ROWS_PER_STATEMENT
        );
        let rows: Vec<usize> = (0..37).collect();
        let chunks: Vec<&[usize]> = INSERT_REPORTS.chunks(&rows).map(|(_, c)| c).collect();
        assert_eq!(chunks.concat(), rows, "every row once, in order");
    }

    #[test]
    fn changed_files_are_a_json_array() {
        let files = vec!["/etc/a \"b\"".to_owned(), "c\\d\n".to_owned()];
        let text = json_string_array(&files);
        let back: Vec<String> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, files);
        assert_eq!(json_string_array(&[]), "[]");
    }
}
