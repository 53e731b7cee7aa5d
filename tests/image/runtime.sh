#!/usr/bin/env bash
# Runs the release binary the way the container image runs it, without a container engine:
# as UID/GID 65532 with no capabilities, on a read-only root file system (the working
# directory included), with only the data directory writable. Checks that it serves,
# persists across a restart, takes the report image's CI step, stops cleanly on SIGTERM,
# and fails clearly when asked to write outside the data directory.
#
# Needs root (for unshare and setpriv), util-linux and curl. Usage: tests/image/runtime.sh BINARY
set -euo pipefail

binary=$(realpath "${1:?usage: $0 path/to/release/gitops-status}")
uid=65532
work=$(mktemp -d)
app=$work/app          # stands in for the image's read-only file system
data=$work/data        # stands in for the /data volume
mkdir -p "$app" "$data"
install -m 0555 "$binary" "$app/gitops-status"
# Both are the image user's: only the read-only mounts stop writes outside $data.
chown "$uid:$uid" "$data" "$app"
chmod 0700 "$data"
chmod 0755 "$app" "$work"
server_pid=
cleanup() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; [[ -f $work/log ]] && sed 's/^/  server: /' "$work/log" >&2; exit 1; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port

# Starts the binary in a private mount namespace where every mount is read-only but $data
# (as an image's read-only root with one volume), as the unprivileged image user; extra
# arguments go to `gitops-status serve`.
start() {
    unshare --mount --propagation private -- /bin/sh -c '
        mount --bind "$1" "$1" || exit 97
        findmnt -rn -o TARGET | while read -r target; do
            [ "$target" = "$1" ] && continue
            mount -o remount,bind,ro "$target" 2>/dev/null || true
        done
        touch /tmp/.gitops-status-rw-probe 2>/dev/null && exit 96
        cd "$2" || exit 98
        shift 2
        exec setpriv --reuid '"$uid"' --regid '"$uid"' --clear-groups --no-new-privs \
            --inh-caps=-all --bounding-set=-all -- ./gitops-status serve "$@"
    ' sh "$data" "$app" "$@" >"$work/log" 2>&1 &
    server_pid=$!
}

wait_ready() {
    for _ in $(seq 1 300); do
        curl -fsS "$base/ready" >/dev/null 2>&1 && return 0
        kill -0 "$server_pid" 2>/dev/null || fail "server exited before it was ready"
        sleep 0.1
    done
    fail "server not ready after 30 s"
}

# Waits (at most 30 s) for the server to exit; sets exit_code.
exit_code=
wait_exit() {
    for _ in $(seq 1 300); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$server_pid" 2>/dev/null && fail "server still running after 30 s"
    exit_code=0
    wait "$server_pid" || exit_code=$?
    server_pid=
}

stop() {
    kill -TERM "$server_pid"
    wait_exit
    [[ $exit_code -eq 0 ]] || fail "exit code $exit_code after SIGTERM"
}

export GITOPS_STATUS_LISTEN=127.0.0.1:$port GITOPS_STATUS_DB=$data/gitops-status.db

echo "runtime: serving as uid $uid on a read-only root"
start
wait_ready
user=$(awk '/^Uid:/ {print $2}' "/proc/$server_pid/status")
[[ $user == "$uid" ]] || fail "server runs as uid $user"
caps=$(awk '/^CapEff:/ {print $2}' "/proc/$server_pid/status")
[[ $caps == 0000000000000000 ]] || fail "server has capabilities $caps"
code=$(curl -s -o "$work/answer" -w '%{http_code}' -X POST "$base/status/pipeline" \
    -H 'Content-Type: application/json' \
    -d '{"server_group":"rsyslog-prod","host":"rsyslog-01","status":"synced","commit_sha":"abc1234"}')
[[ $code == 201 ]] || fail "POST answered $code: $(cat "$work/answer")"
stop
[[ -f $data/gitops-status.db ]] || fail "no database in the data directory"
[[ ! -e $data/gitops-status.db-wal ]] || fail "WAL left behind after SIGTERM"
[[ -z $(ls -A "$app" | grep -v '^gitops-status$') ]] || fail "something was written to the working directory"

echo "runtime: restart keeps the state"
start
wait_ready
state=$(curl -fsS "$base/status/rsyslog-prod/rsyslog-01")
[[ $state == *'"commit_sha":"abc1234"'* ]] || fail "state lost across restart: $state"
rows=$(curl -fsS "$base/history" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[[ $rows == 1 ]] || fail "history has $rows rows after restart"

echo "runtime: the report image's CI step, as Woodpecker runs it (settings as PLUGIN_*)"
step_code=0
PLUGIN_URL=$base PLUGIN_SERVER_GROUP=rsyslog-prod PLUGIN_HOST=rsyslog-02 PLUGIN_STATUS=synced \
CI=woodpecker CI_COMMIT_SHA=def5678 CI_PIPELINE_URL=https://ci.example.com/repos/7/pipeline/8 \
unshare --mount --propagation private -- /bin/sh -c '
    findmnt -rn -o TARGET | while read -r target; do
        mount -o remount,bind,ro "$target" 2>/dev/null || true
    done
    cd "$1" || exit 98
    exec setpriv --reuid '"$uid"' --regid '"$uid"' --clear-groups --no-new-privs \
        --inh-caps=-all --bounding-set=-all -- ./gitops-status report --plugin
' sh "$app" >"$work/step" 2>&1 || step_code=$?
[[ $step_code == 0 ]] || fail "the report step exited $step_code: $(cat "$work/step")"
grep -q '^accepted pipeline report_id=2 host=rsyslog-prod/rsyslog-02 ' "$work/step" \
    || fail "the report step said: $(cat "$work/step")"
state=$(curl -fsS "$base/status/rsyslog-prod/rsyslog-02")
[[ $state == *'"commit_sha":"def5678"'* ]] || fail "the step's report is not stored: $state"
stop

echo "runtime: a database outside the data directory is refused clearly"
# /tmp is world-writable on the host; only the read-only root stops the write.
elsewhere=/tmp/gitops-status-runtime-$$
for db in relative/gitops-status.db "$elsewhere/gitops-status.db" /dev/shm/gitops-status.db; do
    start --db "$db"
    wait_exit
    [[ $exit_code -ne 0 ]] || fail "started with its database at $db, outside the data directory"
    grep -q -e "cannot create the folder" -e "cannot open the database" "$work/log" \
        || fail "unclear start-up error for $db"
    [[ ! -e $elsewhere && ! -e /dev/shm/gitops-status.db && ! -e $app/relative ]] \
        || fail "wrote outside the data directory"
done

echo "runtime: ok"
