#!/usr/bin/env bash
# Runs a real single-node Apache Kafka broker (KRaft, combined broker + controller) on a
# free loopback port, for the tests and `make stack`.
#
# Why this way: no Docker engine and no Kafka tarball can be had here, but every Kafka
# module is on Maven Central and Java 17 is installed (see ../../../shared/KAFKA.md).
# Maven resolves the jars once into .cache/kafka/libs (its local repository is
# .cache/m2, so the cache stays inside the project and CI reuses it when .cache survives).
#
#   deploy/local/kafka.sh start DIR   # prints 127.0.0.1:PORT on stdout, the rest on stderr
#   deploy/local/kafka.sh stop DIR    # SIGTERM, then SIGKILL after 20 s
#   deploy/local/kafka.sh resume DIR  # start a stopped broker again: same port, same data (faults)
#   deploy/local/kafka.sh jars        # only resolve the jars (prints the libs folder)
#
# Environment: FIRSTVALUE_CACHE_DIR (default REPO/.cache), FIRSTVALUE_KAFKA_VERSION (try only
# this version), JAVA (default java), PYTHON (default python3).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${FIRSTVALUE_CACHE_DIR:-$REPO/.cache}"
LIBS="$CACHE/kafka/libs"
POM="$HERE/kafka/pom.xml"
JAVA="${JAVA:-java}"
PYTHON="${PYTHON:-python3}"
JVM_FLAGS=(-Xms256m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1
           -XX:+ExitOnOutOfMemoryError -XX:-UsePerfData -Djava.awt.headless=true)
TOOL_FLAGS=(-Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData)
START_DEADLINE=90
STOP_GRACE=20
# "kafka-version:log4j-version", newest first; the first that resolves wins.
CANDIDATES=("4.2.1:2.25.4" "4.2.0:2.25.4" "4.1.1:2.24.3" "4.1.0:2.24.3")
if [[ -n "${FIRSTVALUE_KAFKA_VERSION:-}" ]]; then
    CANDIDATES=("${FIRSTVALUE_KAFKA_VERSION}:${FIRSTVALUE_LOG4J_VERSION:-2.25.4}")
fi
# Topics of the public contract (DESIGN.md §4): name:partitions.
TOPICS=(analytics.events:6 analytics.events.dlq:1 onboarding.facts:6
        onboarding.transitions:1 onboarding.escalations:1)

log() { echo "kafka.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# --- jars -------------------------------------------------------------------------------

# The stamp records which POM and version filled LIBS; a changed POM re-resolves.
stamp_key() { echo "$(sha256sum "$POM" | cut -c1-16) ${CANDIDATES[*]}"; }

resolve_into() {  # resolve_into OUT_DIR KAFKA_VERSION LOG4J_VERSION MAVEN_REPO [extra mvn args]
    local out="$1" kv="$2" lv="$3" repo="$4"; shift 4
    # Maven's output goes to a log, shown only when it fails.
    if ! mvn -B -q -Dstyle.color=never -f "$POM" "$@" \
            -Dmaven.repo.local="$repo" -Dkafka.version="$kv" -Dlog4j.version="$lv" \
            org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$out" >"$CACHE/kafka/mvn.log" 2>&1; then
        sed 's/\x1b\[[0-9;]*m//g' "$CACHE/kafka/mvn.log" | grep -E '^\[ERROR\] .' | head -n 3 >&2
        return 1
    fi
}

ensure_jars() {
    local key; key="$(stamp_key)"
    if [[ -f "$LIBS/.resolved" && "$(head -1 "$LIBS/.resolved")" == "$key" ]]; then
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found (apt-get install -y maven)"
    mkdir -p "$CACHE/kafka"
    # One resolver at a time (two test runs may start together).
    exec 9>"$CACHE/kafka/.lock"
    flock 9
    if [[ -f "$LIBS/.resolved" && "$(head -1 "$LIBS/.resolved")" == "$key" ]]; then
        exec 9>&-; return 0
    fi
    local tmp="$CACHE/kafka/libs.tmp.$$" cand kv lv t0=$SECONDS ok=""
    for cand in "${CANDIDATES[@]}"; do
        kv="${cand%%:*}"; lv="${cand##*:}"
        rm -rf "$tmp"
        log "resolving Kafka $kv jars from Maven Central into $LIBS ..."
        if resolve_into "$tmp" "$kv" "$lv" "$CACHE/m2"; then ok=1; break; fi
        # No network, but the user's own ~/.m2 may already hold them.
        if [[ -d "$HOME/.m2/repository" ]] &&
           resolve_into "$tmp" "$kv" "$lv" "$HOME/.m2/repository" -o 2>/dev/null; then
            log "(from ~/.m2, offline)"; ok=1; break
        fi
        log "Kafka $kv did not resolve; trying an older version"
    done
    [[ -n "$ok" ]] || { rm -rf "$tmp"; exec 9>&-; die "no Kafka version resolved from Maven Central"; }
    printf '%s\nkafka %s log4j %s\n' "$key" "$kv" "$lv" > "$tmp/.resolved"
    rm -rf "$LIBS"
    mv "$tmp" "$LIBS"
    exec 9>&-  # releases the lock (and keeps the fd out of the broker)
    log "resolved Kafka $kv ($(ls "$LIBS" | wc -l) jars) in $((SECONDS - t0)) s"
}

# --- helpers ----------------------------------------------------------------------------

free_ports() {  # free_ports N: N distinct free loopback TCP ports, space separated
    "$PYTHON" - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(*(s.getsockname()[1] for s in socks))
PY
}

port_open() {  # port_open PORT
    "$PYTHON" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.5).close()' "$1" 2>/dev/null
}

