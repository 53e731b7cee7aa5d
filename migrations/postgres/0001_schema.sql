-- The PostgreSQL schema: what a SQLite database holds after migrations/0001..0006, in one
-- step (those files say why each object exists; this one says what differs and why). The
-- same tables, columns in the same order (src/store/record.rs lists reports' columns in
-- table order for every SELECT and INSERT), indexes, triggers and view. Written for
-- PostgreSQL 15 (Debian 12's); tests/postgres/schema.sh checks it.
--
-- Types. SQLite INTEGER is BIGINT here (sqlx reads every one as i64) and BLOB is BYTEA.
-- Timestamps stay TEXT holding the same fixed-width RFC 3339 UTC strings
-- (2026-04-26T10:30:00.000Z): text order is time order, and the audit chain hashes these
-- exact bytes, so they must come back as they were written.
--
-- Every TEXT column is COLLATE "C": SQLite compares text byte by byte (BINARY), and so does
-- "C", whatever locale the database was created with. Under a language's collation
-- ORDER BY host, min() and range filters would sort differently from SQLite, and lower()
-- would fold more than ASCII, which SQLite's does not.
--
-- The server's encoding must be UTF8: SQLite text is UTF-8, length() counts characters as
-- SQLite's does only under UTF8, and SQL_ASCII would store bytes it never checked.
--
-- Unlike SQLite, PostgreSQL text cannot hold U+0000: a value with a NUL character is
-- refused when it is bound, before any constraint here sees it.
--
-- CHECK translations: length() counts characters in both. `x NOT GLOB '*[^set]*'` is
-- `x !~ '[^set]'`; the timestamp GLOB is an anchored regular expression; json_valid(x) is a
-- cast to json (PostgreSQL 15 has no predicate for it: `IS JSON` arrives in 16), so invalid
-- JSON fails with "invalid input syntax for type json" instead of a CHECK violation;
-- json_type(x) = 'array' is json_typeof(x::json) = 'array'. json, not jsonb: jsonb refuses
-- the escape \u0000, which a valid request body may carry and SQLite's json_valid accepts.

DO $$
BEGIN
    IF current_setting('server_encoding') <> 'UTF8' THEN
        RAISE EXCEPTION 'gitops-status needs a UTF8 database, this one is %',
            current_setting('server_encoding');
    END IF;
END
$$;

-- The audit trail, append-only (migrations/0001 and 0003).
--
-- id is given by the writer, not by a sequence: it is the chain's order, and the writer
-- links each row to the hash of the one before it before the row is inserted
-- (src/store/append.rs). What SQLite's AUTOINCREMENT adds is the high-water mark in
-- sqlite_sequence, which the writer continues from so that no id is ever used twice, even
-- after retention deleted the newest rows; reports_sequence below keeps it.
CREATE TABLE reports (
    id                 BIGINT  PRIMARY KEY,
    received_at        TEXT    COLLATE "C" NOT NULL,
    kind               TEXT    COLLATE "C" NOT NULL
                               CHECK (kind IN ('pipeline', 'cron', 'legacy',
                                               'decommission', 'import', 'retention')),
    -- NULL only for rows that belong to no host (retention).
    server_group       TEXT    COLLATE "C"
                               CHECK (server_group IS NULL
                                      OR (length(server_group) BETWEEN 1 AND 128
                                          AND server_group !~ '[^A-Za-z0-9._-]')),
    host               TEXT    COLLATE "C"
                               CHECK (host IS NULL
                                      OR (length(host) BETWEEN 1 AND 128
                                          AND host !~ '[^A-Za-z0-9._-]')),
    status             TEXT    COLLATE "C"
                               CHECK (status IN ('synced', 'out_of_sync', 'failed', 'unknown')),
    -- JSON array of strings; NULL when the report did not carry the field.
    changed_files      TEXT    COLLATE "C"
                               CHECK (changed_files IS NULL
                                      OR json_typeof(changed_files::json) = 'array'),
    project_name       TEXT    COLLATE "C",
    repo_name          TEXT    COLLATE "C",
    server_type        TEXT    COLLATE "C",
    environment        TEXT    COLLATE "C",
    validation_status  TEXT    COLLATE "C",
    validation_message TEXT    COLLATE "C",
    commit_sha         TEXT    COLLATE "C",
    branch             TEXT    COLLATE "C",
    updated_by         TEXT    COLLATE "C",
    -- The client's own times, as sent (normalised to UTC); NULL when not sent.
    last_pipeline_run  TEXT    COLLATE "C",
    last_cron_check    TEXT    COLLATE "C",
    drift_count        BIGINT  CHECK (drift_count IS NULL OR drift_count >= 0),
    -- The report's own time, or received_at when the client sent none: the ordering key.
    observed_at        TEXT    COLLATE "C" NOT NULL,
    principal          TEXT    COLLATE "C",
    client_addr        TEXT    COLLATE "C",
    forwarded_for      TEXT    COLLATE "C",
    user_agent         TEXT    COLLATE "C",
    -- The request body exactly as received; for decommission, import and retention rows the
    -- event's own description.
    raw_body           TEXT    COLLATE "C" NOT NULL CHECK (raw_body::json IS NOT NULL),
    prev_hash          TEXT    COLLATE "C" NOT NULL
                               CHECK (length(prev_hash) = 64 AND prev_hash !~ '[^0-9a-f]'),
    hash               TEXT    COLLATE "C" NOT NULL
                               CHECK (length(hash) = 64 AND hash !~ '[^0-9a-f]'),
    -- Retention's tier: 1 for a change, 0 for a routine report.
    is_change          BIGINT  NOT NULL DEFAULT 1 CHECK (is_change IN (0, 1)),
    -- Which canonical text `hash` covers (SQLite's migration 0006; src/store/record.rs).
    chain_format       BIGINT  NOT NULL DEFAULT 1 CHECK (chain_format >= 1),
    -- Named, unlike SQLite's: PostgreSQL's error names the constraint, not its expression.
    CONSTRAINT reports_received_at_format CHECK (
        received_at ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[.][0-9]{3}Z$'),
    CONSTRAINT reports_observed_at_format CHECK (
        observed_at ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[.][0-9]{3}Z$'),
    CONSTRAINT reports_last_pipeline_run_format CHECK (last_pipeline_run IS NULL
        OR last_pipeline_run ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[.][0-9]{3}Z$'),
    CONSTRAINT reports_last_cron_check_format CHECK (last_cron_check IS NULL
        OR last_cron_check ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[.][0-9]{3}Z$'),
    -- What each kind may carry.
    CONSTRAINT reports_hostless_only_retention_group CHECK (
        (kind = 'retention') = (server_group IS NULL)),
    CONSTRAINT reports_hostless_only_retention_host CHECK (
        (kind = 'retention') = (host IS NULL)),
    CONSTRAINT reports_kind_needs_status CHECK (
        kind IN ('cron', 'decommission', 'retention') OR status IS NOT NULL),
    CONSTRAINT reports_kind_carries_no_state CHECK (
        kind NOT IN ('decommission', 'retention')
        OR (status IS NULL AND changed_files IS NULL AND last_cron_check IS NULL)),
    CONSTRAINT reports_kind_carries_deployment CHECK (
        kind IN ('pipeline', 'import')
        OR (project_name IS NULL AND repo_name IS NULL
            AND server_type IS NULL AND environment IS NULL
            AND validation_status IS NULL AND validation_message IS NULL
            AND commit_sha IS NULL AND branch IS NULL AND updated_by IS NULL
            AND last_pipeline_run IS NULL)),
    CONSTRAINT reports_kind_carries_drift_count CHECK (
        kind IN ('legacy', 'import') OR drift_count IS NULL),
    CONSTRAINT reports_pipeline_has_no_cron_check CHECK (
        kind <> 'pipeline' OR last_cron_check IS NULL),
    CONSTRAINT reports_kind_is_change CHECK (
        kind IN ('cron', 'legacy') OR is_change = 1)
);

CREATE INDEX reports_by_host ON reports (server_group, host, id);
CREATE INDEX reports_by_received_at ON reports (received_at);
CREATE INDEX reports_by_kind ON reports (kind, id);
CREATE INDEX reports_by_commit ON reports (commit_sha) WHERE commit_sha IS NOT NULL;

-- The highest id reports ever held (0: none yet), as sqlite_sequence keeps it for SQLite's
-- AUTOINCREMENT; the next report gets seq + 1. A table, not a PostgreSQL sequence: a sequence
-- does not roll back, so an id taken by a write that failed would leave a hole in the ids
-- that no retention row explains, and `verify` would report the chain broken.
CREATE TABLE reports_sequence (
    id                 BIGINT  PRIMARY KEY CHECK (id = 1),
    seq                BIGINT  NOT NULL CHECK (seq >= 0)
);

INSERT INTO reports_sequence (id, seq) VALUES (1, 0);

-- Moves the mark with every INSERT (and COPY) into reports, in the same transaction: once
-- per statement, so a multi-row INSERT updates it once.
CREATE FUNCTION reports_sequence_follows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE reports_sequence SET seq = greatest(seq, (SELECT max(id) FROM inserted));
    RETURN NULL;
END
$$;

CREATE TRIGGER reports_sequence_follows
AFTER INSERT ON reports
REFERENCING NEW TABLE AS inserted
FOR EACH STATEMENT EXECUTE FUNCTION reports_sequence_follows();

-- The id ranges the pruning transaction in progress may delete; empty between transactions
-- (the pruner empties it before it commits, src/store/retention.rs).
CREATE TABLE prune_permit (
    first_id           BIGINT  PRIMARY KEY,
    last_id            BIGINT  NOT NULL,
    CONSTRAINT prune_permit_range CHECK (last_id >= first_id)
);

-- Rows are never updated, and deleted only when a permit of the same transaction covers
-- them, as SQLite's triggers rule. Row triggers, like SQLite's: a statement that matches no
-- row passes. restrict_violation (23001) so the error reads as an integrity error.
CREATE FUNCTION reports_are_append_only_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'reports is append-only: rows are never updated'
        USING ERRCODE = 'restrict_violation', DETAIL = format('report %s', OLD.id);
END
$$;

CREATE TRIGGER reports_are_append_only_update
BEFORE UPDATE ON reports
FOR EACH ROW EXECUTE FUNCTION reports_are_append_only_update();

-- The permit lookup is SQLite's: the range with the greatest first_id at or below the id,
-- one index seek.
CREATE FUNCTION reports_are_append_only_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM prune_permit
        WHERE first_id = (SELECT max(first_id) FROM prune_permit WHERE first_id <= OLD.id)
          AND last_id >= OLD.id
    ) THEN
        RAISE EXCEPTION 'reports is append-only: rows are never deleted, except by retention, which records what it removes'
            USING ERRCODE = 'restrict_violation',
                  DETAIL = format('report %s is in no prune_permit range', OLD.id);
    END IF;
    RETURN OLD;
END
$$;

CREATE TRIGGER reports_are_append_only_delete
BEFORE DELETE ON reports
FOR EACH ROW EXECUTE FUNCTION reports_are_append_only_delete();

-- TRUNCATE fires no DELETE trigger in PostgreSQL (SQLite has no TRUNCATE), so it is refused
-- on its own.
CREATE FUNCTION reports_are_append_only_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'reports is append-only: it is never truncated; only retention deletes rows, and records what it removes'
        USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER reports_are_append_only_truncate
BEFORE TRUNCATE ON reports
FOR EACH STATEMENT EXECUTE FUNCTION reports_are_append_only_truncate();

-- One row per host, pointing at the reports that define its current state, with the
-- copies that filters and counts read (migrations/0001, 0002 and 0004). No foreign keys to
-- reports, as in SQLite since 0003: every DELETE of a report would check hosts once per key.
--
-- id is SQLite's rowid: nothing reads it but the index on rows still to render, and hosts
-- are inserted without one, so an identity assigns it. BY DEFAULT so that a copy of a SQLite
-- database can keep its ids. Unlike the rowid it is never reused, and every upsert takes a
-- number even when it only updates (PostgreSQL draws the default before it finds the
-- conflict): ids have gaps, which nothing minds, and BIGINT does not run out.
CREATE TABLE hosts (
    id                  BIGINT  GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    server_group        TEXT    COLLATE "C" NOT NULL,
    host                TEXT    COLLATE "C" NOT NULL,
    -- The newest report received for the host (its received_at is the host's timestamp).
    last_report_id      BIGINT  NOT NULL,
    -- The reports that define each facet (see src/domain/merge.rs for the rules).
    status_report_id    BIGINT  NOT NULL,
    files_report_id     BIGINT  NOT NULL,
    pipeline_report_id  BIGINT,
    cron_report_id      BIGINT,
    -- The host's GET /status row (migration 0002); NULL: not rendered yet.
    status_row          TEXT    COLLATE "C"
                                CHECK (status_row IS NULL
                                       OR json_typeof(status_row::json) = 'object'),
    -- Copies of the current state for filters and counts (NULL until derived).
    status              TEXT    COLLATE "C"
                                CHECK (status IS NULL
                                       OR status IN ('synced', 'out_of_sync', 'failed', 'unknown')),
    changed_files_count BIGINT  CHECK (changed_files_count IS NULL OR changed_files_count >= 0),
    environment         TEXT    COLLATE "C",
    server_type         TEXT    COLLATE "C",
    repo_name           TEXT    COLLATE "C",
    project_name        TEXT    COLLATE "C",
    branch              TEXT    COLLATE "C",
    commit_sha          TEXT    COLLATE "C",
    validation_status   TEXT    COLLATE "C",
    status_since        TEXT    COLLATE "C",
    drift_received_at   TEXT    COLLATE "C",
    commit_since        TEXT    COLLATE "C",
    UNIQUE (server_group, host)
);

CREATE INDEX hosts_without_status_row ON hosts (id) WHERE status_row IS NULL;
-- Counts by status and by commit read these instead of the rows (which hold status_row).
CREATE INDEX hosts_by_status ON hosts (server_group, status, status_since, changed_files_count,
                                       drift_received_at);
CREATE INDEX hosts_by_group_commit ON hosts (server_group, commit_sha, status);

-- One row the server rewrites to find out whether the database takes writes again after a
-- write failed; headroom holds 64 KiB (migration 0002). EXTERNAL: stored out of line and
-- never compressed, so the 64 KiB of zeros really take 64 KiB and the probe still proves
-- there is room for reports.
CREATE TABLE writer_probe (
    id                 BIGINT  PRIMARY KEY CHECK (id = 1),
    at                 TEXT    COLLATE "C" NOT NULL,
    headroom           BYTEA
);

ALTER TABLE writer_probe ALTER COLUMN headroom SET STORAGE EXTERNAL;

-- Every entry of an old server's file that was imported, by host and a hash of the entry's
-- JSON (migration 0003).
CREATE TABLE imported_entries (
    server_group       TEXT    COLLATE "C" NOT NULL,
    host               TEXT    COLLATE "C" NOT NULL,
    entry_sha256       TEXT    COLLATE "C" NOT NULL CHECK (length(entry_sha256) = 64),
    report_id          BIGINT  NOT NULL,
    PRIMARY KEY (server_group, host, entry_sha256)
);

-- One row per report that changed a host's status (migration 0004).
CREATE TABLE transitions (
    -- The report that changed the status.
    report_id            BIGINT  PRIMARY KEY,
    server_group         TEXT    COLLATE "C" NOT NULL,
    host                 TEXT    COLLATE "C" NOT NULL,
    -- NULL for a host's first report, or its first after it was decommissioned.
    from_status          TEXT    COLLATE "C"
                                 CHECK (from_status IS NULL
                                        OR from_status IN ('synced', 'out_of_sync', 'failed', 'unknown')),
    to_status            TEXT    COLLATE "C" NOT NULL
                                 CHECK (to_status IN ('synced', 'out_of_sync', 'failed', 'unknown')),
    -- The report's observation time.
    at                   TEXT    COLLATE "C" NOT NULL
                                 CHECK (at ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[.][0-9]{3}Z$'),
    kind                 TEXT    COLLATE "C" NOT NULL
                                 CHECK (kind IN ('pipeline', 'cron', 'legacy', 'import')),
    -- How long the previous status lasted, in milliseconds.
    previous_duration_ms BIGINT  CHECK (previous_duration_ms IS NULL OR previous_duration_ms >= 0),
    commit_sha           TEXT    COLLATE "C",
    changed_files_count  BIGINT  NOT NULL CHECK (changed_files_count >= 0),
    CONSTRAINT transitions_first_has_no_duration CHECK (
        (from_status IS NULL) = (previous_duration_ms IS NULL))
);

CREATE INDEX transitions_by_host ON transitions (server_group, host, report_id);
CREATE INDEX transitions_by_host_name ON transitions (host, report_id);
CREATE INDEX transitions_by_at ON transitions (at);

-- One row per (server_group, commit_sha) seen in pipeline reports (migration 0004).
CREATE TABLE commits (
    server_group   TEXT COLLATE "C" NOT NULL,
    commit_sha     TEXT COLLATE "C" NOT NULL,
    -- The branch of the newest pipeline report of the commit in the group.
    branch         TEXT COLLATE "C",
    -- When the server received the first and the newest of those reports.
    first_reported TEXT COLLATE "C" NOT NULL,
    last_reported  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (server_group, commit_sha)
);

CREATE INDEX commits_by_last_reported ON commits (last_reported);
CREATE INDEX commits_by_sha ON commits (commit_sha);

-- Work the server does once at its next start, before it serves (migration 0004). 'derive'
-- is queued as in a new SQLite database: on an empty one it finds nothing to do.
CREATE TABLE store_tasks (
    name TEXT COLLATE "C" PRIMARY KEY CHECK (name IN ('derive'))
);

INSERT INTO store_tasks (name) VALUES ('derive');

-- Idempotency-Key answers, per token principal (migration 0005). The key is printable
-- ASCII: `!-~` is the range from 0x21 to 0x7E, as in SQLite's GLOB.
CREATE TABLE idempotency_keys (
    -- The token's name; '' when the server runs without tokens.
    principal   TEXT    COLLATE "C" NOT NULL,
    key         TEXT    COLLATE "C" NOT NULL
                        CHECK (length(key) BETWEEN 1 AND 255 AND key !~ '[^!-~]'),
    -- SHA-256 (hex) of the method, the path and the body as received.
    fingerprint TEXT    COLLATE "C" NOT NULL CHECK (length(fingerprint) = 64),
    report_id   BIGINT  NOT NULL,
    -- The answer: HTTP status and JSON body.
    status      BIGINT  NOT NULL CHECK (status BETWEEN 200 AND 299),
    body        TEXT    COLLATE "C" NOT NULL CHECK (body::json IS NOT NULL),
    created_at  TEXT    COLLATE "C" NOT NULL,
    PRIMARY KEY (principal, key)
);

CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

-- One row per host: the merged fields, by primary-key lookups (migrations/0001, 0003, 0004).
-- Two differences from SQLite's text: json_array_length returns integer here, cast to
-- BIGINT like every other integer; and SQLite's two-argument min() is NULL when either
-- argument is, where least() skips NULLs, so each least() is guarded to keep SQLite's NULLs
-- (an import without a deployment time falls back to observed_at; one without a drift check
-- time has no last_cron_check).
CREATE VIEW current_status AS
SELECT
    p.project_name                                       AS project_name,
    p.repo_name                                          AS repo_name,
    h.server_group                                       AS server_group,
    p.server_type                                        AS server_type,
    p.environment                                        AS environment,
    h.host                                               AS host,
    s.status                                             AS status,
    json_array_length(coalesce(f.changed_files, '[]')::json)::bigint
                                                         AS changed_files_count,
    coalesce(f.changed_files, '[]')                      AS changed_files,
    p.validation_status                                  AS validation_status,
    p.validation_message                                 AS validation_message,
    CASE WHEN p.kind = 'import'
         THEN coalesce(CASE WHEN p.last_pipeline_run IS NOT NULL
                            THEN least(p.last_pipeline_run, p.received_at) END,
                       p.observed_at)
         ELSE p.observed_at END                          AS last_pipeline_run,
    CASE WHEN c.kind = 'import'
         THEN CASE WHEN c.last_cron_check IS NOT NULL
                   THEN least(c.last_cron_check, c.received_at) END
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
