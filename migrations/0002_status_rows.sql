-- Each host's row of GET /status, materialised.
--
-- hosts.status_row is the host's current state exactly as GET /status shows it (one JSON
-- object), written by the server in the same transaction that moves the host's report
-- pointers, from the same reports the current_status view joins. GET /status concatenates
-- these rows instead of joining five reports per host and rendering them on every request,
-- so its cost depends on the number of hosts, never on the length of the history.
--
-- It is derived data: `gitops-status verify` re-renders every row from current_status and
-- names a host whose row differs. NULL means "not rendered yet": the server renders such rows
-- at start-up (databases from before this migration; a later migration that changes the row
-- format sets them all to NULL).

ALTER TABLE hosts ADD COLUMN status_row TEXT
    CHECK (status_row IS NULL OR (json_valid(status_row) AND json_type(status_row) = 'object'));

-- Finds the rows still to render without scanning hosts at every start.
CREATE INDEX hosts_without_status_row ON hosts (id) WHERE status_row IS NULL;

-- The readiness probe (after a write failed) rewrites writer_probe with 64 KiB here, so /ready
-- turns ready again only when there is room for reports, not as soon as the last free page of
-- a full disk takes one small row.
ALTER TABLE writer_probe ADD COLUMN headroom BLOB;
