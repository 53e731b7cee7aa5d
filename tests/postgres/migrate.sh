#!/usr/bin/env bash
# migrate-db on a large generated history: bench-fill writes ROWS reports (default 1,000,000)
# over 10,000 hosts into a SQLite file, migrate-db copies it into a throwaway PostgreSQL
# server's database and verifies the chain there, and a server on each serves the same
# GET /status. Prints how long the copy and the verify took.
# Usage: tests/postgres/migrate.sh BINARY [ROWS]   (BINARY built with --features bench)
set -euo pipefail
[[ $# -ge 1 ]] || { echo "usage: $0 BINARY [ROWS]" >&2; exit 2; }
binary=$(realpath "$1")
rows=${2:-1000000}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
chmod 711 "$work"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    [[ -f $work/pg/pid ]] && bash "$here/server.sh" stop "$work/pg" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

started=$(date +%s%N)
"$binary" bench-fill --db "$work/source.db" --hosts 10000 --rows "$rows" >/dev/null
echo "bench-fill: $rows rows in $(( ($(date +%s%N) - started) / 1000000 )) ms ($(du -h "$work/source.db" | cut -f1))"

url=$(bash "$here/server.sh" start "$work/pg")
psql "$url" --quiet -c "CREATE DATABASE migrated" >/dev/null
target=${url%/*}/migrated

started=$(date +%s%N)
out=$("$binary" migrate-db --from "$work/source.db" --to "$target") || fail "migrate-db: $out"
echo "$out" | sed "s#${url%/*}#postgres://…#"
echo "migrate-db and its verify: $(( ($(date +%s%N) - started) / 1000000 )) ms"
[[ $out == *"reports $rows,"* ]] || fail "not every report was copied"
[[ $out == *"on PostgreSQL, verified $rows rows"* ]] || fail "the copy does not verify"

# The same fleet from a server on each database (at the same moment: staleness moves).
serve() {
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$binary" serve --listen "127.0.0.1:$port" --db "$1" --retain-reports off \
        >"$work/serve-$port.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 600); do
        curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && { echo "$port"; return; }
        sleep 0.1
    done
    fail "the server on $1 did not get ready: $(tail -5 "$work/serve-$port.log")"
}
sqlite_port=$(serve "$work/source.db")
postgres_port=$(serve "$target")
curl -fsS "http://127.0.0.1:$sqlite_port/status" >"$work/sqlite.json"
curl -fsS "http://127.0.0.1:$postgres_port/status" >"$work/postgres.json"
python3 - "$work/sqlite.json" "$work/postgres.json" <<'EOF' || fail "the two servers' GET /status differ"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
# report_due_by and stale depend on the moment each was asked; the hosts' rows otherwise not.
strip = lambda rows: [{k: v for k, v in r.items() if k not in ("stale",)} for r in rows]
assert len(a) == len(b) == 10000, (len(a), len(b))
assert strip(a) == strip(b)
print(f"GET /status: the same {len(a)} hosts from SQLite and from PostgreSQL")
EOF
