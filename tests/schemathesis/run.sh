#!/usr/bin/env bash
# Schemathesis against the live server's own /api-docs/openapi.json: generated requests for
# every operation (valid and invalid), checking that nothing answers 5xx and that every answer
# conforms to the documented status codes, content types, headers and schemas.
#
# The server runs with a token file; requests carry an admin token (Schemathesis also sends
# none and a wrong one, and expects 401). Bounded: --max-examples per operation and a time
# budget. Usage: tests/schemathesis/run.sh BINARY SCHEMATHESIS [MAX_EXAMPLES]
set -euo pipefail
binary=$(realpath "${1:?usage: $0 BINARY SCHEMATHESIS [MAX_EXAMPLES]}")
schemathesis=$(realpath "${2:?usage: $0 BINARY SCHEMATHESIS [MAX_EXAMPLES]}")
examples=${3:-100}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
server_pid=
cleanup() {
    [[ -n $server_pid ]] && kill -KILL "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

"$binary" token new schemathesis --scope admin >"$work/new-token"
token=$(sed -n 1p "$work/new-token")
sed -n 2p "$work/new-token" >"$work/tokens"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
"$binary" serve --listen "127.0.0.1:$port" --db "$work/schemathesis.db" --tokens "$work/tokens" \
    --workers 2 --log-format json >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
    curl -fsS "$base/ready" >/dev/null 2>&1 && break
    sleep 0.1
done

cd "$work"
code=0
"$schemathesis" --config-file "$here/schemathesis.toml" run "$base/api-docs/openapi.json" \
    --checks all --max-examples "$examples" --seed 20261122 --workers 2 \
    --no-color --suppress-health-check too_slow,filter_too_much \
    -H "Authorization: Bearer $token" || code=$?
if grep -q '"status":5' "$work/server.log"; then
    echo "FAIL: the server answered 5xx:" >&2
    grep '"status":5' "$work/server.log" | head -5 >&2
    code=1
fi
kill -TERM "$server_pid" && wait "$server_pid" || code=1
server_pid=
exit "$code"
