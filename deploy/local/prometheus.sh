#!/usr/bin/env bash
# Debian's Prometheus server and promtool, for `make test` (promtool check rules/metrics and
# an integration test that runs a real Prometheus against the API).
#
#   deploy/local/prometheus.sh install   # idempotent: a no-op (milliseconds) when installed
#   deploy/local/prometheus.sh check     # exit 0 when prometheus and promtool are on PATH
#
# Why this way: no Docker here, but Debian packages Prometheus. The tests run their own server
# on a free loopback port with their own config, so the package's system service must not
# run: the install keeps it from starting (policy-rc.d) and stops and disables it if it did.
# Recommends (node exporter, another service on :9100) are not installed.
set -euo pipefail

log() { echo "prometheus.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

installed() { command -v prometheus >/dev/null && command -v promtool >/dev/null; }

SUDO=()
need_root() {
    if [[ "$(id -u)" != 0 ]]; then
        command -v sudo >/dev/null ||
            die "Prometheus is not installed; run as root: apt-get install -y prometheus"
        SUDO=(sudo)
    fi
}

# The package starts prometheus.service (systemd) or /etc/init.d/prometheus at install unless
# policy-rc.d forbids it; one is written for the install's duration when none exists.
install_quietly() {
    local policy=/usr/sbin/policy-rc.d ours=""
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\n# written by firstvalue deploy/local/prometheus.sh during an install\nexit 101\n' |
            "${SUDO[@]}" tee "$policy" >/dev/null
        "${SUDO[@]}" chmod 755 "$policy"
        ours=1
    fi
    local rc=0
    {
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 &&
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends -o Dpkg::Options::=--force-confdef \
            -o Dpkg::Options::=--force-confold prometheus >&2
    } || rc=$?
    [[ -n "$ours" ]] && "${SUDO[@]}" rm -f "$policy"
    return "$rc"
}

# Whatever the init system, the packaged service stays stopped and off at boot.
stop_system_service() {
    if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
        "${SUDO[@]}" systemctl disable --now prometheus.service >/dev/null 2>&1 || true
    else  # no systemd running (a container): what `systemctl disable` would remove
        "${SUDO[@]}" rm -f /etc/systemd/system/multi-user.target.wants/prometheus.service
    fi
    if [[ -x /etc/init.d/prometheus ]]; then
        "${SUDO[@]}" /etc/init.d/prometheus stop >/dev/null 2>&1 || true
        command -v update-rc.d >/dev/null &&
            "${SUDO[@]}" update-rc.d prometheus disable >/dev/null 2>&1 || true
    fi
}

install() {
    if installed; then
        return 0
    fi
    need_root
    local t0=$SECONDS
    log "prometheus/promtool missing; installing Debian's prometheus package ..."
    install_quietly || die "apt-get install prometheus failed"
    stop_system_service
    installed || die "installed the package but found no prometheus/promtool on PATH"
    log "installed $(prometheus --version 2>&1 | head -n 1) in $((SECONDS - t0)) s"
}

case "${1:-}" in
    install) install ;;
    check) installed ;;
    *) echo "usage: $0 install | check" >&2; exit 2 ;;
esac
