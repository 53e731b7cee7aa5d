#!/usr/bin/env bash
# bench/run's pieces that can rot unseen: the bench-fill generator (built with --features
# bench) fills a database and extends it, the result passes `verify` and serves the generated
# hosts, and bench/bench.py compiles. Usage: tests/bench/fill.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 -m py_compile bench/bench.py
SQLX_OFFLINE=true cargo build --locked --release --features bench --bin gitops-status
binary=target/release/gitops-status
work=$(mktemp -d)
server_pid=
cleanup() {
    [[ -n $server_pid ]] && kill -KILL "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$binary" bench-fill --db "$work/fill.db" --hosts 50 --rows 2000
"$binary" bench-fill --db "$work/fill.db" --hosts 50 --rows 5000
out=$("$binary" verify --db "$work/fill.db") || fail "verify: $out"
[[ $out == "verified 5000 rows (ids 1..5000), 0 rows removed by retention; chain head "*"; 50 host rows match their reports; "*" transitions match their reports" ]] \
    || fail "unexpected: $out"
echo "bench-fill: $out"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$binary" serve --listen "127.0.0.1:$port" --db "$work/fill.db" --retain-reports off >"$work/log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
    sleep 0.1
done
hosts=$(curl -fsS "http://127.0.0.1:$port/status" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')
[[ $hosts == 50 ]] || fail "GET /status lists $hosts hosts, not 50"
history=$(curl -fsS "http://127.0.0.1:$port/status/group-03/host-00013/history?limit=1000" \
    | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')
[[ $history == 100 ]] || fail "host-00013 has $history reports, not 100"
kill -TERM "$server_pid"
wait "$server_pid" || fail "exit code $? after SIGTERM"
server_pid=
echo "bench-fill: ok"
