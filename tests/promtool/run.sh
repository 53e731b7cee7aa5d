#!/usr/bin/env bash
# What Prometheus will read, checked with promtool (Debian's prometheus package, 2.42;
# .ci/run installs it, this script installs nothing):
# - a live server's GET /metrics, after accepted, refused and unknown-host reports, passes
#   `promtool check metrics`, lint included;
# - the chart's PrometheusRule, rendered by charts/check.py --write-rules, passes
#   `promtool check rules`, and the unit tests in alerts.test.yaml run against it.
# Needs curl, python3, promtool and the CI venv (target/ci-venv, for helm-python).
# Usage: tests/promtool/run.sh BINARY
set -euo pipefail

binary=$(realpath "${1:?usage: $0 path/to/gitops-status}")
cd "$(dirname "$0")/../.."
venv_python=target/ci-venv/bin/python

work=$(mktemp -d)
server_pid=
cleanup() {
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [[ -f $work/log ]] && tail -20 "$work/log" | sed 's/^/  server: /' >&2; exit 1; }

command -v promtool >/dev/null || fail "promtool not found (Debian: apt-get install prometheus)"
[[ -x $venv_python ]] || fail "$venv_python not found: create the CI venv (.ci/run does)"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
"$binary" serve --listen "127.0.0.1:$port" --db "$work/x.db" --workers 2 >"$work/log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
    curl -fsS "$base/ready" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || fail "server exited"
    sleep 0.1
done
curl -fsS "$base/ready" >/dev/null || fail "server not ready"

# post PATH JSON STATUS_PATTERN: so that every family of /metrics has series, refusals too.
post() {
    local code
    code=$(curl -s -o "$work/answer" -w '%{http_code}' -X POST "$base$1" \
        -H 'Content-Type: application/json' -d "$2")
    # shellcheck disable=SC2053 # $3 is a glob pattern
    [[ $code == $3 ]] || fail "POST $1 $2 answered $code, expected $3: $(cat "$work/answer")"
}
post /status/pipeline '{"server_group":"rsyslog-prod","host":"rsyslog-01","status":"synced"}' '2??'
post /status/pipeline '{"server_group":"rsyslog-prod","host":"rsyslog-02","status":"failed"}' '2??'
post /status/cron '{"server_group":"rsyslog-prod","host":"rsyslog-01","status":"out_of_sync","changed_files":["/etc/rsyslog.conf"]}' '2??'
post /status/pipeline '{"server_group":"rsyslog-prod","host":"rsyslog-03","status":"sideways"}' 422
post /status/cron '{"server_group":"rsyslog-prod","host":"rsyslog-99","status":"synced","changed_files":[]}' 404

curl -fsS "$base/metrics" >"$work/metrics" || fail "GET /metrics"
for needle in \
    'gitops_status_host_status{host="rsyslog-01",server_group="rsyslog-prod",status="out_of_sync"} 1' \
    'gitops_status_host_status{host="rsyslog-02",server_group="rsyslog-prod",status="failed"} 1' \
    'gitops_status_reports_refused_total{reason="validation"} 1' \
    'gitops_status_reports_refused_total{reason="not_found"} 1' \
    'gitops_status_ready 1'; do
    grep -qF "$needle" "$work/metrics" || fail "/metrics lacks: $needle"
done
# promtool prints lint problems and exits non-zero on them.
promtool check metrics <"$work/metrics" || fail "promtool check metrics: /metrics has problems (above)"
echo "promtool: /metrics passes check metrics ($(grep -c '^[a-z]' "$work/metrics") samples)"

"$venv_python" charts/check.py --write-rules "$work/rules.yaml"
promtool check rules "$work/rules.yaml" || fail "promtool check rules"
cp tests/promtool/alerts.test.yaml "$work/"
promtool test rules "$work/alerts.test.yaml" || fail "promtool test rules tests/promtool/alerts.test.yaml"
echo "promtool: ok"
