#!/usr/bin/env bash
# The production shape on one machine (`make stack`): PostgreSQL + Kafka on free loopback
# ports, the schema migrated, and the three services as separate processes:
#   firstvalue ingest | firstvalue milestones | firstvalue api
# Logs go to .cache/stack/*.log (kept after the stop). A service that exits is restarted (a
# small supervisor: back-off 1 s, 2 s, ... 30 s, reset after a minute up), except one that
# refuses its settings or database (exit 2): then everything stops. Ctrl-C stops everything.
# PostgreSQL runs with its durable settings (postgres.sh --durable). The servers are fresh
# every time: no data survives a stop.
#
# Environment: FIRSTVALUE_* settings pass through (e.g. FIRSTVALUE_API_PORT, FIRSTVALUE_PLANS);
# FIRSTVALUE_API_KEYS defaults to one generated write key, printed at start; with neither
# FIRSTVALUE_SEGMENT_WRITE_KEYS nor FIRSTVALUE_MIXPANEL_TOKENS (nor FIRSTVALUE_INGEST_AUTH=open)
# one Segment write key is generated too, so `firstvalue api` and `ingest` start.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
STACK_DIR="${FIRSTVALUE_STACK_DIR:-${FIRSTVALUE_CACHE_DIR:-$REPO/.cache}/stack}"
FV="$REPO/.venv/bin/firstvalue"
PYTHON="$REPO/.venv/bin/python"
SERVICES=(ingest milestones api)
STOP_GRACE=15
HEALTHY_AFTER=60  # a service up this long has its restart back-off reset
MAX_RESTART_DELAY=30

