#!/usr/bin/env bash
# Debian's headless Chromium and its WebDriver, for the console's browser tests
# (tests/browser, driven by Selenium).
#
#   deploy/local/chromium.sh install   # idempotent: a no-op (milliseconds) when installed
#   deploy/local/chromium.sh check     # exit 0 when chromium and chromedriver are on PATH
#
# Why this way: the tests need a real browser and no download of a browser build of its own;
# Debian packages both. Without them the browser tests skip locally and fail under CI=true.
set -euo pipefail

log() { echo "chromium.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

installed() { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }

SUDO=()
need_root() {
    if [[ "$(id -u)" != 0 ]]; then
        command -v sudo >/dev/null ||
            die "Chromium is not installed; run as root: apt-get install -y chromium chromium-driver"
        SUDO=(sudo)
    fi
}

apt_install() {
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends chromium chromium-driver fonts-dejavu-core >&2
}

install() {
    if installed; then
        return 0
    fi
    need_root
    local t0=$SECONDS
    log "chromium/chromedriver missing; installing Debian's chromium and chromium-driver ..."
    # The package lists may be missing or stale on a fresh machine: update, then install.
    { "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 && apt_install; } ||
        die "apt-get install chromium chromium-driver failed"
    installed || die "installed the packages but found no chromium/chromedriver on PATH"
    log "installed $(chromium --version 2>/dev/null | head -n 1) in $((SECONDS - t0)) s"
}

case "${1:-}" in
    install) install ;;
    check) installed ;;
    *) echo "usage: $0 install | check" >&2; exit 2 ;;
esac
