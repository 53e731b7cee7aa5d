#!/usr/bin/env bash
# The PostgreSQL schema (migrations/postgres/*.sql), checked on a throwaway server
# (tests/postgres/server.sh, Debian's postgresql package; .ci/run installs it, this script
# installs nothing): the migrations apply in order, each in one transaction as sqlx runs
# them, over a password login on TCP; valid reports go in and the id high-water mark follows
# them, transactionally; UPDATE, DELETE and TRUNCATE of reports are refused with their
# messages, and a DELETE passes only inside a prune_permit range; CHECKs refuse a bad host,
# time and body; current_status shows what SQLite's view shows; text without NUL comes back
# byte for byte, and NUL is refused.
# Usage: tests/postgres/schema.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

work=$(mktemp -d)
# Searchable, so that the server's own user (postgres, when this runs as root) reaches DIR.
chmod 711 "$work"
cleanup() {
    if [[ -f $work/pg/pid ]]; then
        bash tests/postgres/server.sh stop "$work/pg" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

url=$(bash tests/postgres/server.sh start "$work/pg")
export PGCLIENTENCODING=UTF8 PGCONNECT_TIMEOUT=10
sql() { psql "$url" --no-psqlrc --quiet --no-align --tuples-only --set=ON_ERROR_STOP=1 "$@"; }

# Statements that must fail with `message` (and SQLSTATE `state`, when given).
refused() {
    local message=$1 state=$2 statements=$3 err
    if err=$(sql --set=VERBOSITY=verbose --command="$statements" 2>&1); then
        fail "accepted, should have been refused ($message): $statements"
    fi
    [[ $err == *"$message"* ]] || fail "refused with another error than \"$message\": $err"
    [[ -z $state || $err == *"ERROR:  $state:"* ]] || fail "refused with another SQLSTATE than $state: $err"
}
same() { [[ $1 == "$2" ]] || fail "$3: got [$1], expected [$2]"; }

migrations=(migrations/postgres/*.sql)
[[ -e ${migrations[0]} ]] || fail "no migrations/postgres/*.sql"
for file in "${migrations[@]}"; do
    sql --single-transaction --file="$file" || fail "$file did not apply"
done

# Rows the way the writer inserts them: every column named, the id given.
columns="id, received_at, kind, server_group, host, status, changed_files, project_name,
    repo_name, server_type, environment, validation_status, validation_message, commit_sha,
    branch, updated_by, last_pipeline_run, last_cron_check, drift_count, observed_at,
    principal, client_addr, forwarded_for, user_agent, raw_body, prev_hash, hash, is_change"
h0=$(printf '0%.0s' {1..64})
h1=$(printf 'a%.0s' {1..64})
h2=$(printf 'b%.0s' {1..64})
h3=$(printf 'c%.0s' {1..64})
sql <<EOF || fail "valid reports were refused"
INSERT INTO reports ($columns) VALUES
  (1, '2026-04-26T10:30:00.000Z', 'pipeline', 'web', 'web-01', 'synced', '["a.conf"]',
   'site', 'site-repo', 'nginx', 'prod', 'ok', 'fine', 'abc123', 'main', 'ci',
   '2026-04-26T10:29:00.000Z', NULL, NULL, '2026-04-26T10:29:00.000Z',
   'ci-token', '127.0.0.1', NULL, 'curl/8.5.0', '{"server_group":"web"}', '$h0', '$h1', 1),
  (2, '2026-04-26T10:31:00.000Z', 'cron', 'web', 'web-01', 'out_of_sync', '["a.conf","b.conf"]',
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, '2026-04-26T10:30:30.000Z', NULL, '2026-04-26T10:30:30.000Z',
   NULL, '127.0.0.1', '10.0.0.1', 'gitops-status', '{"status":"out_of_sync"}', '$h1', '$h2', 1);
INSERT INTO reports ($columns) VALUES
  (3, '2026-04-26T10:32:00.000Z', 'import', 'web', 'web-02', 'synced', '[]',
   'site', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, 7, '2026-04-26T10:31:30.000Z',
   'import', NULL, NULL, NULL, '{"escaped":"\u0000"}', '$h2', '$h3', 1);
INSERT INTO hosts (server_group, host, last_report_id, status_report_id, files_report_id,
                   pipeline_report_id, cron_report_id, status_row)
VALUES ('web', 'web-01', 2, 2, 2, 1, 2, '{"host":"web-01"}'),
       ('web', 'web-02', 3, 3, 3, 3, 3, NULL);
EOF
same "$(sql --command='SELECT seq FROM reports_sequence')" 3 "the id high-water mark"

refused 'reports is append-only: rows are never updated' 23001 \
    "UPDATE reports SET status = 'failed' WHERE id = 1"
refused 'reports is append-only: rows are never deleted, except by retention' 23001 \
    'DELETE FROM reports WHERE id = 1'
refused 'reports is append-only: it is never truncated' 23001 'TRUNCATE reports'
# A permit lets through its own range and no other row.
refused 'reports is append-only: rows are never deleted, except by retention' 23001 \
    'BEGIN; INSERT INTO prune_permit VALUES (1, 1); DELETE FROM reports WHERE id IN (1, 2)'
same "$(sql --command='SELECT count(*) FROM reports') $(sql --command='SELECT count(*) FROM prune_permit')" \
    "3 0" "rows and permits after the refused DELETE"
sql <<'EOF' || fail "retention's DELETE, inside its permit, was refused"
BEGIN;
INSERT INTO prune_permit (first_id, last_id) VALUES (1, 1);
DELETE FROM reports WHERE id = 1;
DELETE FROM prune_permit;
COMMIT;
EOF
refused 'reports is append-only: rows are never deleted, except by retention' 23001 \
    'DELETE FROM reports WHERE id = 2'

# The mark stays at the highest id ever held, and rolls back with its transaction.
sql --command="BEGIN; INSERT INTO reports ($columns) SELECT 4, received_at, kind, server_group,
    host, status, changed_files, project_name, repo_name, server_type, environment,
    validation_status, validation_message, commit_sha, branch, updated_by, last_pipeline_run,
    last_cron_check, drift_count, observed_at, principal, client_addr, forwarded_for,
    user_agent, raw_body, '$h3', '$h0', 0 FROM reports WHERE id = 2; ROLLBACK" \
    || fail "the INSERT that was to be rolled back failed"
same "$(sql --command='SELECT seq FROM reports_sequence')" 3 "the mark after a delete and a rollback"

refused 'violates check constraint "reports_host_check"' 23514 \
    "INSERT INTO reports ($columns) SELECT 9, received_at, kind, server_group, 'web/01', status,
     changed_files, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, last_cron_check,
     NULL, observed_at, NULL, NULL, NULL, NULL, raw_body, prev_hash, hash, 1
     FROM reports WHERE id = 2"
refused 'violates check constraint "reports_received_at_format"' 23514 \
    "INSERT INTO reports ($columns) SELECT 9, '2026-04-26 10:31:00.000Z', kind, server_group,
     host, status, changed_files, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     last_cron_check, NULL, observed_at, NULL, NULL, NULL, NULL, raw_body, prev_hash, hash, 1
     FROM reports WHERE id = 2"
refused 'invalid input syntax for type json' 22P02 \
    "INSERT INTO reports ($columns) SELECT 9, received_at, kind, server_group, host, status,
     changed_files, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, last_cron_check,
     NULL, observed_at, NULL, NULL, NULL, NULL, '{\"status\":', prev_hash, hash, 1
     FROM reports WHERE id = 2"
refused 'violates check constraint "reports_changed_files_check"' 23514 \
    "INSERT INTO reports ($columns) SELECT 9, received_at, kind, server_group, host, status,
     '{\"a.conf\":1}', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     last_cron_check, NULL, observed_at, NULL, NULL, NULL, NULL, raw_body, prev_hash, hash, 1
     FROM reports WHERE id = 2"

# web-01: its pipeline report (id 1) is gone from reports, so the LEFT JOIN finds nothing;
# web-02: an import without a deployment time or a drift check time, where SQLite's min()
# is NULL and least() is not: last_pipeline_run falls back to observed_at, last_cron_check
# stays NULL.
same "$(sql --field-separator=' ' --command='SELECT host, status, changed_files_count,
        changed_files, coalesce(project_name, '\''-'\''), coalesce(last_pipeline_run, '\''-'\''),
        last_cron_check, timestamp, reported_drift_count, status_since
        FROM current_status ORDER BY host')" \
    "web-01 out_of_sync 2 [\"a.conf\",\"b.conf\"] - - 2026-04-26T10:30:30.000Z 2026-04-26T10:31:00.000Z  2026-04-26T10:30:30.000Z
web-02 synced 0 [] site 2026-04-26T10:31:30.000Z  2026-04-26T10:32:00.000Z 7 2026-04-26T10:31:30.000Z" \
    "current_status"
same "$(sql --command="SELECT string_agg(format_type(atttypid, atttypmod), ' ' ORDER BY attnum)
        FROM pg_attribute WHERE attrelid = 'current_status'::regclass
        AND attname IN ('changed_files_count', 'reported_drift_count', 'last_report_id')")" \
    "bigint bigint bigint" "the view's integer types"

# Every character but NUL, as a client may send it (ASCII controls, quotes, backslash,
# two-, three- and four-byte UTF-8, a combining accent, U+2028, U+FEFF, U+FFFF, a newline
# at the end), stored through the extended protocol's text and read back as bytes.
text=""
for ((byte = 1; byte < 128; byte++)); do
    printf -v char %b "\\x$(printf %02x "$byte")"
    text+=$char
done
text+=$'é漢𝄞e\u0301\u2028\uFEFF\uFFFF\n'
hex_sent=$(printf %s "$text" | od -An -v -tx1 | tr -d ' \n')
sql --set=text="$text" <<EOF || fail "the text did not go in"
INSERT INTO reports ($columns) SELECT 4, received_at, 'pipeline', server_group, host, 'synced',
    NULL, :'text', NULL, NULL, NULL, NULL, :'text', NULL, NULL, NULL, NULL, NULL, NULL,
    observed_at, NULL, NULL, NULL, NULL, raw_body, hash, '$h0', 1 FROM reports WHERE id = 3;
EOF
same "$(sql --command="SELECT encode(convert_to(validation_message, 'UTF8'), 'hex')
        FROM reports WHERE id = 4")" "$hex_sent" "the text read back"
same "$(sql --command="SELECT project_name = validation_message FROM reports WHERE id = 4")" t \
    "the two copies of the text"
same "$(sql --command='SELECT seq FROM reports_sequence')" 4 "the mark after an INSERT"
refused 'null character not permitted' 54000 \
    "SELECT chr(0)"
refused 'invalid byte sequence for encoding "UTF8": 0x00' 22021 \
    "SELECT convert_from('\\x6100'::bytea, 'UTF8')"

echo "postgres schema: ok"
