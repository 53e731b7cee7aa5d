-- Day 100: retention, decommissioning and import. One rebuild of `reports` for every change
-- they need (a CHECK constraint cannot be altered in place), and of `hosts` with it.
--
-- reports   - three new kinds: `decommission` (a host left the fleet), `import` (a host's last
--             state from the old servers' files) and `retention` (a pruning pass: which rows
--             it removed). A retention row belongs to no host: server_group and host are NULL
--             there and only there. An import carries a deployment, a drift check's time and a
--             v1 drift_count at once.
--           - is_change: whether the row changed something (kept for --retain-changes) or was
--             routine. The writer sets it when it writes the row, from the host's state
--             before and after; rows written before this migration are classified here,
--             against the host's previous report that carried a status or files. It is not
--             part of the chained content: it only tells retention how long to keep the row.
--           - rows may be deleted, but only those a retention row written in the same
--             transaction describes: the pruner lists their ids in `prune_permit`, the DELETE
--             trigger refuses every other row, and the permits are gone again at commit. An
--             ad-hoc DELETE (or any UPDATE) from a sqlite3 session is still refused.
-- hosts     - without foreign keys to reports: every DELETE of a report would otherwise scan
--             hosts once per key. Pruning never removes a report a host points at, and
--             `gitops-status verify` renders every host from its reports.
-- current_status - an import row holds separate times for its deployment and its drift check
--             (its last_pipeline_run and last_cron_check, never later than its arrival).
--
-- The rows are copied as they are, so every hash stays valid, and the id sequence continues.

DROP VIEW current_status;

