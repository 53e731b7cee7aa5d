#!/usr/bin/env bash
# The database's disk fills up under the running server, then space returns:
# - writes answer 503 with a JSON error saying why, and store nothing;
# - /ready answers 503 while reads keep working;
# - with the disk full and the write queue full too, /ready still answers within its
#   probe's timeout, with the reason;
# - once space is back, /ready and writes recover without a restart;
# - the file passes integrity_check and the audit chain verifies.
#
# The data directory is a 2 MiB tmpfs in a private mount namespace. Needs root (unshare,
# mount), util-linux, curl and python3. Usage: tests/faults/disk-full.sh BINARY
set -euo pipefail

if [[ ${1:-} != --inside ]]; then
    binary=$(realpath "${1:?usage: $0 path/to/gitops-status}")
    exec unshare --mount --propagation private -- "$0" --inside "$binary"
fi
binary=$2
work=$(mktemp -d)
data=$work/data
mkdir -p "$data"
mount -t tmpfs -o size=2m tmpfs "$data"
server_pid=
cleanup() {
    [[ -n $server_pid ]] && kill -KILL "$server_pid" 2>/dev/null
    umount "$data" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [[ -f $work/log ]] && tail -20 "$work/log" | sed 's/^/  server: /' >&2; exit 1; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
"$binary" serve --listen "127.0.0.1:$port" --db "$data/gitops-status.db" --workers 2 --write-queue 2 >"$work/log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
    curl -fsS "$base/ready" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || fail "server exited"
    sleep 0.1
done
curl -fsS "$base/ready" >/dev/null || fail "server not ready"

# Leave the database little room: a filler takes most of the file system.
dd if=/dev/zero of="$data/filler" bs=64k count=20 status=none

# ~24 KiB reports until the disk is full (bounded).
files=$(python3 -c 'import json; print(json.dumps(["/etc/app/%04d/%s" % (i, "x" * 100) for i in range(200)]))')
accepted=0
full_answer=
for i in $(seq 1 400); do
    code=$(curl -s -o "$work/answer" -w '%{http_code}' -X POST "$base/status/pipeline" \
        -H 'Content-Type: application/json' \
        -d "{\"server_group\":\"g\",\"host\":\"h$((i % 7))\",\"status\":\"out_of_sync\",\"changed_files\":$files}")
    case $code in
        200|201) accepted=$((accepted + 1)) ;;
        503) full_answer=$(cat "$work/answer"); break ;;
        *) fail "POST answered $code: $(cat "$work/answer")" ;;
    esac
done
[[ -n $full_answer ]] || fail "the disk never filled up"
echo "disk-full: $accepted reports accepted, then: $full_answer"
[[ $full_answer == *'"success":false'* && $full_answer == *'disk is full'* ]] \
    || fail "unclear 503: $full_answer"

# Still full: more writes are refused, readiness says so, reads work.
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$base/status/pipeline" \
    -H 'Content-Type: application/json' -d "{\"server_group\":\"g\",\"host\":\"h1\",\"status\":\"synced\",\"changed_files\":$files}")
[[ $code == 503 ]] || fail "a write on a full disk answered $code"
ready=$(curl -s -w ' %{http_code}' "$base/ready")
[[ $ready == *'disk is full'*' 503' ]] || fail "/ready while full: $ready"
[[ $(curl -s -o /dev/null -w '%{http_code}' "$base/status") == 200 ]] || fail "GET /status while full"
[[ $(curl -s -o /dev/null -w '%{http_code}' "$base/history?limit=5") == 200 ]] || fail "GET /history while full"
[[ $(curl -s -o /dev/null -w '%{http_code}' "$base/health") == 200 ]] || fail "GET /health while full"

# Still full, and the write queue full as well: an operator's sqlite3 holds the write lock,
# so the writer waits in BEGIN (5 s busy timeout per group) with the reports it took, and
# reports sent meanwhile fill the queue (2). The write probe cannot be queued; /ready must say
# so at once instead of waiting for room. Each failed group lets the writer take the queue
# again, so reports keep coming until /ready is seen on a full queue.
python3 - "$data/gitops-status.db" "$work" <<'PY' &
import os, sqlite3, sys, time
db, work = sys.argv[1], sys.argv[2]
c = sqlite3.connect(db, timeout=10, isolation_level=None)
c.execute("BEGIN IMMEDIATE")
open(os.path.join(work, "locked"), "w").close()
deadline = time.time() + 60
while not os.path.exists(os.path.join(work, "release")) and time.time() < deadline:
    time.sleep(0.05)
c.execute("ROLLBACK")
PY
locker=$!
for _ in $(seq 1 200); do [[ -e $work/locked ]] && break; sleep 0.05; done
[[ -e $work/locked ]] || fail "the lock holder did not start"
posts=()
sent=0
ready=
for _ in $(seq 1 100); do
    depth=$(curl -s "$base/metrics" | awk '$1 == "gitops_status_write_queue_depth" {print $2}')
    if [[ $depth == 2 ]]; then
        started=$(date +%s%N)
        ready=$(curl -s -m 5 -w ' %{http_code}' "$base/ready") \
            || fail "/ready did not answer within 5 s with a full queue"
        took_ms=$(( ($(date +%s%N) - started) / 1000000 ))
        # The writer may have taken the queue in between: then /ready tried its probe.
        [[ $ready == *'write queue is full'*' 503' ]] && break
        [[ $ready == *' 503' ]] || fail "/ready answered while the database is locked: $ready"
        continue
    fi
    sent=$((sent + 1))
    curl -s -o /dev/null -w '%{http_code}' -X POST "$base/status/pipeline" \
        -H 'Content-Type: application/json' \
        -d "{\"server_group\":\"g\",\"host\":\"q$sent\",\"status\":\"synced\"}" >"$work/q$sent" &
    posts+=($!)
done
[[ $ready == *'write queue is full'*' 503' ]] \
    || fail "/ready never answered on a full write queue (depth $depth, $sent reports sent): $ready"
echo "disk-full: /ready with a full write queue answered in $took_ms ms: $ready"
touch "$work/release"
wait "$locker"
for pid in "${posts[@]}"; do wait "$pid" || true; done
# Whatever they were answered, only the acknowledged ones count for verify below.
for i in $(seq 1 "$sent"); do
    if [[ $(cat "$work/q$i") == 20? ]]; then accepted=$((accepted + 1)); fi
done

# Space returns: readiness and writes recover without a restart.
rm "$data/filler"
for _ in $(seq 1 100); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$base/ready") == 200 ]] && break
    sleep 0.1
done
[[ $(curl -s -o /dev/null -w '%{http_code}' "$base/ready") == 200 ]] || fail "/ready did not recover"
code=$(curl -s -o "$work/answer" -w '%{http_code}' -X POST "$base/status/cron" \
    -H 'Content-Type: application/json' -d '{"server_group":"g","host":"h1","status":"synced","changed_files":[]}')
[[ $code == 200 ]] || fail "write after recovery answered $code: $(cat "$work/answer")"
accepted=$((accepted + 1))

kill -TERM "$server_pid"
wait "$server_pid" || fail "exit code $? after SIGTERM"
server_pid=
out=$("$binary" verify --db "$data/gitops-status.db") || fail "verify: $out"
[[ $out == "verified $accepted rows"* ]] || fail "expected $accepted rows (only acknowledged reports): $out"
echo "disk-full: recovered; $out"
echo "disk-full: ok"
