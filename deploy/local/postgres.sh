#!/usr/bin/env bash
# Runs a throwaway PostgreSQL server on a free loopback port, for the tests and `make stack`.
#
# Why this way: no Docker engine here, but Debian's PostgreSQL packages are; a fresh machine
# gets them with apt-get. Each run is a new cluster (initdb). By default it is tuned for speed
# over safety (fsync, synchronous_commit and full_page_writes off), for the test suite only:
# firstvalue refuses such a database unless FIRSTVALUE_ALLOW_NON_DURABLE_DATABASE=true.
# --durable keeps PostgreSQL's crash-safe settings (`make stack`, the fault tests).
#
#   deploy/local/postgres.sh start DIR [--durable]  # prints the asyncpg URL on stdout, the rest on stderr
#   deploy/local/postgres.sh stop DIR               # pg_ctl stop -m fast (immediate if that hangs)
# Faults, on the cluster DIR holds (the fault tests use them):
#   deploy/local/postgres.sh restart DIR [fast|immediate]  # pg_ctl restart (immediate: a crash)
#   deploy/local/postgres.sh halt DIR [fast|immediate]     # stop the server, keep the cluster
#   deploy/local/postgres.sh resume DIR                    # start it again on the same port
#   deploy/local/postgres.sh signal DIR STOP|CONT          # freeze / thaw every server process
#
# The URL: postgresql+asyncpg://firstvalue:firstvalue@127.0.0.1:PORT/firstvalue
# (user firstvalue may create databases; superuser "postgres" connects over the socket in DIR
# without a password: psql -h "$(cat DIR/pg.sockdir)" -p "$(cat DIR/pg.port)" -U postgres).
# initdb refuses to run as root, so as root the server runs as the "postgres" system user.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
READY_DEADLINE=60
DB=firstvalue
DB_USER=firstvalue
DB_PASSWORD=firstvalue
RUN_AS_USER="${FIRSTVALUE_PG_USER:-postgres}"