cluster_id() {  # Kafka's Uuid: 16 random bytes, base64url without padding, not starting with "-"
    "$PYTHON" -c '
import base64, os
while True:
    s = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if not s.startswith("-"):
        print(s); break'
}

write_configs() {  # write_configs DIR PORT CTRL_PORT
    local dir="$1" port="$2" ctrl="$3"
    cat > "$dir/server.properties" <<EOF
# Single-node KRaft broker for local tests; written by deploy/local/kafka.sh.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$ctrl
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$ctrl
advertised.listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$ctrl
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
log.cleaner.dedupe.buffer.size=16777216
# Tests may use topics of their own; the contract's topics are created explicitly.
auto.create.topics.enable=true
num.partitions=6
EOF
    # Broker log: WARN, plus kafka.server at INFO (start-up, "Kafka Server started", shutdown).
    cat > "$dir/log4j2.properties" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = OUT
logger.server.name = kafka.server
logger.server.level = INFO
EOF
    # Command-line tools: WARN to stderr only, so their stdout stays clean.
    cat > "$dir/log4j2-tools.properties" <<'EOF'
status = warn
appender.err.type = Console
appender.err.name = ERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = ERR
EOF
    # Creates the topics with Kafka's Admin client; its success also proves the broker
    # answers requests (not only accepts connections). One JVM (Java's source launcher)
    # instead of one kafka-topics run per topic.
    cat > "$dir/CreateTopics.java" <<'EOF'
import java.util.*;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.errors.TopicExistsException;

public class CreateTopics {
    // args: BOOTSTRAP TOPIC:PARTITIONS...
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        try (Admin admin = Admin.create(props)) {
            admin.describeCluster().nodes().get(30, TimeUnit.SECONDS);
            List<NewTopic> topics = new ArrayList<>();
            for (int i = 1; i < args.length; i++) {
                String[] t = args[i].split(":");
                topics.add(new NewTopic(t[0], Integer.parseInt(t[1]), (short) 1));
            }
            for (Map.Entry<String, KafkaFuture<Void>> e : admin.createTopics(topics).values().entrySet()) {
                try {
                    e.getValue().get(30, TimeUnit.SECONDS);
                } catch (ExecutionException x) {
                    if (!(x.getCause() instanceof TopicExistsException)) throw x;
                }
            }
            // Makes the broker create __consumer_offsets now, so the first consumer group of a
            // test does not wait for its coordinator.
            admin.listConsumerGroupOffsets("firstvalue-warmup").partitionsToOffsetAndMetadata()
                .get(30, TimeUnit.SECONDS);
            System.err.println("topics ready: " + String.join(" ", Arrays.asList(args).subList(1, args.length)));
        }
    }
}
EOF
}

# --- start / stop -----------------------------------------------------------------------

