//! Appending to the audit chain in SQLite: where its tip is stored, and the multi-row INSERT
//! that stores a group of linked rows. Shared by the writer's group commits, retention and
//! the benchmark's bulk loader.

use std::sync::LazyLock;

use sqlx::SqliteConnection;

use crate::domain::chain;

use super::record::{column_list, ReportRecord, COLUMNS};
use super::StoreError;
use crate::store::append::Tip;

/// Reports per INSERT statement, at most (one parameter per column each: far below SQLite's
/// limit of 32766).
pub(super) const MAX_ROWS_PER_STATEMENT: usize = 32;

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
        &format!("INSERT INTO reports ({})", column_list()),
        COLUMNS.len(),
        "",
    )
});

/// Inserts linked rows, in the order given.
pub(super) async fn insert_reports(
    conn: &mut SqliteConnection,
    rows: &[&ReportRecord],
) -> Result<(), StoreError> {
    for (sql, chunk) in INSERT_REPORTS.chunks(rows) {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for record in chunk {
            query = record.bind(query);
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
            COLUMNS.len() * MAX_ROWS_PER_STATEMENT
        );
        let rows: Vec<usize> = (0..37).collect();
        let chunks: Vec<&[usize]> = INSERT_REPORTS.chunks(&rows).map(|(_, c)| c).collect();
        assert_eq!(chunks.concat(), rows, "every row once, in order");
    }
}
