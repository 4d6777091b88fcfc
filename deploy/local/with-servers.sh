#!/usr/bin/env bash
# Runs a command with a fresh PostgreSQL server and Kafka broker on free loopback ports,
# and always stops both afterwards (pass, fail or Ctrl-C). Used by `make test` and benches.
#
#   deploy/local/with-servers.sh CMD [ARG...]
#
# CMD sees:
#   FIRSTVALUE_TEST_DATABASE_URL             postgresql+asyncpg://firstvalue:firstvalue@127.0.0.1:PORT/firstvalue
#   FIRSTVALUE_TEST_KAFKA_BOOTSTRAP_SERVERS  127.0.0.1:PORT
#   FIRSTVALUE_TEST_RUN_DIR                  the servers' folder (logs: postgres/pg/postgres.log, kafka/kafka.log)
#   FIRSTVALUE_ALLOW_NON_DURABLE_DATABASE    true: this server is tuned for speed (fsync off) and
#                                            disposable, so the services may start on it
# The exit code is CMD's (or 1 when a server did not start). FIRSTVALUE_KEEP_RUN_DIR=1 keeps
# the folder (logs) after the run.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${FIRSTVALUE_CACHE_DIR:-$REPO/.cache}"

(( $# > 0 )) || { echo "usage: $0 CMD [ARG...]" >&2; exit 2; }

log() { echo "with-servers.sh: $*" >&2; }

mkdir -p "$CACHE"
RUN_DIR="$(mktemp -d "$CACHE/run-XXXXXX")"
chmod 755 "$RUN_DIR"  # PostgreSQL runs as its own user and must reach its folder
PG_JOB="" KAFKA_JOB=""

cleanup() {
    local rc=$? job
    trap - EXIT INT TERM
    set +e  # clean up as much as possible, whatever fails
    # A start still in flight would leave a server behind: let it finish first.
    for job in $PG_JOB $KAFKA_JOB; do wait "$job" 2>/dev/null; done
    bash "$HERE/postgres.sh" stop "$RUN_DIR/postgres" &
    bash "$HERE/kafka.sh" stop "$RUN_DIR/kafka" &
    wait
    if [[ "${FIRSTVALUE_KEEP_RUN_DIR:-}" == 1 ]]; then
        log "kept $RUN_DIR"
    else
        rm -rf "$RUN_DIR"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Both servers start in parallel (PostgreSQL ~1 s, Kafka ~5 s once its jars are cached).
t0=$SECONDS
bash "$HERE/postgres.sh" start "$RUN_DIR/postgres" >"$RUN_DIR/database_url" &
PG_JOB=$!
bash "$HERE/kafka.sh" start "$RUN_DIR/kafka" >"$RUN_DIR/bootstrap_servers" &
KAFKA_JOB=$!
pg_rc=0; wait "$PG_JOB" || pg_rc=$?; PG_JOB=""
kafka_rc=0; wait "$KAFKA_JOB" || kafka_rc=$?; KAFKA_JOB=""
if (( pg_rc != 0 || kafka_rc != 0 )); then
    log "a server did not start (postgres exit $pg_rc, kafka exit $kafka_rc)"
    exit 1
fi

FIRSTVALUE_TEST_DATABASE_URL="$(cat "$RUN_DIR/database_url")"
FIRSTVALUE_TEST_KAFKA_BOOTSTRAP_SERVERS="$(cat "$RUN_DIR/bootstrap_servers")"
FIRSTVALUE_TEST_RUN_DIR="$RUN_DIR"
FIRSTVALUE_ALLOW_NON_DURABLE_DATABASE=true
export FIRSTVALUE_TEST_DATABASE_URL FIRSTVALUE_TEST_KAFKA_BOOTSTRAP_SERVERS FIRSTVALUE_TEST_RUN_DIR
export FIRSTVALUE_ALLOW_NON_DURABLE_DATABASE
log "servers up in $((SECONDS - t0)) s: $FIRSTVALUE_TEST_DATABASE_URL, kafka $FIRSTVALUE_TEST_KAFKA_BOOTSTRAP_SERVERS"

rc=0
"$@" || rc=$?
exit "$rc"
