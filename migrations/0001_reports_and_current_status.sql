-- The audit trail and the current state derived from it.
--
-- reports        one row per accepted report, append-only: never updated, never deleted by the
--                service. Every other object here is derived from it.
-- hosts          one row per host holding only pointers (report ids) to the reports that define
--                each facet of its current state. It holds no report data of its own, so it
--                cannot disagree with reports; it is written in the same transaction as the
--                report it points at.
-- current_status one row per host: the merged fields, found by primary-key lookups, so reading
--                it costs the same however long the history grows.
--
-- Timestamps are RFC 3339 UTC text with exactly three fractional digits
-- (2026-04-26T10:30:00.000Z), so text order is time order.
--
-- Every report row is chained: hash = sha256(prev_hash || canonical), where canonical is the
-- json_object(...) of the row's content in the column order the README gives, prev_hash is
-- the hash of the row before it (64 zeros before the first row ever), and both are lower-case
-- hex. Each row keeps its prev_hash, so the chain stays verifiable from the first remaining
-- row when old rows are deleted from its start.

CREATE TABLE reports (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at        TEXT    NOT NULL,
    kind               TEXT    NOT NULL CHECK (kind IN ('pipeline', 'cron', 'legacy')),
    server_group       TEXT    NOT NULL CHECK (length(server_group) BETWEEN 1 AND 128
                                               AND server_group NOT GLOB '*[^A-Za-z0-9._-]*'),
    host               TEXT    NOT NULL CHECK (length(host) BETWEEN 1 AND 128
                                               AND host NOT GLOB '*[^A-Za-z0-9._-]*'),
    status             TEXT    CHECK (status IN ('synced', 'out_of_sync', 'failed', 'unknown')),
    -- JSON array of strings; NULL when the report did not carry the field.
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
    -- The client's own times, as sent (normalised to UTC); NULL when not sent.
    -- v1 reports store their last_check in last_cron_check.
    last_pipeline_run  TEXT,
    last_cron_check    TEXT,
    -- v1 only: the drift_count the client sent.
    drift_count        INTEGER CHECK (drift_count IS NULL OR drift_count >= 0),
    -- The report's own time, or received_at when the client sent none: the ordering key.
    observed_at        TEXT    NOT NULL,
    -- Who sent it: the name of the token that authorised the write (NULL without tokens), the
    -- TCP peer, the X-Forwarded-For header and the User-Agent header.
    principal          TEXT,
    client_addr        TEXT,
    forwarded_for      TEXT,
    user_agent         TEXT,
    -- The request body exactly as received.
    raw_body           TEXT    NOT NULL CHECK (json_valid(raw_body)),
    -- The audit chain (see above).
    prev_hash          TEXT    NOT NULL CHECK (length(prev_hash) = 64
                                               AND prev_hash NOT GLOB '*[^0-9a-f]*'),
    hash               TEXT    NOT NULL CHECK (length(hash) = 64
                                               AND hash NOT GLOB '*[^0-9a-f]*'),
    CHECK (received_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z'),
    CHECK (observed_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z'),
    CHECK (last_pipeline_run IS NULL OR last_pipeline_run GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z'),
    CHECK (last_cron_check IS NULL OR last_cron_check GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z'),
    -- What each kind may carry.
    CHECK (kind = 'cron' OR status IS NOT NULL),
    CHECK (kind = 'pipeline' OR (project_name IS NULL AND repo_name IS NULL
                                 AND server_type IS NULL AND environment IS NULL
                                 AND validation_status IS NULL AND validation_message IS NULL
                                 AND commit_sha IS NULL AND branch IS NULL AND updated_by IS NULL
                                 AND last_pipeline_run IS NULL)),
    CHECK (kind = 'legacy' OR drift_count IS NULL),
    CHECK (kind <> 'pipeline' OR last_cron_check IS NULL)
) STRICT;

CREATE TRIGGER reports_are_append_only_update
BEFORE UPDATE ON reports
BEGIN
    SELECT RAISE(ABORT, 'reports is append-only: rows are never updated');
END;

CREATE TRIGGER reports_are_append_only_delete
BEFORE DELETE ON reports
BEGIN
    SELECT RAISE(ABORT, 'reports is append-only: rows are never deleted');
END;

CREATE INDEX reports_by_host ON reports (server_group, host, id);
CREATE INDEX reports_by_received_at ON reports (received_at);
CREATE INDEX reports_by_kind ON reports (kind, id);
CREATE INDEX reports_by_commit ON reports (commit_sha) WHERE commit_sha IS NOT NULL;

CREATE TABLE hosts (
    id                 INTEGER PRIMARY KEY,
    server_group       TEXT    NOT NULL,
    host               TEXT    NOT NULL,
    -- The newest report received for the host (its received_at is the host's timestamp).
    last_report_id     INTEGER NOT NULL REFERENCES reports (id),
    -- The reports that define each facet (see src/domain/merge.rs for the rules).
    status_report_id   INTEGER NOT NULL REFERENCES reports (id),
    files_report_id    INTEGER NOT NULL REFERENCES reports (id),
    pipeline_report_id INTEGER REFERENCES reports (id),
    cron_report_id     INTEGER REFERENCES reports (id),
    UNIQUE (server_group, host)
) STRICT;

-- One row the server rewrites to find out whether the database takes writes again after a
-- write failed (disk full, read-only); /ready stays 503 until it does.
CREATE TABLE writer_probe (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    at                 TEXT    NOT NULL
) STRICT;

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
    p.observed_at                                        AS last_pipeline_run,
    c.observed_at                                        AS last_cron_check,
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
