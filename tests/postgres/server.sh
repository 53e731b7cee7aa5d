#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests, from Debian's postgresql package (initdb, pg_ctl
# and postgres under /usr/lib/postgresql/N/bin, the newest N there; psql and pg_isready from
# the same place). Installs nothing: `apt-get install postgresql` first.
#
# Usage: tests/postgres/server.sh start DIR
#        tests/postgres/server.sh stop DIR
#
# start  makes a new cluster in DIR (created if missing, else it must be empty; its parent
#        must be searchable by the server's user) and starts it on 127.0.0.1 only, on a free
#        port, with its socket in DIR. Prints one line, the URL of a database gitops_status,
#        postgres://postgres:PASSWORD@127.0.0.1:PORT/gitops_status (password login over TCP;
#        the socket in DIR trusts whoever can reach it). Writes the URL to DIR/url and the
#        postmaster's PID to DIR/pid; the server's log is DIR/log. fsync and
#        synchronous_commit keep their defaults (on): the server is as durable as a real one.
# stop   stops that server: SIGINT (fast shutdown) to the PID in DIR/pid, only while that
#        PID is still DIR's postmaster, and waits until it has gone. DIR stays.
#
# initdb refuses to run as root, so as root the server runs as the `postgres` system user
# (the package creates it), which then owns DIR. Run as anyone else, it runs as that user.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
fail() { echo "server.sh: $*" >&2; exit 1; }

