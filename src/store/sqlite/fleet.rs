//! The fleet's read side: current rows with their staleness, filtered; counts by status;
//! transitions; rollouts. Everything here reads `hosts`, `transitions` and `commits`, whose
//! size is bounded by the fleet (and the number of changes), never the whole history.
//! Staleness depends on the clock, so it is computed here at read time and never stored.

use sqlx::{QueryBuilder, Sqlite};

use crate::domain::{
    AnyOf, FleetFilter, FleetOrder, FleetPage, FleetRow, FleetSummary, HistoryStats, HostGauge,
    HostName, Pattern, ReportKind, Rollout, RolloutFilter, RolloutHost, ServerGroup, StalePolicy,
    Status, Timestamp, Transition, TransitionFilter,
};

use super::rows::timestamp;
use super::{SqliteStore, StatusRows, StoreError};

/// A pattern as SQLite's GLOB reads it: `*` stays a wildcard, `?` and `[` match themselves.
fn glob(pattern: &Pattern) -> String {
    let mut out = String::with_capacity(pattern.as_str().len());
    for c in pattern.as_str().chars() {
        match c {
            '?' => out.push_str("[?]"),
            '[' => out.push_str("[[]"),
            c => out.push(c),
        }
    }
    out
}

/// A text as an SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The SQL expression of a host's `report_due_by` (NULL: never stale) under `policy`, for a
/// row of `hosts` named `h`. The policy is fixed for the server's life, so this is built once.
pub(super) fn due_by_sql(policy: &StalePolicy) -> String {
    let mut after = String::from("CASE");
    for rule in &policy.rules {
        let seconds = rule
            .after
            .map_or_else(|| "NULL".to_owned(), |p| p.as_secs().to_string());
        after.push_str(&format!(
            " WHEN h.server_group GLOB {} THEN {seconds}",
            literal(&glob(&rule.groups))
        ));
    }
    after.push_str(&format!(
        " ELSE {} END",
        crate::domain::DEFAULT_AFTER.as_secs()
    ));
    format!("strftime('%Y-%m-%dT%H:%M:%fZ', h.drift_received_at, '+' || ({after}) || ' seconds')")
}

/// ` AND (column GLOB ? OR …)` for a filter with values; nothing for an empty one.
pub(super) fn push_any_text(
    query: &mut QueryBuilder<Sqlite>,
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
            // `+`: no index for a glob. A prefix glob would otherwise walk an index range
            // (all of a big history for `group-*`) and sort it, where the newest-first scan
            // stops after a page of matches.
            query
                .push(format!("+{column} GLOB "))
                .push_bind(glob(value));
        } else {
            query
                .push(format!("{column} = "))
                .push_bind(value.as_str().to_owned());
        }
    }
    query.push(")");
}

pub(super) fn push_any_status(
    query: &mut QueryBuilder<Sqlite>,
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

/// The SQL of "this host of `hosts h` is stale at `now`": its newest drift check arrived
/// before `now` minus its group's allowance. A comparison of text per host, where the due
/// time itself would need date arithmetic per host.
fn stale_sql(policy: &StalePolicy, now: Timestamp) -> String {
    let since = |after: Option<crate::domain::Period>| match after.and_then(|a| now.checked_sub(a))
    {
        Some(cutoff) => format!("h.drift_received_at < {}", literal(&cutoff.to_string())),
        None => "0".to_owned(),
    };
    let mut sql = String::from("CASE WHEN h.drift_received_at IS NULL THEN 0");
    for rule in &policy.rules {
        sql.push_str(&format!(
            " WHEN h.server_group GLOB {} THEN {}",
            literal(&glob(&rule.groups)),
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
/// FROM f WHERE …`. SQLite computes a column of `f` only where `select` uses it. The text
/// holds the time it is for, so it is never the same twice: run it unprepared
/// (`persistent(false)`), or it would crowd the connection's statement cache.
fn matching_hosts(
    store: &SqliteStore,
    filter: &FleetFilter,
    group: Option<&ServerGroup>,
    now: Timestamp,
    select: &str,
) -> QueryBuilder<Sqlite> {
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

const SUMMARY_COLUMNS: &str = "count(*) AS hosts, sum(status = 'synced') AS synced, \
     sum(status = 'out_of_sync') AS out_of_sync, sum(status = 'failed') AS failed, \
     sum(status = 'unknown') AS unknown, sum(stale) AS stale, \
     sum(changed_files_count) AS drifted_files, \
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

impl SqliteStore {
    /// The `GET /status` rows of the hosts `filter` (and `group`) selects, ordered by group
    /// and host: each host's materialised `status_row` with `stale` and `report_due_by` as of
    /// `now` appended, concatenated by SQLite.
    #[tracing::instrument(skip_all)]
    pub async fn status_rows(
        &self,
        filter: &FleetFilter,
        group: Option<&ServerGroup>,
        now: Timestamp,
    ) -> Result<StatusRows, StoreError> {
        let select = format!(
            "count(*) - count(status_row) AS missing, \
             '[' || coalesce(group_concat({ROW}, ',' ORDER BY server_group, host), '') || ']' \
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

impl SqliteStore {
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
    /// branch, matched literally).
    fn fleet_query(
        &self,
        filter: &FleetFilter,
        text: Option<&str>,
        now: Timestamp,
        select: &str,
    ) -> QueryBuilder<Sqlite> {
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
                any.push(format!("{column} LIKE "))
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
            " AND h.server_group = ?1 AND h.host = ?2",
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
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM reports")
            .fetch_one(&self.readers)
            .await?;
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
        let select = format!("NULL AS server_group, {SUMMARY_COLUMNS}");
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
        let mut query = QueryBuilder::<Sqlite>::new(
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
        let mut query = QueryBuilder::<Sqlite>::new(
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
                 sum(h.status = 'failed') AS failed FROM hosts h \
                 WHERE h.server_group IN (SELECT server_group FROM page) \
                 GROUP BY h.server_group, h.commit_sha), \
                 groups AS (SELECT server_group, sum(hosts) AS hosts FROM counted \
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
        type Row = (String, String, Option<String>, String, Option<String>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT h.server_group, h.host, h.commit_sha, h.status, h.commit_since
             FROM hosts h
             WHERE h.server_group IN (SELECT server_group FROM commits WHERE commit_sha = ?1)
             ORDER BY h.server_group, h.host",
        )
        .bind(commit_sha)
        .fetch_all(&self.readers)
        .await?;
        rows.into_iter()
            .map(|(group, host, current, status, since)| {
                Ok(RolloutHost {
                    server_group: ServerGroup::parse(&group)
                        .map_err(|p| StoreError::Corrupt(format!("server_group: {p}")))?,
                    host: HostName::parse(&host)
                        .map_err(|p| StoreError::Corrupt(format!("host: {p}")))?,
                    current_commit_sha: current,
                    status: Status::parse(&status)
                        .map_err(|p| StoreError::Corrupt(format!("status: {p}")))?,
                    since: since.map(|t| timestamp("commit_since", &t)).transpose()?,
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
    fn globs_keep_only_the_star_special() {
        let p = |t: &str| glob(&Pattern::parse(t).unwrap());
        assert_eq!(p("rsyslog-*"), "rsyslog-*");
        assert_eq!(p("a?b[c]"), "a[?]b[[]c]");
        assert_eq!(literal("it's"), "'it''s'");
    }
}
