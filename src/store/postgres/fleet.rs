//! The fleet's read side on PostgreSQL: current rows with their staleness, filtered; counts
//! by status; transitions; rollouts. The SQL is SQLite's (`store/sqlite/fleet.rs`) translated,
//! and answers the same bytes: GLOB becomes LIKE, sums of comparisons become counts, and
//! staleness is a boolean. Built at run time (filters, the clock), so not checked at build.

use gitops_status_postgres as checked;
use sqlx::{Postgres, QueryBuilder};

use crate::domain::{
    AnyOf, FleetFilter, FleetOrder, FleetPage, FleetRow, FleetSummary, HistoryStats, HostGauge,
    HostName, Pattern, ReportKind, Rollout, RolloutFilter, RolloutHost, ServerGroup, StalePolicy,
    Status, Timestamp, Transition, TransitionFilter,
};

use super::rows::timestamp;
use super::{PgStore, StatusRows, StoreError};

/// A pattern as LIKE reads it (with its default escape, the backslash): `*` becomes `%`, and
/// `%`, `_` and `\` match themselves. Under the columns' "C" collation LIKE compares bytes and
/// is case-sensitive, as SQLite's GLOB of the same pattern.
fn like(pattern: &Pattern) -> String {
    let mut out = String::with_capacity(pattern.as_str().len());
    for c in pattern.as_str().chars() {
        match c {
            '*' => out.push('%'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// A text as an SQL string literal (standard_conforming_strings, PostgreSQL's default since
/// 9.1, keeps backslashes as they are).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The SQL expression of a host's `report_due_by` (NULL: never stale) under `policy`, for a
/// row of `hosts` named `h`: the same text SQLite's `due_by_sql` gives. The policy is fixed
/// for the server's life, so this is built once.
pub(super) fn due_by_sql(policy: &StalePolicy) -> String {
    let mut after = String::from("CASE");
    for rule in &policy.rules {
        let seconds = rule
            .after
            .map_or_else(|| "NULL".to_owned(), |p| p.as_secs().to_string());
        after.push_str(&format!(
            " WHEN h.server_group LIKE {} THEN {seconds}",
            literal(&like(&rule.groups))
        ));
    }
    after.push_str(&format!(
        " ELSE {} END",
        crate::domain::DEFAULT_AFTER.as_secs()
    ));
    checked::due_by_sql("h.drift_received_at", &after)
}

/// ` AND (column LIKE $n OR …)` for a filter with values; nothing for an empty one.
pub(super) fn push_any_text(
    query: &mut QueryBuilder<Postgres>,
    column: &str,
    values: &AnyOf<Pattern>,
) {
    if values.is_empty() {
        return;
    }
    query.push(" AND (");
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            query.push(" OR ");
        }
        if value.as_str().contains('*') {
            query.push(format!("{column} LIKE ")).push_bind(like(value));
        } else {
            query
                .push(format!("{column} = "))
                .push_bind(value.as_str().to_owned());
        }
    }
    query.push(")");
}

pub(super) fn push_any_status(
    query: &mut QueryBuilder<Postgres>,
    column: &str,
    values: &AnyOf<Status>,
) {
    if values.is_empty() {
        return;
    }
    query.push(format!(" AND {column} IN ("));
    let mut list = query.separated(", ");
    for status in values.iter() {
        list.push_bind(status.as_str());
    }
    query.push(")");
}

/// The SQL of "this host of `hosts h` is stale at `now`" (a boolean): its newest drift check
/// arrived before `now` minus its group's allowance. A comparison of text per host, where the
/// due time itself would need date arithmetic per host.
fn stale_sql(policy: &StalePolicy, now: Timestamp) -> String {
    let since = |after: Option<crate::domain::Period>| match after.and_then(|a| now.checked_sub(a))
    {
        Some(cutoff) => format!("h.drift_received_at < {}", literal(&cutoff.to_string())),
        None => "false".to_owned(),
    };
    let mut sql = String::from("CASE WHEN h.drift_received_at IS NULL THEN false");
    for rule in &policy.rules {
        sql.push_str(&format!(
            " WHEN h.server_group LIKE {} THEN {}",
            literal(&like(&rule.groups)),
            since(rule.after)
        ));
    }
    sql.push_str(&format!(
        " ELSE {} END",
        since(Some(crate::domain::DEFAULT_AFTER))
    ));
    sql
}

/// `WITH f AS (the matching hosts, whether each is stale, when each is due) SELECT {select}
/// FROM f WHERE …`. PostgreSQL inlines `f`, so a column is computed only where `select` uses
/// it. The text holds the time it is for, so it is never the same twice: run it unprepared
/// (`persistent(false)`), or it would crowd the connection's statement cache.
fn matching_hosts(
    store: &PgStore,
    filter: &FleetFilter,
    group: Option<&ServerGroup>,
    now: Timestamp,
    select: &str,
) -> QueryBuilder<Postgres> {
    let mut query = QueryBuilder::new(format!(
        "WITH f AS (SELECT h.server_group, h.host, h.status_row, h.status, h.status_since, \
         h.changed_files_count, h.commit_sha, h.branch, h.last_report_id, \
         {} AS stale, {} AS due FROM hosts h WHERE 1 = 1",
        stale_sql(&store.stale_policy, now),
        store.due_by
    ));
    if let Some(group) = group {
        query
            .push(" AND h.server_group = ")
            .push_bind(group.as_str().to_owned());
    }
    push_any_status(&mut query, "h.status", &filter.status);
    for (column, values) in filter.text_filters() {
        push_any_text(&mut query, &format!("h.{column}"), values);
    }
    query.push(format!(") SELECT {select} FROM f WHERE 1 = 1"));
    match filter.stale {
        Some(true) => {
            query.push(" AND stale");
        }
        Some(false) => {
            query.push(" AND NOT stale");
        }
        None => {}
    }
    query
}

/// A host's `GET /status` row: its stored row with the read-time fields appended.
const ROW: &str = "substr(status_row, 1, length(status_row) - 1) \
     || ',\"stale\":' || CASE WHEN stale THEN 'true' ELSE 'false' END \
     || ',\"report_due_by\":' || coalesce('\"' || due || '\"', 'null') || '}'";

#[derive(sqlx::FromRow)]
struct RowsAnswer {
    missing: i64,
    rows: String,
    valid_until: Option<String>,
}

#[derive(sqlx::FromRow)]
struct SummaryAnswer {
    server_group: Option<String>,
    hosts: i64,
    synced: Option<i64>,
    out_of_sync: Option<i64>,
    failed: Option<i64>,
    unknown: Option<i64>,
    stale: Option<i64>,
    drifted_files: Option<i64>,
    oldest_drift_since: Option<String>,
}

// sum() of a BIGINT is NUMERIC: cast back so that it decodes as i64.
const SUMMARY_COLUMNS: &str = "count(*) AS hosts, \
     count(*) FILTER (WHERE status = 'synced') AS synced, \
     count(*) FILTER (WHERE status = 'out_of_sync') AS out_of_sync, \
     count(*) FILTER (WHERE status = 'failed') AS failed, \
     count(*) FILTER (WHERE status = 'unknown') AS unknown, \
     count(*) FILTER (WHERE stale) AS stale, \
     sum(changed_files_count)::bigint AS drifted_files, \
     min(CASE WHEN status <> 'synced' THEN status_since END) AS oldest_drift_since";

impl SummaryAnswer {
    fn into_summary(self) -> Result<FleetSummary, StoreError> {
        let count = |n: Option<i64>| u64::try_from(n.unwrap_or(0)).unwrap_or(0);
        Ok(FleetSummary {
            hosts: count(Some(self.hosts)),
            synced: count(self.synced),
            out_of_sync: count(self.out_of_sync),
            failed: count(self.failed),
            unknown: count(self.unknown),
            stale: count(self.stale),
            drifted_files: count(self.drifted_files),
            oldest_drift_since: self
                .oldest_drift_since
                .map(|t| timestamp("status_since", &t))
                .transpose()?,
        })
    }
}

impl PgStore {
    /// The `GET /status` rows of the hosts `filter` (and `group`) selects, ordered by group
    /// and host: each host's materialised `status_row` with `stale` and `report_due_by` as of
    /// `now` appended, concatenated by PostgreSQL.
    #[tracing::instrument(skip_all)]
    pub async fn status_rows(
        &self,
        filter: &FleetFilter,
        group: Option<&ServerGroup>,
        now: Timestamp,
    ) -> Result<StatusRows, StoreError> {
        let select = format!(
            "count(*) - count(status_row) AS missing, \
             '[' || coalesce(string_agg({ROW}, ',' ORDER BY server_group, host), '') || ']' \
                 AS rows, \
             min(CASE WHEN NOT stale THEN due END) AS valid_until"
        );
        let select = select.as_str();
        let answer: RowsAnswer = matching_hosts(self, filter, group, now, select)
            .build_query_as()
            .persistent(false)
            .fetch_one(&self.readers)
            .await?;
        if answer.missing > 0 {
            return Err(StoreError::Corrupt(format!(
                "{} hosts have no status_row; restart the server to render them",
                answer.missing
            )));
        }
        Ok(StatusRows {
            body: answer.rows,
            valid_until: answer
                .valid_until
                .map(|t| timestamp("report_due_by", &t))
                .transpose()?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct GaugeRow {
    server_group: String,
    host: String,
    status: String,
    stale: bool,
    received_at: String,
}

/// Hosts with their status, staleness as of `now` and newest report's arrival; `and` narrows
/// the selection (with binds).
fn gauge_sql(policy: &StalePolicy, now: Timestamp, and: &str) -> String {
    format!(
        "SELECT h.server_group, h.host, h.status, {} AS stale, r.received_at \
         FROM hosts h JOIN reports r ON r.id = h.last_report_id \
         WHERE h.status IS NOT NULL{and} ORDER BY h.server_group, h.host",
        stale_sql(policy, now)
    )
}

impl GaugeRow {
    fn into_gauge(self) -> Result<HostGauge, StoreError> {
        let corrupt = |field: &str, p: String| StoreError::Corrupt(format!("{field}: {p}"));
        Ok(HostGauge {
            server_group: ServerGroup::parse(&self.server_group)
                .map_err(|p| corrupt("server_group", p))?,
            host: HostName::parse(&self.host).map_err(|p| corrupt("host", p))?,
            status: Status::parse(&self.status).map_err(|p| corrupt("status", p))?,
            stale: self.stale,
            last_report_at: timestamp("received_at", &self.received_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct PageRow {
    server_group: String,
    host: String,
    status: String,
    stale: bool,
    status_since: Option<String>,
    commit_sha: Option<String>,
    branch: Option<String>,
    changed_files_count: Option<i64>,
    last_report_at: String,
    total: i64,
}

impl PgStore {
    /// One page of the hosts `filter` and the free text `text` select (text: a part of the
    /// host, group, commit or branch), sorted, with how many there are in all (the status
    /// page's table).
    #[tracing::instrument(skip_all)]
    pub async fn fleet_page(
        &self,
        filter: &FleetFilter,
        text: Option<&str>,
        order: FleetOrder,
        page: (u64, u64),
        now: Timestamp,
    ) -> Result<FleetPage, StoreError> {
        let select = "server_group, host, status, stale, status_since, commit_sha, branch, \
             changed_files_count, \
             (SELECT received_at FROM reports r WHERE r.id = f.last_report_id) AS last_report_at, \
             count(*) OVER () AS total";
        let mut query = self.fleet_query(filter, text, now, select);
        let direction = if order.descending { "DESC" } else { "ASC" };
        query.push(format!(
            " ORDER BY {} {direction}, server_group, host LIMIT ",
            order.key.column()
        ));
        let (offset, limit) = page;
        query
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .push(" OFFSET ")
            .push_bind(i64::try_from(offset).unwrap_or(i64::MAX));
        let rows: Vec<PageRow> = query
            .build_query_as()
            .persistent(false)
            .fetch_all(&self.readers)
            .await?;
        let total = rows
            .first()
            .map_or(0, |r| u64::try_from(r.total).unwrap_or(0));
        let corrupt = |field: &str, p: String| StoreError::Corrupt(format!("{field}: {p}"));
        let hosts = rows
            .into_iter()
            .map(|r| {
                Ok(FleetRow {
                    server_group: ServerGroup::parse(&r.server_group)
                        .map_err(|p| corrupt("server_group", p))?,
                    host: HostName::parse(&r.host).map_err(|p| corrupt("host", p))?,
                    status: Status::parse(&r.status).map_err(|p| corrupt("status", p))?,
                    stale: r.stale,
                    status_since: r
                        .status_since
                        .map(|t| timestamp("status_since", &t))
                        .transpose()?,
                    commit_sha: r.commit_sha,
                    branch: r.branch,
                    changed_files_count: r
                        .changed_files_count
                        .and_then(|n| u64::try_from(n).ok())
                        .unwrap_or(0),
                    last_report_at: timestamp("last_report_at", &r.last_report_at)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // Past the last page no row carries the count: ask for it alone.
        let total = if hosts.is_empty() && offset > 0 {
            let (n,): (i64,) = self
                .fleet_query(filter, text, now, "count(*)")
                .build_query_as()
                .persistent(false)
                .fetch_one(&self.readers)
                .await?;
            u64::try_from(n).unwrap_or(0)
        } else {
            total
        };
        Ok(FleetPage { total, hosts })
    }

    /// The hosts `filter` and `text` select (text: a part of the host, group, commit or
    /// branch, matched literally). ILIKE: SQLite's LIKE ignores the case of ASCII letters,
    /// and so does ILIKE under "C" (which folds no other letter, like SQLite's).
    fn fleet_query(
        &self,
        filter: &FleetFilter,
        text: Option<&str>,
        now: Timestamp,
        select: &str,
    ) -> QueryBuilder<Postgres> {
        let mut query = matching_hosts(self, filter, None, now, select);
        if let Some(text) = text.filter(|t| !t.is_empty()) {
            let like = format!(
                "%{}%",
                text.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            query.push(" AND (");
            let mut any = query.separated(" OR ");
            for column in [
                "host",
                "server_group",
                "coalesce(commit_sha, '')",
                "coalesce(branch, '')",
            ] {
                any.push(format!("{column} ILIKE "))
                    .push_bind_unseparated(like.clone())
                    .push_unseparated(" ESCAPE '\\'");
            }
            query.push(")");
        }
        query
    }

    /// Every host's status, staleness as of `now`, and newest report's arrival, ordered by
    /// group and host (for `/metrics`).
    #[tracing::instrument(skip_all)]
    pub async fn host_gauges(&self, now: Timestamp) -> Result<Vec<HostGauge>, StoreError> {
        // The only text in it is the stale policy's, quoted by `stale_sql`.
        let sql = gauge_sql(&self.stale_policy, now, "");
        let rows: Vec<GaugeRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .persistent(false)
            .fetch_all(&self.readers)
            .await?;
        rows.into_iter().map(GaugeRow::into_gauge).collect()
    }

    /// The same for one host; None when it is not in the fleet (for its badge).
    #[tracing::instrument(skip_all)]
    pub async fn host_gauge(
        &self,
        group: &ServerGroup,
        host: &HostName,
        now: Timestamp,
    ) -> Result<Option<HostGauge>, StoreError> {
        let sql = gauge_sql(
            &self.stale_policy,
            now,
            " AND h.server_group = $1 AND h.host = $2",
        );
        let row: Option<GaugeRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(group.as_str())
            .bind(host.as_str())
            .persistent(false)
            .fetch_optional(&self.readers)
            .await?;
        row.map(GaugeRow::into_gauge).transpose()
    }

    /// How many rows the history holds and when its oldest report arrived.
    #[tracing::instrument(skip_all)]
    pub async fn history_stats(&self) -> Result<HistoryStats, StoreError> {
        let rows = checked::report_count(&self.readers).await?;
        Ok(HistoryStats {
            rows: u64::try_from(rows).unwrap_or(0),
            oldest_report_at: self.oldest_report().await?,
        })
    }

    /// One host's `GET /status` row (JSON) as of `now`, None when the host is not in the fleet.
    #[tracing::instrument(skip_all)]
    pub async fn status_row(
        &self,
        group: &ServerGroup,
        host: &HostName,
        now: Timestamp,
    ) -> Result<Option<String>, StoreError> {
        let filter = FleetFilter {
            host: AnyOf(vec![
                Pattern::parse(host.as_str()).map_err(StoreError::Corrupt)?
            ]),
            ..FleetFilter::default()
        };
        let select = format!("status_row IS NULL AS missing, {ROW} AS row");
        let answer: Option<(bool, Option<String>)> =
            matching_hosts(self, &filter, Some(group), now, &select)
                .build_query_as()
                .persistent(false)
                .fetch_optional(&self.readers)
                .await?;
        match answer {
            Some((false, Some(row))) => Ok(Some(row)),
            Some(_) => Err(StoreError::Corrupt(format!(
                "host {group}/{host} has no status_row; restart the server to render it"
            ))),
            None => Ok(None),
        }
    }

    /// Hosts by status among those `filter` selects, as of `now`.
    #[tracing::instrument(skip_all)]
    pub async fn summary(
        &self,
        filter: &FleetFilter,
        now: Timestamp,
    ) -> Result<FleetSummary, StoreError> {
        let select = format!("NULL::text AS server_group, {SUMMARY_COLUMNS}");
        let answer: SummaryAnswer = matching_hosts(self, filter, None, now, &select)
            .build_query_as()
            .persistent(false)
            .fetch_one(&self.readers)
            .await?;
        answer.into_summary()
    }

    /// The same counts per server_group, ordered by group.
    #[tracing::instrument(skip_all)]
    pub async fn groups(
        &self,
        filter: &FleetFilter,
        now: Timestamp,
    ) -> Result<Vec<(ServerGroup, FleetSummary)>, StoreError> {
        let select = format!("server_group, {SUMMARY_COLUMNS}");
        let mut query = matching_hosts(self, filter, None, now, &select);
        query.push(" GROUP BY server_group ORDER BY server_group");
        let answers: Vec<SummaryAnswer> = query
            .build_query_as()
            .persistent(false)
            .fetch_all(&self.readers)
            .await?;
        answers
            .into_iter()
            .map(|mut answer| {
                let group = answer.server_group.take().unwrap_or_default();
                let group = ServerGroup::parse(&group)
                    .map_err(|p| StoreError::Corrupt(format!("server_group: {p}")))?;
                Ok((group, answer.into_summary()?))
            })
            .collect()
    }

    /// Changes of status, newest report first.
    #[tracing::instrument(skip_all)]
    pub async fn transitions(
        &self,
        filter: &TransitionFilter,
    ) -> Result<Vec<Transition>, StoreError> {
        let mut query = QueryBuilder::<Postgres>::new(
            "SELECT report_id, server_group, host, from_status, to_status, at, kind, \
             previous_duration_ms, commit_sha, changed_files_count FROM transitions WHERE 1 = 1",
        );
        push_any_text(&mut query, "server_group", &filter.server_group);
        push_any_text(&mut query, "host", &filter.host);
        push_any_status(&mut query, "from_status", &filter.from_status);
        push_any_status(&mut query, "to_status", &filter.to_status);
        if let Some(from) = filter.from {
            query.push(" AND at >= ").push_bind(from.to_string());
        }
        if let Some(to) = filter.to {
            query.push(" AND at <= ").push_bind(to.to_string());
        }
        if let Some(before) = filter.before {
            query.push(" AND report_id < ").push_bind(before);
        }
        query
            .push(" ORDER BY report_id DESC LIMIT ")
            .push_bind(i64::from(filter.limit));
        let rows: Vec<TransitionRow> = query.build_query_as().fetch_all(&self.readers).await?;
        rows.into_iter()
            .map(TransitionRow::into_transition)
            .collect()
    }

    /// Commits the groups' pipelines reported, newest report first, with their rollout.
    #[tracing::instrument(skip_all)]
    pub async fn rollouts(&self, filter: &RolloutFilter) -> Result<Vec<Rollout>, StoreError> {
        // The page first; then the hosts of its groups counted once, by commit, through the
        // (server_group, commit_sha, status) index.
        let mut query = QueryBuilder::<Postgres>::new(
            "WITH page AS (SELECT c.server_group, c.commit_sha, c.branch, c.first_reported, \
             c.last_reported FROM commits c WHERE 1 = 1",
        );
        push_any_text(&mut query, "c.server_group", &filter.server_group);
        push_any_text(&mut query, "c.commit_sha", &filter.commit_sha);
        if let Some(from) = filter.from {
            query
                .push(" AND c.last_reported >= ")
                .push_bind(from.to_string());
        }
        if let Some(to) = filter.to {
            query
                .push(" AND c.last_reported <= ")
                .push_bind(to.to_string());
        }
        query
            .push(" ORDER BY c.last_reported DESC, c.server_group, c.commit_sha LIMIT ")
            .push_bind(i64::from(filter.limit))
            .push(
                "), counted AS (SELECT h.server_group, h.commit_sha, count(*) AS hosts, \
                 count(*) FILTER (WHERE h.status = 'failed') AS failed FROM hosts h \
                 WHERE h.server_group IN (SELECT server_group FROM page) \
                 GROUP BY h.server_group, h.commit_sha), \
                 groups AS (SELECT server_group, sum(hosts)::bigint AS hosts FROM counted \
                 GROUP BY server_group) \
                 SELECT p.server_group, p.commit_sha, p.branch, p.first_reported, \
                 p.last_reported, coalesce(c.hosts, 0) AS hosts_on_commit, \
                 coalesce(g.hosts, 0) AS hosts_in_group, coalesce(c.failed, 0) AS hosts_failed \
                 FROM page p \
                 LEFT JOIN counted c ON c.server_group = p.server_group \
                                    AND c.commit_sha = p.commit_sha \
                 LEFT JOIN groups g ON g.server_group = p.server_group \
                 ORDER BY p.last_reported DESC, p.server_group, p.commit_sha",
            );
        let rows: Vec<RolloutRow> = query.build_query_as().fetch_all(&self.readers).await?;
        rows.into_iter().map(RolloutRow::into_rollout).collect()
    }

    /// The hosts of every group whose pipelines reported `commit_sha`, by group and host.
    #[tracing::instrument(skip_all)]
    pub async fn rollout_hosts(&self, commit_sha: &str) -> Result<Vec<RolloutHost>, StoreError> {
        let rows = checked::rollout_hosts(&self.readers, commit_sha).await?;
        rows.into_iter()
            .map(|r| {
                Ok(RolloutHost {
                    server_group: ServerGroup::parse(&r.server_group)
                        .map_err(|p| StoreError::Corrupt(format!("server_group: {p}")))?,
                    host: HostName::parse(&r.host)
                        .map_err(|p| StoreError::Corrupt(format!("host: {p}")))?,
                    current_commit_sha: r.commit_sha,
                    status: Status::parse(&r.status)
                        .map_err(|p| StoreError::Corrupt(format!("status: {p}")))?,
                    since: r
                        .commit_since
                        .map(|t| timestamp("commit_since", &t))
                        .transpose()?,
                })
            })
            .collect()
    }
}

#[derive(sqlx::FromRow)]
struct TransitionRow {
    report_id: i64,
    server_group: String,
    host: String,
    from_status: Option<String>,
    to_status: String,
    at: String,
    kind: String,
    previous_duration_ms: Option<i64>,
    commit_sha: Option<String>,
    changed_files_count: i64,
}

impl TransitionRow {
    fn into_transition(self) -> Result<Transition, StoreError> {
        let corrupt = |column: &str, p: String| StoreError::Corrupt(format!("{column}: {p}"));
        Ok(Transition {
            report_id: self.report_id,
            server_group: ServerGroup::parse(&self.server_group)
                .map_err(|p| corrupt("server_group", p))?,
            host: HostName::parse(&self.host).map_err(|p| corrupt("host", p))?,
            from_status: self
                .from_status
                .as_deref()
                .map(Status::parse)
                .transpose()
                .map_err(|p| corrupt("from_status", p))?,
            to_status: Status::parse(&self.to_status).map_err(|p| corrupt("to_status", p))?,
            at: timestamp("at", &self.at)?,
            kind: ReportKind::parse(&self.kind).map_err(|p| corrupt("kind", p))?,
            previous_duration_ms: self.previous_duration_ms,
            commit_sha: self.commit_sha,
            changed_files_count: u64::try_from(self.changed_files_count).unwrap_or(0),
        })
    }
}

#[derive(sqlx::FromRow)]
struct RolloutRow {
    server_group: String,
    commit_sha: String,
    branch: Option<String>,
    first_reported: String,
    last_reported: String,
    hosts_on_commit: i64,
    hosts_in_group: i64,
    hosts_failed: i64,
}

impl RolloutRow {
    fn into_rollout(self) -> Result<Rollout, StoreError> {
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(Rollout {
            server_group: ServerGroup::parse(&self.server_group)
                .map_err(|p| StoreError::Corrupt(format!("server_group: {p}")))?,
            commit_sha: self.commit_sha,
            branch: self.branch,
            first_reported: timestamp("first_reported", &self.first_reported)?,
            last_reported: timestamp("last_reported", &self.last_reported)?,
            hosts_on_commit: count(self.hosts_on_commit),
            hosts_in_group: count(self.hosts_in_group),
            hosts_failed: count(self.hosts_failed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn likes_keep_only_the_star_special() {
        let p = |t: &str| like(&Pattern::parse(t).unwrap());
        assert_eq!(p("rsyslog-*"), "rsyslog-%");
        assert_eq!(p("a?b[c]"), "a?b[c]");
        assert_eq!(p("50%_off\\*"), "50\\%\\_off\\\\%");
        assert_eq!(literal("it's"), "'it''s'");
    }
}

/// The reads on a real PostgreSQL server, named by GITOPS_STATUS_TEST_POSTGRES_URL; ignored
/// without one: `tests/postgres/with-server.sh cargo test --lib store::postgres -- --ignored`.
/// Until `PgStore::open` exists the HTTP suite cannot run on PostgreSQL, so these check the
/// SQL built here on a small fleet whose answers SQLite's code gives (worked out by hand).
#[cfg(test)]
mod live {
    use std::str::FromStr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use sqlx::postgres::PgConnectOptions;
    use sqlx::{Connection, Executor, PgConnection};

    use super::*;
    use crate::domain::{HistoryFilter, Period, SortKey};

    const NEEDS: &str = "needs GITOPS_STATUS_TEST_POSTGRES_URL (tests/postgres/with-server.sh)";

    async fn store(policy: &str) -> PgStore {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let url = std::env::var("GITOPS_STATUS_TEST_POSTGRES_URL").expect(NEEDS);
        let name = format!(
            "pgstore_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = PgConnection::connect(&url).await.unwrap();
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
        let options = PgConnectOptions::from_str(&url).unwrap().database(&name);
        let policy = StalePolicy::parse(policy).unwrap();
        let config = crate::store::StoreConfig {
            read_connections: 2,
            chain_log_every: 0,
            write_queue: 16,
            render_row: crate::api::status::render_row,
            clock: crate::domain::Clock::system(),
            stale_policy: policy,
            idempotency_window: Period::DAY,
            metrics: Arc::new(crate::metrics::Metrics::new().unwrap()),
            panic_on_host: None,
        };
        // The writer is not run: these tests write their rows with SQL.
        let (store, _writer) = PgStore::open(options, config).await.unwrap();
        store
    }

    /// Five hosts: g-a/h1 (10 minutes' allowance, due 12:05), g-a/h2 (stale since 11:10),
    /// lab-x/h3 (never stale), g_b/h4 (no drift check yet), G-A/h5 (not g-a: an hour).
    const FLEET: &str = r#"
        INSERT INTO reports (id, received_at, kind, server_group, host, status, changed_files,
                             commit_sha, observed_at, prev_hash, hash, raw_body)
        SELECT id, t, kind, g, h, s, '[]', c, t, repeat('0', 64), repeat(id::text, 64), '{}'
        FROM (VALUES
            (1, '2026-12-07T10:00:00.000Z', 'pipeline', 'g-a', 'h1', 'out_of_sync', 'abc'),
            (2, '2026-12-07T10:30:00.000Z', 'pipeline', 'g-a', 'h2', 'synced', 'def'),
            (3, '2026-12-07T09:00:00.000Z', 'pipeline', 'lab-x', 'h3', 'failed', 'abc'),
            (4, '2026-12-07T08:00:00.000Z', 'legacy', 'g_b', 'h4', 'unknown', NULL),
            (5, '2026-12-07T11:59:00.000Z', 'pipeline', 'G-A', 'h5', 'synced', 'abc')
        ) v (id, t, kind, g, h, s, c);
        INSERT INTO hosts (server_group, host, last_report_id, status_report_id,
                           files_report_id, pipeline_report_id, status_row, status,
                           changed_files_count, commit_sha, branch, status_since,
                           drift_received_at, commit_since)
        SELECT g, h, id, id, id, CASE WHEN id <> 4 THEN id END,
               '{"host":"' || h || '"}', s, n, c, b, since, drift, commit_since
        FROM (VALUES
            (1, 'g-a', 'h1', 'out_of_sync', 2, 'abc', 'main', '2026-12-07T11:00:00.000Z',
             '2026-12-07T11:55:00.000Z', '2026-12-07T10:00:00.000Z'),
            (2, 'g-a', 'h2', 'synced', 0, 'def', 'main', '2026-12-07T10:30:00.000Z',
             '2026-12-07T11:00:00.000Z', '2026-12-07T10:30:00.000Z'),
            (3, 'lab-x', 'h3', 'failed', 3, 'abc', 'release', '2026-12-07T09:00:00.000Z',
             '2026-12-07T01:00:00.000Z', NULL),
            (4, 'g_b', 'h4', 'unknown', NULL, NULL, NULL, '2026-12-07T08:00:00.000Z', NULL, NULL),
            (5, 'G-A', 'h5', 'synced', 0, 'abc', 'Main', '2026-12-07T11:59:00.000Z',
             '2026-12-07T11:59:00.000Z', NULL)
        ) v (id, g, h, s, n, c, b, since, drift, commit_since);
        INSERT INTO transitions VALUES
            (1, 'g-a', 'h1', NULL, 'out_of_sync', '2026-12-07T10:00:00.000Z', 'pipeline', NULL,
             'abc', 2),
            (2, 'g-a', 'h2', NULL, 'synced', '2026-12-07T10:30:00.000Z', 'pipeline', NULL,
             'def', 0),
            (3, 'lab-x', 'h3', NULL, 'failed', '2026-12-07T09:00:00.000Z', 'pipeline', NULL,
             'abc', 3),
            (5, 'G-A', 'h5', 'failed', 'synced', '2026-12-07T11:59:00.000Z', 'pipeline', 60000,
             'abc', 0);
        INSERT INTO commits VALUES
            ('g-a', 'abc', 'main', '2026-12-07T10:00:00.000Z', '2026-12-07T11:00:00.000Z'),
            ('g-a', 'def', 'main', '2026-12-07T10:30:00.000Z', '2026-12-07T11:30:00.000Z'),
            ('lab-x', 'abc', 'release', '2026-12-07T09:00:00.000Z', '2026-12-07T10:00:00.000Z');
        INSERT INTO idempotency_keys VALUES ('ci', 'k-1', repeat('f', 64), 2, 201, '{}',
                                             '2026-12-07T10:30:00.000Z');
    "#;

    async fn fleet() -> PgStore {
        let store = store("g-a=10m,lab-*=off,*=1h").await;
        store.readers.execute(FLEET).await.unwrap();
        store
    }

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    fn now() -> Timestamp {
        at("2026-12-07T12:00:00.000Z")
    }

    fn patterns(values: &[&str]) -> AnyOf<Pattern> {
        AnyOf(values.iter().map(|v| Pattern::parse(v).unwrap()).collect())
    }

    fn row(host: &str, stale: bool, due: Option<&str>) -> String {
        let due = due.map_or_else(|| "null".to_owned(), |d| format!("\"{d}\""));
        format!(r#"{{"host":"{host}","stale":{stale},"report_due_by":{due}}}"#)
    }

    #[tokio::test]
    #[ignore = "needs GITOPS_STATUS_TEST_POSTGRES_URL (tests/postgres/with-server.sh)"]
    async fn status_rows_carry_staleness_in_byte_order() {
        let store = fleet().await;
        let rows = |filter: FleetFilter, group: Option<&'static str>| {
            let store = store.clone();
            async move {
                let group = group.map(|g| ServerGroup::parse(g).unwrap());
                store
                    .status_rows(&filter, group.as_ref(), now())
                    .await
                    .unwrap()
            }
        };
        let all = rows(FleetFilter::default(), None).await;
        let expected = [
            row("h5", false, Some("2026-12-07T12:59:00.000Z")),
            row("h1", false, Some("2026-12-07T12:05:00.000Z")),
            row("h2", true, Some("2026-12-07T11:10:00.000Z")),
            row("h4", false, None),
            row("h3", false, None),
        ];
        assert_eq!(all.body, format!("[{}]", expected.join(",")));
        assert_eq!(all.valid_until, Some(at("2026-12-07T12:05:00.000Z")));

        let stale = rows(
            FleetFilter {
                stale: Some(true),
                ..FleetFilter::default()
            },
            None,
        )
        .await;
        assert_eq!(stale.body, format!("[{}]", expected[2]));
        assert_eq!(stale.valid_until, None);

        let hosts = |filter: FleetFilter, group: Option<&'static str>| {
            let rows = rows(filter, group);
            async move {
                let body: Vec<serde_json::Value> = serde_json::from_str(&rows.await.body).unwrap();
                body.iter()
                    .map(|r| r["host"].as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            }
        };
        let by_group = |values: &[&str]| FleetFilter {
            server_group: patterns(values),
            ..FleetFilter::default()
        };
        // `-` and `_` are themselves, and the case counts, as in GLOB.
        assert_eq!(hosts(by_group(&["g-*"]), None).await, ["h1", "h2"]);
        assert_eq!(hosts(by_group(&["g_*"]), None).await, ["h4"]);
        assert_eq!(hosts(by_group(&["G-A", "lab-*"]), None).await, ["h5", "h3"]);
        assert_eq!(hosts(by_group(&["*a*"]), None).await, ["h1", "h2", "h3"]);
        let branch = FleetFilter {
            branch: patterns(&["main"]),
            ..FleetFilter::default()
        };
        assert_eq!(hosts(branch, None).await, ["h1", "h2"]);
        let failed = FleetFilter {
            status: AnyOf(vec![Status::parse("failed").unwrap()]),
            ..FleetFilter::default()
        };
        assert_eq!(hosts(failed, None).await, ["h3"]);
        assert_eq!(
            hosts(FleetFilter::default(), Some("g-a")).await,
            ["h1", "h2"]
        );
        let none = rows(by_group(&["nothing"]), None).await;
        assert_eq!((none.body.as_str(), none.valid_until), ("[]", None));

        let g_a = ServerGroup::parse("g-a").unwrap();
        let h2 = store
            .status_row(&g_a, &HostName::parse("h2").unwrap(), now())
            .await
            .unwrap();
        assert_eq!(h2.as_deref(), Some(expected[2].as_str()));
        let h9 = store
            .status_row(&g_a, &HostName::parse("h9").unwrap(), now())
            .await
            .unwrap();
        assert_eq!(h9, None);
    }

    #[tokio::test]
    #[ignore = "needs GITOPS_STATUS_TEST_POSTGRES_URL (tests/postgres/with-server.sh)"]
    async fn summaries_count_by_status() {
        let store = fleet().await;
        let all = store.summary(&FleetFilter::default(), now()).await.unwrap();
        assert_eq!(
            all,
            FleetSummary {
                hosts: 5,
                synced: 2,
                out_of_sync: 1,
                failed: 1,
                unknown: 1,
                stale: 1,
                drifted_files: 5,
                oldest_drift_since: Some(at("2026-12-07T08:00:00.000Z")),
            }
        );
        let nothing = FleetFilter {
            host: patterns(&["nothing"]),
            ..FleetFilter::default()
        };
        assert_eq!(
            store.summary(&nothing, now()).await.unwrap(),
            FleetSummary::default()
        );
        let groups = store.groups(&FleetFilter::default(), now()).await.unwrap();
        let names: Vec<&str> = groups.iter().map(|(g, _)| g.as_str()).collect();
        assert_eq!(names, ["G-A", "g-a", "g_b", "lab-x"]);
        assert_eq!(
            groups[1].1,
            FleetSummary {
                hosts: 2,
                synced: 1,
                out_of_sync: 1,
                stale: 1,
                drifted_files: 2,
                oldest_drift_since: Some(at("2026-12-07T11:00:00.000Z")),
                ..FleetSummary::default()
            }
        );
        assert_eq!(
            groups[2].1,
            FleetSummary {
                hosts: 1,
                unknown: 1,
                oldest_drift_since: Some(at("2026-12-07T08:00:00.000Z")),
                ..FleetSummary::default()
            }
        );
    }

    #[tokio::test]
    #[ignore = "needs GITOPS_STATUS_TEST_POSTGRES_URL (tests/postgres/with-server.sh)"]
    async fn fleet_pages_sort_search_and_count() {
        let store = fleet().await;
        let page = |text: Option<&'static str>, key: SortKey, descending: bool, at: u64| {
            let store = store.clone();
            async move {
                let order = FleetOrder { key, descending };
                let page = store
                    .fleet_page(&FleetFilter::default(), text, order, (at, 2), now())
                    .await
                    .unwrap();
                let hosts: Vec<String> = page.hosts.iter().map(|r| r.host.to_string()).collect();
                (page.total, hosts, page.hosts)
            }
        };
        let (total, hosts, rows) = page(None, SortKey::Host, false, 0).await;
        assert_eq!((total, hosts), (5, vec!["h1".to_owned(), "h2".to_owned()]));
        assert_eq!(
            rows[0],
            FleetRow {
                server_group: ServerGroup::parse("g-a").unwrap(),
                host: HostName::parse("h1").unwrap(),
                status: Status::parse("out_of_sync").unwrap(),
                stale: false,
                status_since: Some(at("2026-12-07T11:00:00.000Z")),
                commit_sha: Some("abc".to_owned()),
                branch: Some("main".to_owned()),
                changed_files_count: 2,
                last_report_at: at("2026-12-07T10:00:00.000Z"),
            }
        );
        assert!(rows[1].stale);
        let (total, hosts, _) = page(None, SortKey::Host, false, 10).await;
        assert_eq!((total, hosts.len()), (5, 0));
        // The text is literal, and ASCII letters match either case, as SQLite's LIKE.
        assert_eq!(page(Some("H5"), SortKey::Host, false, 0).await.1, ["h5"]);
        assert_eq!(page(Some("_"), SortKey::Host, false, 0).await.1, ["h4"]);
        assert_eq!(page(Some("%"), SortKey::Host, false, 0).await.0, 0);
        let (total, hosts, _) = page(Some("ab"), SortKey::Host, false, 0).await;
        assert_eq!((total, hosts), (3, vec!["h1".to_owned(), "h3".to_owned()]));
        assert_eq!(
            page(None, SortKey::LastReport, true, 0).await.1,
            ["h5", "h2"]
        );
        assert_eq!(page(None, SortKey::Status, true, 0).await.1, ["h3", "h1"]);
        for key in SortKey::ALL {
            for descending in [false, true] {
                let (total, hosts, _) = page(None, key, descending, 4).await;
                assert_eq!((total, hosts.len()), (5, 1), "{key:?} {descending}");
            }
        }
    }

    #[tokio::test]
    #[ignore = "needs GITOPS_STATUS_TEST_POSTGRES_URL (tests/postgres/with-server.sh)"]
    async fn gauges_and_history_stats() {
        let store = fleet().await;
        let gauges = store.host_gauges(now()).await.unwrap();
        let seen: Vec<(String, bool)> = gauges
            .iter()
            .map(|g| (format!("{}/{}", g.server_group, g.host), g.stale))
            .collect();
        let expected = [
            ("G-A/h5", false),
            ("g-a/h1", false),
            ("g-a/h2", true),
            ("g_b/h4", false),
            ("lab-x/h3", false),
        ]
        .map(|(k, s)| (k.to_owned(), s));
        assert_eq!(seen, expected);
        let g_a = ServerGroup::parse("g-a").unwrap();
        let h2 = store
            .host_gauge(&g_a, &HostName::parse("h2").unwrap(), now())
            .await
            .unwrap()
            .unwrap();
        assert!(h2.stale);
        assert_eq!(h2.last_report_at, at("2026-12-07T10:30:00.000Z"));
        let h9 = HostName::parse("h9").unwrap();
        assert_eq!(store.host_gauge(&g_a, &h9, now()).await.unwrap(), None);
        let stats = store.history_stats().await.unwrap();
        assert_eq!(stats.rows, 5);
        assert_eq!(stats.oldest_report_at, Some(at("2026-12-07T10:00:00.000Z")));
    }

    #[tokio::test]
    #[ignore = "needs GITOPS_STATUS_TEST_POSTGRES_URL (tests/postgres/with-server.sh)"]
    async fn transitions_and_rollouts_filter() {
        let store = fleet().await;
        let ids = |filter: TransitionFilter| {
            let store = store.clone();
            async move {
                let found = store
                    .transitions(&TransitionFilter {
                        limit: 10,
                        ..filter
                    })
                    .await
                    .unwrap();
                found.iter().map(|t| t.report_id).collect::<Vec<_>>()
            }
        };
        let status = |s: &str| AnyOf(vec![Status::parse(s).unwrap()]);
        assert_eq!(ids(TransitionFilter::default()).await, [5, 3, 2, 1]);
        let groups = TransitionFilter {
            server_group: patterns(&["g-*"]),
            ..TransitionFilter::default()
        };
        assert_eq!(ids(groups).await, [2, 1]);
        let to = TransitionFilter {
            to_status: status("synced"),
            ..TransitionFilter::default()
        };
        assert_eq!(ids(to).await, [5, 2]);
        let from = TransitionFilter {
            from_status: status("failed"),
            ..TransitionFilter::default()
        };
        assert_eq!(ids(from).await, [5]);
        let window = TransitionFilter {
            from: Some(at("2026-12-07T10:00:00.000Z")),
            to: Some(at("2026-12-07T10:30:00.000Z")),
            before: Some(3),
            ..TransitionFilter::default()
        };
        assert_eq!(ids(window).await, [2, 1]);
        let first = store
            .transitions(&TransitionFilter {
                limit: 1,
                ..TransitionFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(first[0].previous_duration_ms, Some(60_000));
        assert_eq!(first[0].from_status, Some(Status::parse("failed").unwrap()));

        let rollouts = |filter: RolloutFilter| {
            let store = store.clone();
            async move {
                let found = store
                    .rollouts(&RolloutFilter {
                        limit: 10,
                        ..filter
                    })
                    .await
                    .unwrap();
                found
                    .iter()
                    .map(|r| {
                        (
                            format!("{}@{}", r.server_group, r.commit_sha),
                            r.hosts_on_commit,
                            r.hosts_in_group,
                            r.hosts_failed,
                        )
                    })
                    .collect::<Vec<_>>()
            }
        };
        let expected = [
            ("g-a@def".to_owned(), 1, 2, 0),
            ("g-a@abc".to_owned(), 1, 2, 0),
            ("lab-x@abc".to_owned(), 1, 1, 1),
        ];
        assert_eq!(rollouts(RolloutFilter::default()).await, expected);
        let abc = RolloutFilter {
            commit_sha: patterns(&["ab*"]),
            ..RolloutFilter::default()
        };
        assert_eq!(rollouts(abc).await, expected[1..]);
        let recent = RolloutFilter {
            from: Some(at("2026-12-07T11:00:00.000Z")),
            ..RolloutFilter::default()
        };
        assert_eq!(rollouts(recent).await, expected[..2]);
        let on_abc: Vec<String> = store
            .rollout_hosts("abc")
            .await
            .unwrap()
            .iter()
            .map(|h| format!("{}/{}", h.server_group, h.host))
            .collect();
        assert_eq!(on_abc, ["g-a/h1", "g-a/h2", "lab-x/h3"]);
    }

    #[tokio::test]
    #[ignore = "needs GITOPS_STATUS_TEST_POSTGRES_URL (tests/postgres/with-server.sh)"]
    async fn history_and_current_state() {
        let store = fleet().await;
        let ids = |filter: HistoryFilter| {
            let store = store.clone();
            async move {
                let limit = if filter.limit == 0 { 10 } else { filter.limit };
                let found = store
                    .history(&HistoryFilter { limit, ..filter })
                    .await
                    .unwrap();
                found.iter().map(|e| e.id).collect::<Vec<_>>()
            }
        };
        assert_eq!(ids(HistoryFilter::default()).await, [5, 4, 3, 2, 1]);
        let groups = HistoryFilter {
            server_group: patterns(&["g*"]),
            ..HistoryFilter::default()
        };
        assert_eq!(ids(groups).await, [4, 2, 1]);
        let legacy = HistoryFilter {
            kind: AnyOf(vec![ReportKind::parse("legacy").unwrap()]),
            ..HistoryFilter::default()
        };
        assert_eq!(ids(legacy).await, [4]);
        let synced = HistoryFilter {
            status: AnyOf(vec![Status::parse("synced").unwrap()]),
            ..HistoryFilter::default()
        };
        assert_eq!(ids(synced).await, [5, 2]);
        let paged = HistoryFilter {
            limit: 2,
            offset: 1,
            ..HistoryFilter::default()
        };
        assert_eq!(ids(paged).await, [4, 3]);
        let window = HistoryFilter {
            from: Some(at("2026-12-07T10:00:00.000Z")),
            before: Some(5),
            ..HistoryFilter::default()
        };
        assert_eq!(ids(window).await, [2, 1]);

        let g_a = ServerGroup::parse("g-a").unwrap();
        let h1 = HostName::parse("h1").unwrap();
        let state = store.host_state(&g_a, &h1).await.unwrap().unwrap();
        assert_eq!(state.status, Status::parse("out_of_sync").unwrap());
        assert_eq!(state.status_since, at("2026-12-07T11:00:00.000Z"));
        assert_eq!(state.deployment.commit_sha.as_deref(), Some("abc"));
        let legacy = store.latest_legacy_host(None, None).await.unwrap().unwrap();
        assert_eq!(legacy.host.as_str(), "h4");
        assert_eq!(
            store.latest_legacy_host(Some(&g_a), None).await.unwrap(),
            None
        );
        assert_eq!(
            store.oldest_report().await.unwrap(),
            Some(at("2026-12-07T10:00:00.000Z"))
        );
        assert!(!store.imported_before(&g_a, &h1, "x").await.unwrap());
        let answer = store
            .stored_answer("ci", "k-1", now(), Period::DAY)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((answer.1.status, answer.1.body.as_str()), (201, "{}"));
        let expired = store.stored_answer("ci", "k-1", now(), Period::HOUR);
        assert!(expired.await.unwrap().is_none());
    }

    /// `report_due_by` is the same text on both backends: PostgreSQL's expression against
    /// the bundled SQLite's strftime, and the domain's `due_by`, for instants across the
    /// years 0001–9999 (PostgreSQL has no year 0) and allowances up to 100 years.
    #[tokio::test]
    #[ignore = "needs GITOPS_STATUS_TEST_POSTGRES_URL (tests/postgres/with-server.sh)"]
    async fn due_by_matches_sqlite() {
        let store = store("*=1h").await;
        let sqlite = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        let pg_sql = format!("SELECT {}", checked::due_by_sql("$1::text", "$2::bigint"));
        let first = at("0001-01-01T00:00:00.000Z").epoch_millis();
        let last = at("9999-12-31T23:59:59.999Z").epoch_millis();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            seed >> 11
        };
        let span = u64::try_from(last - first).unwrap();
        for i in 0..400 {
            let millis = first + i64::try_from(next() % span).unwrap();
            let received = Timestamp::from_epoch_millis(millis).unwrap().to_string();
            let seconds = match i % 4 {
                0 => 3_162_240_000,
                1 => i64::try_from(next() % 3_162_240_000).unwrap() + 1,
                2 => i64::try_from(next() % 86_400).unwrap() + 1,
                _ => 600,
            };
            let from_sqlite: Option<String> = sqlx::query_scalar(
                "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', ?1, '+' || ?2 || ' seconds')",
            )
            .bind(&received)
            .bind(seconds)
            .fetch_one(&sqlite)
            .await
            .unwrap();
            let from_pg: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(pg_sql.clone()))
                .bind(&received)
                .bind(seconds)
                .fetch_one(&store.readers)
                .await
                .unwrap();
            assert_eq!(from_pg, from_sqlite, "{received} + {seconds} s");
            let period = Period::from_secs(u64::try_from(seconds).unwrap());
            let from_domain = period
                .and_then(|p| at(&received).checked_add(p))
                .map(|t| t.to_string());
            assert_eq!(from_pg, from_domain, "{received} + {seconds} s");
        }
    }
}
