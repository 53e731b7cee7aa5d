#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL server (tests/postgres/server.sh) whose URL is in
# GITOPS_STATUS_TEST_POSTGRES_URL, then stops the server, whatever the command's outcome, and
# exits with the command's status. For example:
#   tests/postgres/with-server.sh cargo test -p gitops-status-postgres
set -euo pipefail
[[ $# -gt 0 ]] || { echo "usage: $0 COMMAND [ARG...]" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
# Searchable, so that the server's own user (postgres, when this runs as root) reaches it.
chmod 711 "$work"
cleanup() {
    [[ -f $work/pg/pid ]] && bash "$here/server.sh" stop "$work/pg" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
GITOPS_STATUS_TEST_POSTGRES_URL=$(bash "$here/server.sh" start "$work/pg")
export GITOPS_STATUS_TEST_POSTGRES_URL
status=0
"$@" || status=$?
exit "$status"
