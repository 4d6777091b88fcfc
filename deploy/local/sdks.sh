#!/usr/bin/env bash
# The official Node and Go SDKs that tests/e2e/test_sdk_node.py and test_sdk_go.py drive
# against firstvalue's HTTP ingest: @segment/analytics-node and mixpanel (npm), and a small
# driver built on Segment's analytics-go/v3 (Go module proxy). Everything lands in .cache/sdks
# (ignored, like the Kafka jars):
#
#   deploy/local/sdks.sh install   # idempotent: a no-op when installed
#   deploy/local/sdks.sh check     # exit 0 when both are installed
#
# Without node/npm or go on PATH it says so and exits 1; the tests then skip locally and fail
# under CI=true.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
DEST="$REPO/.cache/sdks"
NODE_DIR="$DEST/node"
GO_DIR="$DEST/go"

log() { echo "sdks.sh: $*" >&2; }

node_ok() { [[ -f "$NODE_DIR/node_modules/.installed" ]] && cmp -s "$HERE/sdks/package.json" "$NODE_DIR/package.json"; }
go_ok() { [[ -x "$GO_DIR/bin/segment-go-driver" ]] && cmp -s "$HERE/sdks/go/main.go" "$GO_DIR/src/main.go"; }

install_node() {
    node_ok && return 0
    command -v npm >/dev/null || { log "npm not found"; return 1; }
    mkdir -p "$NODE_DIR"
    cp "$HERE/sdks/package.json" "$NODE_DIR/package.json"
    (cd "$NODE_DIR" && npm install --no-audit --no-fund --loglevel=error --cache "$DEST/npm-cache" >&2)
    touch "$NODE_DIR/node_modules/.installed"
    log "node SDKs installed in $NODE_DIR"
}

install_go() {
    go_ok && return 0
    command -v go >/dev/null || { log "go not found"; return 1; }
    mkdir -p "$GO_DIR/src" "$GO_DIR/bin"
    cp "$HERE/sdks/go/main.go" "$HERE/sdks/go/go.mod" "$GO_DIR/src/"
    [[ -f "$HERE/sdks/go/go.sum" ]] && cp "$HERE/sdks/go/go.sum" "$GO_DIR/src/"
    (
        cd "$GO_DIR/src"
        export GOPATH="$GO_DIR/gopath" GOMODCACHE="$GO_DIR/gopath/pkg/mod" GOCACHE="$GO_DIR/gocache"
        export GOFLAGS=-mod=mod
        go mod tidy >&2
        go build -o "$GO_DIR/bin/segment-go-driver" . >&2
    )
    log "Go driver built: $GO_DIR/bin/segment-go-driver"
}

case "${1:-install}" in
    install) rc=0; install_node || rc=1; install_go || rc=1; exit "$rc" ;;
    check) node_ok && go_ok ;;
    *) echo "usage: $0 install|check" >&2; exit 2 ;;
esac