log() { echo "stack.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

[[ -x "$FV" ]] || die "no $FV; run: make venv"
cd "$REPO"

is_our_service() {  # is_our_service PID NAME: PID still runs `firstvalue NAME`
    tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" | grep -q "firstvalue $2"
}

stop_services() {
    local svc pid i alive
    for svc in "${SERVICES[@]}"; do
        [[ -f "$STACK_DIR/$svc.pid" ]] || continue
        pid="$(cat "$STACK_DIR/$svc.pid")"
        is_our_service "$pid" "$svc" && kill -TERM "$pid" 2>/dev/null
    done
    for ((i = 0; i < STOP_GRACE * 10; i++)); do
        alive=""
        for svc in "${SERVICES[@]}"; do
            [[ -f "$STACK_DIR/$svc.pid" ]] || continue
            pid="$(cat "$STACK_DIR/$svc.pid")"
            if is_our_service "$pid" "$svc"; then alive=1; else rm -f "$STACK_DIR/$svc.pid"; fi
        done
        [[ -z "$alive" ]] && return 0
        sleep 0.1
    done
    for svc in "${SERVICES[@]}"; do
        [[ -f "$STACK_DIR/$svc.pid" ]] || continue
        pid="$(cat "$STACK_DIR/$svc.pid")"
        log "$svc (pid $pid) still up after ${STOP_GRACE} s; SIGKILL"
        is_our_service "$pid" "$svc" && kill -KILL "$pid" 2>/dev/null
        rm -f "$STACK_DIR/$svc.pid"
    done
    return 0
}

stop_all() {
    stop_services
    bash "$HERE/postgres.sh" stop "$STACK_DIR/postgres" &
    bash "$HERE/kafka.sh" stop "$STACK_DIR/kafka" &
    wait
}

# A stack that was killed hard may have left processes behind: stop them first.
if [[ -d "$STACK_DIR" ]]; then
    set +e; stop_all 2>/dev/null; set -e
fi
rm -rf "$STACK_DIR"
mkdir -p "$STACK_DIR"
chmod 755 "$STACK_DIR"  # PostgreSQL runs as its own user and must reach its folder

PG_JOB="" KAFKA_JOB=""
cleanup() {
    local rc=$? job
    trap - EXIT INT TERM
    set +e
    log "stopping ..."
    for job in $PG_JOB $KAFKA_JOB; do wait "$job" 2>/dev/null; done
    stop_all
    log "stopped; logs in $STACK_DIR"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

t0=$SECONDS
bash "$HERE/postgres.sh" start "$STACK_DIR/postgres" --durable >"$STACK_DIR/database_url" &
PG_JOB=$!
bash "$HERE/kafka.sh" start "$STACK_DIR/kafka" >"$STACK_DIR/bootstrap_servers" &
KAFKA_JOB=$!
pg_rc=0; wait "$PG_JOB" || pg_rc=$?; PG_JOB=""
kafka_rc=0; wait "$KAFKA_JOB" || kafka_rc=$?; KAFKA_JOB=""
(( pg_rc == 0 && kafka_rc == 0 )) || die "a server did not start (postgres exit $pg_rc, kafka exit $kafka_rc)"

FIRSTVALUE_DATABASE_URL="$(cat "$STACK_DIR/database_url")"
FIRSTVALUE_KAFKA_BOOTSTRAP_SERVERS="$(cat "$STACK_DIR/bootstrap_servers")"
export FIRSTVALUE_DATABASE_URL FIRSTVALUE_KAFKA_BOOTSTRAP_SERVERS
generated_key=""
if [[ -z "${FIRSTVALUE_API_KEYS:-}" ]]; then
    generated_key="$("$PYTHON" -c 'import secrets; print("fv_" + secrets.token_urlsafe(24))')"
    export FIRSTVALUE_API_KEYS="stack:write:$generated_key"
fi
generated_write_key=""
if [[ -z "${FIRSTVALUE_SEGMENT_WRITE_KEYS:-}${FIRSTVALUE_MIXPANEL_TOKENS:-}" && "${FIRSTVALUE_INGEST_AUTH:-}" != open ]]; then
    generated_write_key="$("$PYTHON" -c 'import secrets; print("wk_" + secrets.token_urlsafe(24))')"
    export FIRSTVALUE_SEGMENT_WRITE_KEYS="$generated_write_key"
fi
API_URL="http://${FIRSTVALUE_API_HOST:-127.0.0.1}:${FIRSTVALUE_API_PORT:-8000}"
{
    echo "export FIRSTVALUE_DATABASE_URL=$FIRSTVALUE_DATABASE_URL"
    echo "export FIRSTVALUE_KAFKA_BOOTSTRAP_SERVERS=$FIRSTVALUE_KAFKA_BOOTSTRAP_SERVERS"
} > "$STACK_DIR/env"
log "servers up in $((SECONDS - t0)) s"

log "migrating the schema ..."
"$FV" migrate </dev/null >"$STACK_DIR/migrate.log" 2>&1 ||
    { tail -n 30 "$STACK_DIR/migrate.log" >&2; die "firstvalue migrate failed"; }

declare -A SERVICE_OF=() STARTED_AT=() RESTARTS=()
start_service() {  # start_service NAME
    local svc="$1"
    # Own session: Ctrl-C reaches only this script, which then stops the services (SIGTERM,
    # each drains its batches in hand) before the servers, instead of all at once.
    setsid "$FV" "$svc" </dev/null >>"$STACK_DIR/$svc.log" 2>&1 &
    echo "$!" > "$STACK_DIR/$svc.pid"
    SERVICE_OF[$!]="$svc"
    STARTED_AT[$svc]=$SECONDS
    log "started firstvalue $svc (pid $!, log $STACK_DIR/$svc.log)"
}
for svc in "${SERVICES[@]}"; do start_service "$svc"; done

# Tell when the API answers (the services may keep starting up after that).
if "$PYTHON" - "$API_URL/readyz" <<'PY'
import sys, time, urllib.request
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
            if r.status < 500:
                sys.exit(0)
    except Exception:
        time.sleep(0.5)
sys.exit(1)
PY
then
    cat >&2 <<EOF

firstvalue stack is up ($((SECONDS - t0)) s):
  API         $API_URL   (OpenAPI: $API_URL/docs, metrics: $API_URL/metrics)
  PostgreSQL  $FIRSTVALUE_DATABASE_URL
  Kafka       $FIRSTVALUE_KAFKA_BOOTSTRAP_SERVERS
  Logs        $STACK_DIR/{ingest,milestones,api,migrate}.log   (source $STACK_DIR/env for the CLI)
EOF
    if [[ -n "$generated_key" ]]; then
        echo "  API key     $generated_key   e.g. curl -H 'Authorization: Bearer $generated_key' $API_URL/v1/onboardings" >&2
    fi
    if [[ -n "$generated_write_key" ]]; then
        echo "  Write key   $generated_write_key   (Segment write key for POST $API_URL/v1/batch)" >&2
    fi
    echo "Ctrl-C stops everything." >&2
else
    log "the API did not answer on $API_URL/readyz within 60 s; see $STACK_DIR/api.log"
fi

# The supervisor: runs until Ctrl-C, restarting a service that exits.
while true; do
    exited="" rc=0
    wait -n -p exited "${!SERVICE_OF[@]}" || rc=$?
    [[ -n "$exited" && -n "${SERVICE_OF[$exited]:-}" ]] || continue
    svc="${SERVICE_OF[$exited]}"
    unset "SERVICE_OF[$exited]"
    if (( rc == 2 )); then  # bad settings, or a database that is not durable: restarting won't help
        log "firstvalue $svc refused to start (exit 2); its log tail:"
        tail -n 5 "$STACK_DIR/$svc.log" >&2 || true
        exit 1
    fi
    (( SECONDS - STARTED_AT[$svc] < HEALTHY_AFTER )) || RESTARTS[$svc]=0
    n=$(( ${RESTARTS[$svc]:-0} + 1 ))
    RESTARTS[$svc]=$n
    delay=$(( n > 5 ? MAX_RESTART_DELAY : 1 << (n - 1) ))
    log "firstvalue $svc (pid $exited) exited with status $rc; restart $n in $delay s; its log tail:"
    tail -n 10 "$STACK_DIR/$svc.log" >&2 || true
    sleep "$delay"
    start_service "$svc"
done
