#!/usr/bin/env bash
# The status pages in a real browser: Debian's Chromium, headless, driven by Selenium
# (tests/browser/pages.py), with axe-core for accessibility. Starts two servers on free
# 127.0.0.1 ports with fresh databases: an open one (the fleet, host, commit pages) and one
# with --tokens and --read-requires-token (the sign-in flow). pages.py seeds both over HTTP
# and checks the pages; this script stops the servers by PID on exit.
# Installs what it lacks: chromium and chromium-driver with apt (as root, as CI runs), axe-core
# pinned from npm into target/browser-npm, selenium (the pin in .ci/requirements.txt) into
# PYTHON's environment. Nothing else is downloaded; the browser fetches only from 127.0.0.1.
# Usage: tests/browser/run.sh BINARY PYTHON [SCREENSHOT_DIR]
#   SCREENSHOT_DIR: where to write fleet.png and host.png (CI writes none).
set -euo pipefail

usage="usage: $0 path/to/gitops-status path/to/python [screenshot-dir]"
binary=$(realpath "${1:?$usage}")
# The venv's python is a symlink: absolute, but not resolved (that would leave the venv).
python_arg=${2:?$usage}
if [[ $python_arg == */* ]]; then
    python=$(cd "$(dirname "$python_arg")" && pwd)/$(basename "$python_arg")
else
    python=$(command -v "$python_arg") || { echo "FAIL: $python_arg not found" >&2; exit 1; }
fi
screenshots=
if [[ -n ${3:-} ]]; then
    mkdir -p "$3"
    screenshots=$(cd "$3" && pwd)
fi
cd "$(dirname "$0")/../.."

axe_version=4.14.1
npm_prefix=target/browser-npm
axe_js=$npm_prefix/node_modules/axe-core/axe.min.js

work=$(mktemp -d)
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*" >&2
    local log
    for log in "$work"/*.log; do
        [[ -f $log ]] && tail -20 "$log" | sed "s|^|  $(basename "$log" .log): |" >&2
    done
    exit 1
}

[[ -x $binary ]] || fail "$binary is not an executable"
[[ -x $python ]] || fail "$python is not an executable"

# The browser: Debian's packages (Selenium Manager never downloads one: pages.py names both).
if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
    echo "tests/browser: installing chromium and chromium-driver (Debian packages)" >&2
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi

# axe-core, pinned, once (npm from Debian when the machine has none).
if ! command -v npm >/dev/null; then
    echo "tests/browser: installing npm (Debian package)" >&2
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends npm >/dev/null
fi
installed=$(node -p "require('./$npm_prefix/node_modules/axe-core/package.json').version" 2>/dev/null || true)
if [[ $installed != "$axe_version" ]]; then
    npm install --prefix "$npm_prefix" --save-exact --no-audit --no-fund --no-update-notifier \
        --loglevel=error "axe-core@$axe_version" >/dev/null
fi
[[ -f $axe_js ]] || fail "$axe_js is missing after npm install"

# Selenium, as pinned for CI (.ci/run installs it into the venv; this covers a bare run).
if ! "$python" -c 'import selenium' 2>/dev/null; then
    selenium_pin=$(grep -E '^selenium==' .ci/requirements.txt) || fail "no selenium pin in .ci/requirements.txt"
    "$python" -m pip install --quiet --disable-pip-version-check "$selenium_pin"
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Tokens for the second server: one that may read (typed into the sign-in form), one that
# writes its seed reports. `token new` prints the token, then the token file's line.
"$binary" token new browser-reader --scope read >"$work/reader" || fail "token new (read)"
"$binary" token new browser-seeder --scope 'write:*' >"$work/seeder" || fail "token new (write)"
{
    echo "# tests/browser tokens"
    sed -n 2p "$work/reader"
    sed -n 2p "$work/seeder"
} >"$work/tokens"
export BROWSER_READ_TOKEN BROWSER_WRITE_TOKEN
BROWSER_READ_TOKEN=$(sed -n 1p "$work/reader")
BROWSER_WRITE_TOKEN=$(sed -n 1p "$work/seeder")

# start NAME PORT ARGS...: a server on 127.0.0.1:PORT with its own database, ready.
start() {
    local name=$1 port=$2 pid
    shift 2
    mkdir -p "$work/$name"
    "$binary" serve --listen "127.0.0.1:$port" --db "$work/$name/gitops-status.db" \
        --workers 2 "$@" >"$work/$name.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 1 300); do
        curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || fail "server $name exited"
        sleep 0.1
    done
    fail "server $name not ready on port $port after 30 s"
}

open_port=$(free_port)
# splunk-prod turns stale 2 s after its last drift check: the pages show stale hosts too.
start open "$open_port" --stale-after 'splunk-prod=2s,*=1h'
auth_port=$(free_port)
start auth "$auth_port" --tokens "$work/tokens" --read-requires-token

args=(--base "http://127.0.0.1:$open_port" --auth-base "http://127.0.0.1:$auth_port" --axe "$axe_js")
if [[ -n $screenshots ]]; then
    args+=(--screenshots "$screenshots")
fi
# Well under CI's two minutes; timeout also stops chromedriver and Chromium (its process group).
status=0
timeout --kill-after=5 100 "$python" tests/browser/pages.py "${args[@]}" || status=$?
if [[ $status -ne 0 ]]; then
    [[ $status -eq 124 ]] && echo "tests/browser: pages.py took over 100 s" >&2
    fail "browser checks (exit $status)"
fi