[[ $# -eq 2 ]] || usage
command=$1
dir=$2

bin=
for candidate in /usr/lib/postgresql/*/bin; do
    if [[ -x $candidate/initdb ]] && { [[ -z $bin ]] \
        || (( $(basename "$(dirname "$candidate")") > $(basename "$(dirname "$bin")") )); }; then
        bin=$candidate
    fi
done
[[ -n $bin ]] || fail "no /usr/lib/postgresql/N/bin/initdb (Debian: apt-get install postgresql)"

if [[ $EUID -eq 0 ]]; then
    user=postgres
    getent passwd "$user" >/dev/null || fail "no user $user to run the server as (it comes with Debian's postgresql package)"
    as_server() { runuser -u "$user" -- "$@"; }
else
    user=$(id -un)
    as_server() { "$@"; }
fi

# The postmaster's PID while it runs as DIR's server: the PID in DIR/pid, which the
# postmaster's own lock file still names and which is not a zombie. Empty otherwise.
running_pid() {
    local pid lock
    [[ -f $dir/pid ]] || return 0
    pid=$(<"$dir/pid")
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    lock=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null) || return 0
    [[ $lock == "$pid" ]] || return 0
    [[ -n $(start_time "$pid") ]] || return 0
    echo "$pid"
}

# When process PID started (field 22 of /proc/PID/stat), while it runs and is not a zombie.
start_time() {
    local stat fields
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    # The command name (field 2) is in parentheses and may hold spaces: fields from the
    # state (field 3) on.
    read -ra fields <<<"${stat##*) }"
    [[ ${fields[0]} != Z ]] && echo "${fields[19]}"
    return 0
}

start() {
    mkdir -p "$dir"
    dir=$(realpath "$dir")
    [[ -z $(ls -A "$dir") ]] || fail "$dir is not empty"
    # The socket's path must fit in sun_path (107 bytes with the .s.PGSQL.PORT name).
    (( ${#dir} <= 80 )) || fail "$dir is too long a path for the server's socket"
    [[ $dir != *[\'\\]* ]] || fail "$dir has a quote or backslash, which postgresql.conf would need escaped"
    chmod 700 "$dir"
    if [[ $EUID -eq 0 ]]; then
        chown "$user:" "$dir"
    fi
    as_server test -w "$dir" || fail "$user cannot write $dir (is its parent searchable by $user?)"

    local password
    password=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
    # The user's own umask is not trusted with the password file.
    (umask 077 && printf '%s\n' "$password" >"$dir/pwfile")
    if [[ $EUID -eq 0 ]]; then
        chown "$user:" "$dir/pwfile"
    fi
    # From DIR: the caller's working directory may be closed to the server's user.
    (cd "$dir" && as_server "$bin/initdb" --pgdata="$dir/data" --username=postgres \
        --pwfile="$dir/pwfile" --auth-local=trust --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1) \
        || { cat "$dir/initdb.log" >&2; fail "initdb failed"; }
    rm -f "$dir/pwfile"

    # A port nothing on 127.0.0.1 answers on; another process may take it before the server
    # does, so a start that cannot bind tries the next candidate.
    local port='' candidate seen
    for _ in 1 2 3 4 5 6 7 8; do
        candidate=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
        if (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
            continue
        fi
        cat >"$dir/data/tests.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $candidate
unix_socket_directories = '$dir'
fsync = on
synchronous_commit = on
EOF
        if [[ $EUID -eq 0 ]]; then
            chown "$user:" "$dir/data/tests.conf"
        fi
        grep -q "^include 'tests.conf'" "$dir/data/postgresql.conf" \
            || echo "include 'tests.conf'" >>"$dir/data/postgresql.conf"
        seen=0
        [[ -f $dir/log ]] && seen=$(wc -l <"$dir/log")
        if (cd "$dir" && as_server "$bin/pg_ctl" start --pgdata="$dir/data" --log="$dir/log" \
                --wait --timeout=60 --silent >"$dir/pg_ctl.out" 2>&1); then
            port=$candidate
            break
        fi
        # Another cause than the port (this attempt's lines of the log) is not retried.
        if ! grep -q "could not create any TCP/IP sockets" < <(tail -n "+$((seen + 1))" "$dir/log"); then
            cat "$dir/pg_ctl.out" >&2
            tail -n 20 "$dir/log" >&2
            # A postmaster still starting when pg_ctl gave up is left for `stop`.
            if [[ -f $dir/data/postmaster.pid ]]; then
                head -n 1 "$dir/data/postmaster.pid" >"$dir/pid"
            fi
            fail "the server did not start"
        fi
    done
    [[ -n $port ]] || { tail -n 20 "$dir/log" >&2 2>/dev/null; fail "found no free port"; }

    local pid
    pid=$(head -n 1 "$dir/data/postmaster.pid")
    echo "$pid" >"$dir/pid"

    # pg_ctl waited for the postmaster; this waits for a TCP connection to be accepted.
    local tries=0
    until "$bin/pg_isready" --quiet --host=127.0.0.1 --port="$port" --timeout=2; do
        (( ++tries < 60 )) || { tail -n 20 "$dir/log" >&2; fail "the server accepts no connection on 127.0.0.1:$port"; }
        sleep 0.5
    done
    "$bin/psql" --no-psqlrc --quiet --set=ON_ERROR_STOP=1 --host="$dir" --port="$port" \
        --username=postgres --dbname=postgres --command='CREATE DATABASE gitops_status' \
        || fail "could not create the database gitops_status"

    local url="postgres://postgres:$password@127.0.0.1:$port/gitops_status"
    (umask 077 && printf '%s\n' "$url" >"$dir/url")
    echo "$url"
}

stop() {
    [[ -d $dir ]] || fail "no directory $dir"
    local pid
    pid=$(running_pid)
    if [[ -z $pid ]]; then
        echo "server.sh: no server of $dir is running" >&2
        return 0
    fi
    # The process is known by its PID and its start time, so a later process that gets the
    # PID is not waited for.
    local started tries=0
    started=$(start_time "$pid")
    kill -INT "$pid"
    while [[ -n $started && $(start_time "$pid") == "$started" ]]; do
        (( ++tries <= 600 )) || fail "the server (PID $pid) has not stopped after 60 s"
        sleep 0.1
    done
}

case $command in
    start) start ;;
    stop) stop ;;
    *) usage ;;
esac
