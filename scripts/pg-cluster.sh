#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for tests and the demo, never the system one.
#   scripts/pg-cluster.sh start DIR [PORT]   initdb if needed, start, print the port
#   scripts/pg-cluster.sh stop DIR
#   scripts/pg-cluster.sh kill DIR           SIGKILL the postmaster (crash tests)
# Postgres refuses to run as root: when invoked as root the cluster runs as user postgres.
set -euo pipefail
source "$(dirname "$0")/pg-env.sh"   # PG_BIN of the version under test (PG_MAJOR)
cmd=${1:?start|stop|kill}; dir=${2:?data directory}

run_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
    local port=${1:-54330}
    while (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
    echo "$port"
}

case "$cmd" in
start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    if [ ! -f "$dir/PG_VERSION" ]; then
        # PG_INITDB_OPTS: more initdb options (word-split), e.g. --no-data-checksums.
        run_pg "$PG_BIN/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --locale=C ${PG_INITDB_OPTS:-} >"$dir.initdb.log" 2>&1 \
            || { cat "$dir.initdb.log"; exit 1; }
    fi
    if run_pg "$PG_BIN/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
        sed -n 's/^port = //p' "$dir/postgresql.auto.conf" | tail -n 1
        exit 0
    fi
    # A restart keeps the cluster's port (clients of a crash test reconnect to it).
    known=$(sed -n 's/^port = //p' "$dir/postgresql.auto.conf" 2>/dev/null | tail -n 1)
    port=${3:-${known:-$(free_port)}}
    # Settings live in postgresql.auto.conf so a restart (crash tests) keeps them; settings this
    # script does not own (primary_conninfo of a standby made by pg_basebackup -R) are kept.
    ours='^(port|listen_addresses|unix_socket_directories|fsync|max_wal_senders|wal_level|shared_buffers|maintenance_work_mem|max_parallel_maintenance_workers|jit) '
    {
        [ -f "$dir/postgresql.auto.conf" ] && grep -vE "$ours" "$dir/postgresql.auto.conf" | grep -v '^$' || true
        echo "port = $port"
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$dir'"
        echo "fsync = off"
        echo "max_wal_senders = 4"
        echo "wal_level = replica"
        echo "shared_buffers = 256MB"
        echo "maintenance_work_mem = 512MB"
        echo "${PG_EXTRA_CONF:-}"
    } > "$dir.conf.new"
    run_pg tee "$dir/postgresql.auto.conf" < "$dir.conf.new" >/dev/null
    rm -f "$dir.conf.new"
    # Without RUST_BACKTRACE: pgrx would append Rust backtraces to errors sent to clients.
    run_pg env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE "$PG_BIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start >/dev/null
    echo "$port"
    ;;
stop)
    [ -f "$dir/postmaster.pid" ] && run_pg "$PG_BIN/pg_ctl" -D "$dir" -m fast -w stop >/dev/null || true
    ;;
kill)
    # A crash of the whole server: the postmaster and every child die at once.
    if [ -f "$dir/postmaster.pid" ]; then
        pid=$(head -n 1 "$dir/postmaster.pid")
        kill -9 "$pid" $(pgrep -P "$pid") 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    ;;
*)
    echo "usage: $0 start|stop|kill DIR [PORT]" >&2
    exit 2
    ;;
esac
