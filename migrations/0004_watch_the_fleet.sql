-- Watching the fleet: what `GET /status`'s filters, `/summary`, `/groups`, `/transitions`
-- and `/commits` read, kept so that none of them reads the history.
--
-- hosts       - rebuilt (it holds one row per host, so this is quick) with a copy of each
--               host's current fields that filters and counts use, and three facts the
--               history alone cannot answer cheaply: status_since (when the current status
--               began), drift_received_at (when the server received the newest drift check:
--               staleness counts from it) and commit_since (when the current commit was first
--               reported deployed). The writer keeps them with status_row, in the same
--               transaction as the report.
-- transitions - one row per report that changed a host's status, written with it; retention
--               removes a row with its report (reports that change a status are kept for the
--               longer tier, --retain-changes).
-- commits     - one row per (server_group, commit_sha) seen in pipeline reports.
-- store_tasks - work the server does once at its next start, before it serves: 'derive'
--               fills the columns and tables above from the history (src/store/derive.rs) and
--               renders every status row again (rows gain status_since).

DROP VIEW current_status;

CREATE TABLE hosts_new (
    id                  INTEGER PRIMARY KEY,
    server_group        TEXT    NOT NULL,
    host                TEXT    NOT NULL,
    last_report_id      INTEGER NOT NULL,
    status_report_id    INTEGER NOT NULL,
    files_report_id     INTEGER NOT NULL,
    pipeline_report_id  INTEGER,
    cron_report_id      INTEGER,
    status_row          TEXT    CHECK (status_row IS NULL
                                       OR (json_valid(status_row)
                                           AND json_type(status_row) = 'object')),
    -- Copies of the current state for filters and counts (NULL until derived).
    status              TEXT    CHECK (status IS NULL
                                       OR status IN ('synced', 'out_of_sync', 'failed', 'unknown')),
    changed_files_count INTEGER CHECK (changed_files_count IS NULL OR changed_files_count >= 0),
    environment         TEXT,
    server_type         TEXT,
    repo_name           TEXT,
    project_name        TEXT,
    branch              TEXT,
    commit_sha          TEXT,
    validation_status   TEXT,
    status_since        TEXT,
    drift_received_at   TEXT,
    commit_since        TEXT,
    UNIQUE (server_group, host)
) STRICT;

INSERT INTO hosts_new (id, server_group, host, last_report_id, status_report_id,
                       files_report_id, pipeline_report_id, cron_report_id)
SELECT id, server_group, host, last_report_id, status_report_id, files_report_id,
       pipeline_report_id, cron_report_id
FROM hosts;

DROP TABLE hosts;
ALTER TABLE hosts_new RENAME TO hosts;
CREATE INDEX hosts_without_status_row ON hosts (id) WHERE status_row IS NULL;
-- Counts by status and by commit read these instead of the rows (which hold status_row).
CREATE INDEX hosts_by_status ON hosts (server_group, status, status_since, changed_files_count,
                                       drift_received_at);
CREATE INDEX hosts_by_group_commit ON hosts (server_group, commit_sha, status);

CREATE TABLE transitions (
    -- The report that changed the status.
    report_id            INTEGER PRIMARY KEY,
    server_group         TEXT    NOT NULL,
    host                 TEXT    NOT NULL,
    -- NULL for a host's first report, or its first after it was decommissioned.
    from_status          TEXT    CHECK (from_status IS NULL
                                        OR from_status IN ('synced', 'out_of_sync', 'failed', 'unknown')),
    to_status            TEXT    NOT NULL CHECK (to_status IN ('synced', 'out_of_sync', 'failed', 'unknown')),
    -- The report's observation time.
    at                   TEXT    NOT NULL CHECK (at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z'),
    kind                 TEXT    NOT NULL CHECK (kind IN ('pipeline', 'cron', 'legacy', 'import')),
    -- How long the previous status lasted, in milliseconds.
    previous_duration_ms INTEGER CHECK (previous_duration_ms IS NULL OR previous_duration_ms >= 0),
    commit_sha           TEXT,
    changed_files_count  INTEGER NOT NULL CHECK (changed_files_count >= 0),
    CHECK ((from_status IS NULL) = (previous_duration_ms IS NULL))
) STRICT;

CREATE INDEX transitions_by_host ON transitions (server_group, host, report_id);
CREATE INDEX transitions_by_host_name ON transitions (host, report_id);
CREATE INDEX transitions_by_at ON transitions (at);

CREATE TABLE commits (
    server_group   TEXT NOT NULL,
    commit_sha     TEXT NOT NULL,
    -- The branch of the newest pipeline report of the commit in the group.
    branch         TEXT,
    -- When the server received the first and the newest of those reports.
    first_reported TEXT NOT NULL,
    last_reported  TEXT NOT NULL,
    PRIMARY KEY (server_group, commit_sha)
) STRICT, WITHOUT ROWID;

CREATE INDEX commits_by_last_reported ON commits (last_reported);
CREATE INDEX commits_by_sha ON commits (commit_sha);

CREATE TABLE store_tasks (
    name TEXT PRIMARY KEY CHECK (name IN ('derive'))
) STRICT;

INSERT INTO store_tasks (name) VALUES ('derive');

CREATE VIEW current_status AS
SELECT
    p.project_name                                       AS project_name,
    p.repo_name                                          AS repo_name,
    h.server_group                                       AS server_group,
    p.server_type                                        AS server_type,
    p.environment                                        AS environment,
    h.host                                               AS host,
    s.status                                             AS status,
    json_array_length(coalesce(f.changed_files, '[]'))   AS changed_files_count,
    coalesce(f.changed_files, '[]')                      AS changed_files,
    p.validation_status                                  AS validation_status,
    p.validation_message                                 AS validation_message,
    CASE WHEN p.kind = 'import'
         THEN coalesce(min(p.last_pipeline_run, p.received_at), p.observed_at)
         ELSE p.observed_at END                          AS last_pipeline_run,
    CASE WHEN c.kind = 'import'
         THEN min(c.last_cron_check, c.received_at)
         ELSE c.observed_at END                          AS last_cron_check,
    p.commit_sha                                         AS commit_sha,
    p.branch                                             AS branch,
    p.updated_by                                         AS updated_by,
    l.received_at                                        AS timestamp,
    s.observed_at                                        AS status_observed_at,
    f.drift_count                                        AS reported_drift_count,
    h.last_report_id                                     AS last_report_id,
    coalesce(h.status_since, s.observed_at)              AS status_since,
    h.drift_received_at                                  AS drift_received_at,
    h.commit_since                                       AS commit_since
FROM hosts h
JOIN reports s ON s.id = h.status_report_id
JOIN reports f ON f.id = h.files_report_id
JOIN reports l ON l.id = h.last_report_id
LEFT JOIN reports p ON p.id = h.pipeline_report_id
LEFT JOIN reports c ON c.id = h.cron_report_id;