start_once() {  # start_once DIR: 0 = started, 1 = failed, 2 = failed on a port race (retry)
    local dir="$1" port ctrl pid t0=$SECONDS
    read -r port ctrl < <(free_ports 2)
    rm -rf "$dir/data"
    write_configs "$dir" "$port" "$ctrl"
    "$JAVA" "${TOOL_FLAGS[@]}" -Dlog4j2.configurationFile="$dir/log4j2-tools.properties" \
        -cp "$LIBS/*" kafka.tools.StorageTool format --standalone \
        -t "$(cluster_id)" -c "$dir/server.properties" >"$dir/format.log" 2>&1 \
        || { cat "$dir/format.log" >&2; die "storage format failed"; }

    # stdin/stdout/stderr detached, so a caller's $(kafka.sh start DIR) does not hang.
    "$JAVA" "${JVM_FLAGS[@]}" -Dlog4j2.configurationFile="$dir/log4j2.properties" \
        -cp "$LIBS/*" kafka.Kafka "$dir/server.properties" \
        </dev/null >"$dir/kafka.log" 2>&1 &
    pid=$!
    echo "$pid" > "$dir/kafka.pid"
    echo "$port" > "$dir/kafka.port"

    while ! port_open "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "broker exited during start-up; log tail:"; tail -n 40 "$dir/kafka.log" >&2
            rm -f "$dir/kafka.pid"
            grep -q 'Address already in use' "$dir/kafka.log" && return 2
            return 1
        fi
        if (( SECONDS - t0 > START_DEADLINE )); then
            log "broker not listening after ${START_DEADLINE} s; log tail:"; tail -n 40 "$dir/kafka.log" >&2
            stop "$dir"; return 1
        fi
        sleep 0.2
    done
    if ! timeout "$START_DEADLINE" "$JAVA" "${TOOL_FLAGS[@]}" \
            -Dlog4j2.configurationFile="$dir/log4j2-tools.properties" \
            -cp "$LIBS/*" "$dir/CreateTopics.java" "127.0.0.1:$port" "${TOPICS[@]}" >&2; then
        log "broker listens but does not answer (or topic creation failed); log tail:"
        tail -n 40 "$dir/kafka.log" >&2
        stop "$dir"; return 1
    fi
    log "broker pid $pid ready on 127.0.0.1:$port in $((SECONDS - t0)) s (log: $dir/kafka.log)"
    echo "127.0.0.1:$port"
}

start() {
    local dir="${1:?usage: kafka.sh start DIR}" attempt rc
    command -v "$JAVA" >/dev/null || die "java not found (apt-get install -y openjdk-17-jdk-headless)"
    mkdir -p "$dir"; dir="$(cd "$dir" && pwd)"
    if [[ -f "$dir/kafka.pid" ]] && kill -0 "$(cat "$dir/kafka.pid")" 2>/dev/null; then
        die "a broker already runs from $dir (pid $(cat "$dir/kafka.pid"))"
    fi
    ensure_jars
    for attempt in 1 2 3; do
        rc=0; start_once "$dir" || rc=$?
        (( rc == 0 )) && return 0
        (( rc == 2 )) || exit 1
        log "port taken between choosing and binding it; retrying ($attempt)"
    done
    exit 1
}

resume() {  # the broker DIR ran before, again: its data, topics and committed offsets kept
    local dir="${1:?usage: kafka.sh resume DIR}" pid port t0=$SECONDS
    dir="$(cd "$dir" && pwd)"
    [[ -f "$dir/server.properties" && -f "$dir/kafka.port" ]] || die "no broker was started from $dir"
    if [[ -f "$dir/kafka.pid" ]] && kill -0 "$(cat "$dir/kafka.pid")" 2>/dev/null; then
        die "a broker already runs from $dir (pid $(cat "$dir/kafka.pid"))"
    fi
    port="$(cat "$dir/kafka.port")"
    "$JAVA" "${JVM_FLAGS[@]}" -Dlog4j2.configurationFile="$dir/log4j2.properties" \
        -cp "$LIBS/*" kafka.Kafka "$dir/server.properties" \
        </dev/null >>"$dir/kafka.log" 2>&1 &
    pid=$!
    echo "$pid" > "$dir/kafka.pid"
    while ! port_open "$port"; do
        kill -0 "$pid" 2>/dev/null || { tail -n 40 "$dir/kafka.log" >&2; rm -f "$dir/kafka.pid"; die "broker exited while resuming"; }
        (( SECONDS - t0 <= START_DEADLINE )) || { stop "$dir"; die "broker not listening after ${START_DEADLINE} s"; }
        sleep 0.2
    done
    log "broker pid $pid resumed on 127.0.0.1:$port in $((SECONDS - t0)) s"
}

stop() {
    local dir="${1:?usage: kafka.sh stop DIR}" pid i
    [[ -f "$dir/kafka.pid" ]] || { log "no broker pid file in $dir; nothing to stop"; return 0; }
    pid="$(cat "$dir/kafka.pid")"
    # Only signal our broker, not whatever process reused a stale pid.
    if ! tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q 'kafka\.Kafka'; then
        log "broker pid $pid is not running"; rm -f "$dir/kafka.pid"; return 0
    fi
    if kill -TERM "$pid" 2>/dev/null; then
        for ((i = 0; i < STOP_GRACE * 10; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "broker pid $pid still up after ${STOP_GRACE} s; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
        fi
        log "broker pid $pid stopped"
    fi
    rm -f "$dir/kafka.pid"
}

case "${1:-}" in
    start) start "${2:-}" ;;
    stop) stop "${2:-}" ;;
    resume) resume "${2:-}" ;;
    jars) ensure_jars; echo "$LIBS" ;;
    *) echo "usage: $0 start DIR | stop DIR | resume DIR | jars" >&2; exit 2 ;;
esac
