#!/usr/bin/env bash
# The README's psql recipe for the audit chain computes, from rows stored in PostgreSQL, the
# hash the server computed: reports with quotes, backslashes, control characters, non-ASCII
# text and NULLs are written through the API (SQLite), copied row for row into the PostgreSQL
# schema, and each row's hash is recomputed there with the recipe exactly as the README
# prints it. Needs Debian's postgresql (tests/postgres/server.sh), python3, curl.
# Usage: tests/postgres/recipe.sh path/to/gitops-status
set -euo pipefail
binary=$(realpath "${1:?usage: $0 path/to/gitops-status}")
cd "$(dirname "$0")/../.."

work=$(mktemp -d)
chmod 711 "$work"
server_pid=
cleanup() {
    [[ -n $server_pid ]] && kill -KILL "$server_pid" 2>/dev/null
    [[ -f $work/pg/pid ]] && bash tests/postgres/server.sh stop "$work/pg" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# Reports through the API, into SQLite.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$binary" serve --listen "127.0.0.1:$port" --db "$work/sqlite.db" >"$work/log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break; sleep 0.1; done
python3 - "http://127.0.0.1:$port" <<'PY'
import json, sys, urllib.error, urllib.request
base = sys.argv[1]
def post(path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", "User-Agent": "recipe \"test\" \u00e9"})
    try:
        urllib.request.urlopen(req).close()
    except urllib.error.HTTPError as err:
        sys.exit(f"{path} answered {err.code}: {err.read().decode()}")
every = "".join(chr(c) for c in range(1, 0x80)) + "\u00e9\u2028\u20ac\U0001f600"
post("/status/pipeline", {"server_group": "g", "host": "h1", "status": "synced",
                          "validation_message": every, "commit_sha": "abc", "branch": "a'b\\c",
                          "changed_files": ["/etc/\"q\"", "tab\there", "line\nfeed"]})
post("/status/cron", {"server_group": "g", "host": "h1", "status": "out_of_sync",
                      "changed_files": ["/etc/x"], "extra": {"nested": [1, 2.5, None]}})
post("/api/status", {"repo": "g", "server": "h2", "sync_status": "SYNCED", "drift_count": 3})
PY
kill -TERM "$server_pid"
wait "$server_pid" || fail "the server exited with $? after SIGTERM"
server_pid=

# The same rows in PostgreSQL, column for column (the schemas list them in the same order).
url=$(bash tests/postgres/server.sh start "$work/pg")
export PGCLIENTENCODING=UTF8 PGCONNECT_TIMEOUT=10
for migration in migrations/postgres/*.sql; do
    psql "$url" --no-psqlrc --quiet --set=ON_ERROR_STOP=1 --single-transaction --file="$migration" >/dev/null
done
python3 - "$work/sqlite.db" >"$work/rows.sql" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
cursor = db.execute("SELECT * FROM reports ORDER BY id")
names = [d[0] for d in cursor.description]
def literal(value):
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"
for row in cursor:
    print(f"INSERT INTO reports ({', '.join(names)}) VALUES ({', '.join(map(literal, row))});")
PY
psql "$url" --no-psqlrc --quiet --set=ON_ERROR_STOP=1 --file="$work/rows.sql" >/dev/null
rows=$(psql "$url" -Atc "SELECT count(*) FROM reports")
[[ $rows == 3 ]] || fail "expected 3 rows in PostgreSQL, found $rows"

# The recipe, as the README prints it.
recipe=$(sed -n '/<!-- auditor-recipe-psql:start -->/,/<!-- auditor-recipe-psql:end -->/p' README.md \
    | grep -v '^<!--' | grep -v '^```')
[[ -n $recipe ]] || fail "the README has no psql recipe"
for id in 1 2 3; do
    script=${recipe/id=42/id=$id}
    script=${script/url=postgres:\/\/auditor@db.example\/gitops_status/url=$url}
    mapfile -t lines < <(bash -c "$script")
    [[ ${#lines[@]} == 2 ]] || fail "row $id: expected two lines, got: ${lines[*]}"
    [[ ${lines[0]} == "${lines[1]}" ]] || fail "row $id: stored hash ${lines[0]}, recomputed ${lines[1]}"
done
echo "postgres recipe: ok (3 rows)"