CREATE TABLE reports_new (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at        TEXT    NOT NULL,
    kind               TEXT    NOT NULL CHECK (kind IN ('pipeline', 'cron', 'legacy',
                                                        'decommission', 'import', 'retention')),
    server_group       TEXT    CHECK (server_group IS NULL
                                      OR (length(server_group) BETWEEN 1 AND 128
                                          AND server_group NOT GLOB '*[^A-Za-z0-9._-]*')),
    host               TEXT    CHECK (host IS NULL
                                      OR (length(host) BETWEEN 1 AND 128
                                          AND host NOT GLOB '*[^A-Za-z0-9._-]*')),
    status             TEXT    CHECK (status IN ('synced', 'out_of_sync', 'failed', 'unknown')),
    changed_files      TEXT    CHECK (changed_files IS NULL
                                      OR (json_valid(changed_files)
                                          AND json_type(changed_files) = 'array')),
    project_name       TEXT,
    repo_name          TEXT,
    server_type        TEXT,
    environment        TEXT,
    validation_status  TEXT,
    validation_message TEXT,
    commit_sha         TEXT,
    branch             TEXT,
    updated_by         TEXT,
    last_pipeline_run  TEXT,
    last_cron_check    TEXT,
    drift_count        INTEGER CHECK (drift_count IS NULL OR drift_count >= 0),
    observed_at        TEXT    NOT NULL,
    principal          TEXT,
    client_addr        TEXT,
    forwarded_for      TEXT,
    user_agent         TEXT,
    -- The request body exactly as received; for decommission, import and retention rows the
    -- event's own description (see the README).
    raw_body           TEXT    NOT NULL CHECK (json_valid(raw_body)),
    prev_hash          TEXT    NOT NULL CHECK (length(prev_hash) = 64
                                               AND prev_hash NOT GLOB '*[^0-9a-f]*'),
    hash               TEXT    NOT NULL CHECK (length(hash) = 64
                                               AND hash NOT GLOB '*[^0-9a-f]*'),
    -- Retention's tier: 1 for a change, 0 for a routine report (see above); a row that
    -- does not say is kept as a change.
    is_change          INTEGER NOT NULL DEFAULT 1 CHECK (is_change IN (0, 1)),
    CHECK (received_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z'),
    CHECK (observed_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z'),
    CHECK (last_pipeline_run IS NULL OR last_pipeline_run GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z'),
    CHECK (last_cron_check IS NULL OR last_cron_check GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z'),
    -- What each kind may carry.
    CHECK ((kind = 'retention') = (server_group IS NULL)),
    CHECK ((kind = 'retention') = (host IS NULL)),
    CHECK (kind IN ('cron', 'decommission', 'retention') OR status IS NOT NULL),
    CHECK (kind NOT IN ('decommission', 'retention')
           OR (status IS NULL AND changed_files IS NULL AND last_cron_check IS NULL)),
    CHECK (kind IN ('pipeline', 'import')
           OR (project_name IS NULL AND repo_name IS NULL
               AND server_type IS NULL AND environment IS NULL
               AND validation_status IS NULL AND validation_message IS NULL
               AND commit_sha IS NULL AND branch IS NULL AND updated_by IS NULL
               AND last_pipeline_run IS NULL)),
    CHECK (kind IN ('legacy', 'import') OR drift_count IS NULL),
    CHECK (kind <> 'pipeline' OR last_cron_check IS NULL),
    CHECK (kind IN ('cron', 'legacy') OR is_change = 1)
) STRICT;

-- Each drift check against the host's previous report that said something about its status
-- or files (found through the (server_group, host, id) index, one seek per row: no sort of
-- the whole history). A different status or file list (as text) makes it a change, and so
-- does having no such predecessor.
INSERT INTO reports_new
SELECT r.id, r.received_at, r.kind, r.server_group, r.host, r.status, r.changed_files,
       r.project_name, r.repo_name, r.server_type, r.environment, r.validation_status,
       r.validation_message, r.commit_sha, r.branch, r.updated_by, r.last_pipeline_run,
       r.last_cron_check, r.drift_count, r.observed_at, r.principal, r.client_addr,
       r.forwarded_for, r.user_agent, r.raw_body, r.prev_hash, r.hash,
       CASE
           WHEN r.kind NOT IN ('cron', 'legacy') THEN 1
           WHEN r.status IS NULL AND r.changed_files IS NULL THEN 0
           WHEN p.id IS NULL THEN 1
           WHEN r.status IS NOT NULL AND r.status IS NOT p.status THEN 1
           WHEN coalesce(r.changed_files, '[]') IS NOT coalesce(p.changed_files, '[]') THEN 1
           ELSE 0
       END
FROM reports r
LEFT JOIN reports p ON p.id = (
    SELECT q.id FROM reports q
    WHERE q.server_group = r.server_group AND q.host = r.host AND q.id < r.id
      AND (q.status IS NOT NULL OR q.changed_files IS NOT NULL)
    ORDER BY q.id DESC LIMIT 1);

-- The id sequence continues where it was, even past rows deleted from the end.
UPDATE sqlite_sequence
SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'reports'), 0))
WHERE name = 'reports_new';

CREATE TABLE hosts_new (
    id                 INTEGER PRIMARY KEY,
    server_group       TEXT    NOT NULL,
    host               TEXT    NOT NULL,
    -- The newest report received for the host (its received_at is the host's timestamp).
    last_report_id     INTEGER NOT NULL,
    -- The reports that define each facet (see src/domain/merge.rs for the rules).
    status_report_id   INTEGER NOT NULL,
    files_report_id    INTEGER NOT NULL,
    pipeline_report_id INTEGER,
    cron_report_id     INTEGER,
    -- The host's GET /status row (migration 0002).
    status_row         TEXT    CHECK (status_row IS NULL
                                      OR (json_valid(status_row)
                                          AND json_type(status_row) = 'object')),
    UNIQUE (server_group, host)
) STRICT;

INSERT INTO hosts_new
SELECT id, server_group, host, last_report_id, status_report_id, files_report_id,
       pipeline_report_id, cron_report_id, status_row
FROM hosts;

-- The child first: its foreign keys would refuse the parent's implicit DELETE.
DROP TABLE hosts;
DROP TABLE reports;
ALTER TABLE reports_new RENAME TO reports;
ALTER TABLE hosts_new RENAME TO hosts;

CREATE INDEX reports_by_host ON reports (server_group, host, id);
CREATE INDEX reports_by_received_at ON reports (received_at);
CREATE INDEX reports_by_kind ON reports (kind, id);
CREATE INDEX reports_by_commit ON reports (commit_sha) WHERE commit_sha IS NOT NULL;
CREATE INDEX hosts_without_status_row ON hosts (id) WHERE status_row IS NULL;

-- Every entry of an old server's file that was imported, by host and a hash of the entry's
-- JSON (keys sorted), so importing the same file again adds nothing, even after retention
-- removed the import's report.
CREATE TABLE imported_entries (
    server_group       TEXT    NOT NULL,
    host               TEXT    NOT NULL,
    entry_sha256       TEXT    NOT NULL CHECK (length(entry_sha256) = 64),
    report_id          INTEGER NOT NULL,
    PRIMARY KEY (server_group, host, entry_sha256)
) STRICT, WITHOUT ROWID;

-- The id ranges the pruning transaction in progress may delete; empty between transactions.
CREATE TABLE prune_permit (
    first_id           INTEGER PRIMARY KEY,
    last_id            INTEGER NOT NULL,
    CHECK (last_id >= first_id)
) STRICT;

CREATE TRIGGER reports_are_append_only_update
BEFORE UPDATE ON reports
BEGIN
    SELECT RAISE(ABORT, 'reports is append-only: rows are never updated');
END;

CREATE TRIGGER reports_are_append_only_delete
BEFORE DELETE ON reports
WHEN NOT EXISTS (
    SELECT 1 FROM prune_permit
    WHERE first_id = (SELECT max(first_id) FROM prune_permit WHERE first_id <= old.id)
      AND last_id >= old.id
)
BEGIN
    SELECT RAISE(ABORT, 'reports is append-only: rows are never deleted, except by retention, which records what it removes');
END;

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
    h.last_report_id                                     AS last_report_id
FROM hosts h
JOIN reports s ON s.id = h.status_report_id
JOIN reports f ON f.id = h.files_report_id
JOIN reports l ON l.id = h.last_report_id
LEFT JOIN reports p ON p.id = h.pipeline_report_id
LEFT JOIN reports c ON c.id = h.cron_report_id;