log() { echo "postgres.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# --- binaries ---------------------------------------------------------------------------

find_bindir() {  # newest /usr/lib/postgresql/N/bin holding initdb, or nothing
    local d
    d="$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)"
    [[ -n "$d" ]] && dirname "$d"
    return 0
}

install_postgres() {
    local sudo=()
    if [[ "$(id -u)" != 0 ]]; then
        command -v sudo >/dev/null || die "PostgreSQL is not installed; run: apt-get install -y postgresql"
        sudo=(sudo)
    fi
    log "PostgreSQL server binaries missing; installing Debian's postgresql package ..."
    # Only the binaries are wanted: keep the package from creating (and starting) the
    # system-wide "main" cluster on port 5432. --force-confold keeps this file as written.
    if [[ ! -e /etc/postgresql-common/createcluster.conf ]]; then
        "${sudo[@]}" mkdir -p /etc/postgresql-common
        echo "create_main_cluster = false" |
            "${sudo[@]}" tee /etc/postgresql-common/createcluster.conf >/dev/null
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        postgresql >&2
}

# --- running as a non-root user ---------------------------------------------------------

as_pg() {  # run a command as the server's user (root cannot run initdb/postgres)
    if [[ "$(id -u)" == 0 ]]; then
        (cd / && runuser -u "$RUN_AS_USER" -- "$@")  # cd: root's cwd may be unreadable to it
    else
        "$@"
    fi
}

give_to_pg() {  # give_to_pg PATH...: hand paths over to the server's user when we are root
    if [[ "$(id -u)" == 0 ]]; then
        chown "$RUN_AS_USER:" "$@"
    fi
}

ensure_run_user() {
    [[ "$(id -u)" == 0 ]] || return 0
    id -u "$RUN_AS_USER" >/dev/null 2>&1 ||
        useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin "$RUN_AS_USER"
}

# --- helpers ----------------------------------------------------------------------------

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Where the cluster lives: DIR/pg when the server's user can reach and write it, else a
# fresh folder under /tmp (e.g. a repo below root's 0700 home). Unix socket paths are
# limited to 107 bytes, so a deep DIR gets its sockets in a short /tmp folder too.
choose_dirs() {  # sets PGDATA_DIR, SOCK_DIR
    local dir="$1"
    rm -rf "$dir/pg"  # a stopped cluster from an earlier run: start afresh
    mkdir -p "$dir/pg"
    give_to_pg "$dir/pg"
    if as_pg test -w "$dir/pg" -a -x "$dir/pg" 2>/dev/null; then
        PGDATA_DIR="$dir/pg/data"
        SOCK_DIR="$dir/pg"
    else
        PGDATA_DIR="$(mktemp -d /tmp/firstvalue-pg.XXXXXX)/data"
        SOCK_DIR="$(dirname "$PGDATA_DIR")"
        give_to_pg "$SOCK_DIR"
        echo "$SOCK_DIR" > "$dir/pg.tmpdir"
        log "$dir/pg is not writable by user $RUN_AS_USER; cluster in $PGDATA_DIR"
    fi
    if (( ${#SOCK_DIR} > 90 )); then
        SOCK_DIR="$(mktemp -d /tmp/firstvalue-pgsock.XXXXXX)"
        give_to_pg "$SOCK_DIR"
        echo "$SOCK_DIR" >> "$dir/pg.tmpdir"
    fi
}

psql_su() {  # psql_su SQL: as superuser over the unix socket
    as_pg "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK_DIR" -p "$PORT" -U postgres \
        -d postgres -c "$1" >&2
}

# --- start / stop -----------------------------------------------------------------------

start() {
    local dir="${1:?usage: postgres.sh start DIR [--durable]}" attempt t0=$SECONDS started=""
    local durable="${2:-}" sync_flag=--no-sync safety
    [[ -z "$durable" || "$durable" == --durable ]] || die "unknown option $durable (expected --durable)"
    mkdir -p "$dir"; dir="$(cd "$dir" && pwd)"
    local pidfile
    pidfile="$(cat "$dir/pg.datadir" 2>/dev/null || true)/postmaster.pid"
    if [[ -f "$pidfile" ]] && kill -0 "$(head -n 1 "$pidfile")" 2>/dev/null; then
        die "a server already runs from $dir; stop it first (postgres.sh stop $dir)"
    fi
    stop "$dir" 2>/dev/null  # removes /tmp folders left by an earlier run that was not stopped

    BINDIR="$(find_bindir)"
    if [[ -z "$BINDIR" ]]; then
        install_postgres
        BINDIR="$(find_bindir)"
        [[ -n "$BINDIR" ]] || die "installed postgresql but found no /usr/lib/postgresql/*/bin/initdb"
    fi
    ensure_run_user
    choose_dirs "$dir"
    echo "$PGDATA_DIR" > "$dir/pg.datadir"
    echo "$SOCK_DIR" > "$dir/pg.sockdir"
    echo "$BINDIR" > "$dir/pg.bindir"
    LOG_FILE="$(dirname "$PGDATA_DIR")/postgres.log"  # the server's user must write it
    echo "$LOG_FILE" > "$dir/pg.logfile"

    if [[ -n "$durable" ]]; then
        sync_flag=""
        safety="# durable (--durable): PostgreSQL's crash-safe defaults, spelled out
fsync = on
synchronous_commit = on
full_page_writes = on"
    else
        safety="# tuned for tests, not durable
fsync = off
synchronous_commit = off
full_page_writes = off"
    fi
    # --no-sync unless durable: then nothing here must survive a crash. Trust over the socket
    # (superuser setup); password (scram) over TCP, which is what the application uses.
    as_pg "$BINDIR/initdb" -D "$PGDATA_DIR" -U postgres -E UTF8 --locale=C $sync_flag \
        --auth-local=trust --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; die "initdb failed"; }

    for attempt in 1 2 3; do
        PORT="$(free_port)"
        cat > "$PGDATA_DIR/postgresql.auto.conf" <<EOF
# Written by deploy/local/postgres.sh: loopback only.
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCK_DIR'
max_connections = 200
$safety
EOF
        give_to_pg "$PGDATA_DIR/postgresql.auto.conf"
        # pg_ctl redirects the server's output to the log, so $(postgres.sh start) never hangs.
        if as_pg "$BINDIR/pg_ctl" -D "$PGDATA_DIR" -l "$LOG_FILE" -w \
                -t "$READY_DEADLINE" start >/dev/null 2>&1 </dev/null; then
            started=1; break
        fi
        if grep -q 'Address already in use' "$LOG_FILE" 2>/dev/null; then
            log "port $PORT was taken between choosing and binding it; retrying ($attempt)"
            continue
        fi
        break
    done
    if [[ -z "$started" ]]; then
        log "server did not start; log tail:"; tail -n 30 "$LOG_FILE" >&2 || true
        as_pg "$BINDIR/pg_ctl" -D "$PGDATA_DIR" -m immediate stop >/dev/null 2>&1 || true
        exit 1
    fi
    echo "$PORT" > "$dir/pg.port"

    until "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PORT"; do
        if (( SECONDS - t0 > READY_DEADLINE )); then
            log "server not ready after ${READY_DEADLINE} s; log tail:"
            tail -n 30 "$LOG_FILE" >&2 || true
            stop "$dir"; exit 1
        fi
        sleep 0.2
    done

    psql_su "CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASSWORD'"
    psql_su "CREATE DATABASE $DB OWNER $DB_USER"
    log "server ready on 127.0.0.1:$PORT in $((SECONDS - t0)) s ($(basename "$(dirname "$BINDIR")"), log: $LOG_FILE)"
    echo "postgresql+asyncpg://$DB_USER:$DB_PASSWORD@127.0.0.1:$PORT/$DB"
}

stop() {
    local dir="${1:?usage: postgres.sh stop DIR}" data bindir tmp
    dir="$(cd "$dir" 2>/dev/null && pwd)" || { log "no folder $1; nothing to stop"; return 0; }
    [[ -f "$dir/pg.datadir" ]] || { log "no cluster recorded in $dir; nothing to stop"; return 0; }
    data="$(cat "$dir/pg.datadir")"
    bindir="$(cat "$dir/pg.bindir")"
    if [[ -f "$data/postmaster.pid" ]]; then
        as_pg "$bindir/pg_ctl" -D "$data" -m fast -w -t 15 stop >/dev/null 2>&1 ||
            as_pg "$bindir/pg_ctl" -D "$data" -m immediate -w -t 15 stop >/dev/null 2>&1 ||
            log "pg_ctl stop failed; see $(cat "$dir/pg.logfile" 2>/dev/null)"
        log "server stopped"
    fi
    # Folders made outside DIR (see choose_dirs) go with the server.
    if [[ -f "$dir/pg.tmpdir" ]]; then
        while read -r tmp; do
            [[ "$tmp" == /tmp/firstvalue-pg* ]] && rm -rf "$tmp"
        done < "$dir/pg.tmpdir"
        rm -f "$dir/pg.tmpdir"
    fi
    rm -f "$dir/pg.datadir"
}

# --- faults (the cluster stays; the same port) ------------------------------------------

pg_ctl_on() {  # pg_ctl_on DIR ARGS...: pg_ctl on DIR's cluster, as the server's user
    local dir="${1:?DIR}"; shift
    [[ -f "$dir/pg.datadir" ]] || die "no cluster recorded in $dir"
    as_pg "$(cat "$dir/pg.bindir")/pg_ctl" -D "$(cat "$dir/pg.datadir")" "$@" </dev/null >/dev/null
}

shutdown_mode() {
    case "${1:-fast}" in fast|immediate) echo "${1:-fast}" ;; *) die "mode ${1} (expected fast or immediate)" ;; esac
}

restart() { pg_ctl_on "$1" -m "$(shutdown_mode "${2:-}")" -w -t 60 -l "$(cat "$1/pg.logfile")" restart; log "server restarted"; }
halt() { pg_ctl_on "$1" -m "$(shutdown_mode "${2:-}")" -w -t 60 stop; log "server halted (cluster kept)"; }
resume() { pg_ctl_on "$1" -w -t 60 -l "$(cat "$1/pg.logfile")" start; log "server resumed"; }

signal_server() {  # signal_server DIR STOP|CONT: the postmaster and every backend it forked
    local dir="${1:?DIR}" sig="${2:?STOP or CONT}" pid
    [[ "$sig" == STOP || "$sig" == CONT ]] || die "signal $sig (expected STOP or CONT)"
    pid="$(head -n 1 "$(cat "$dir/pg.datadir")/postmaster.pid")"
    kill "-$sig" "$pid" $(ps -o pid= --ppid "$pid")
    log "sent SIG$sig to the server (pid $pid) and its processes"
}

case "${1:-}" in
    start) start "${2:-}" "${3:-}" ;;
    stop) stop "${2:-}" ;;
    restart) restart "${2:-}" "${3:-}" ;;
    halt) halt "${2:-}" "${3:-}" ;;
    resume) resume "${2:-}" ;;
    signal) signal_server "${2:-}" "${3:-}" ;;
    *) echo "usage: $0 start DIR [--durable] | stop DIR | restart DIR [fast|immediate] | halt DIR [fast|immediate] | resume DIR | signal DIR STOP|CONT" >&2; exit 2 ;;
esac
