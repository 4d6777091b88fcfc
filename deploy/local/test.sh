#!/usr/bin/env bash
# The whole check, as `make test` and CI run it: lint (ruff check, ruff format --check, mypy),
# then pytest (unit, integration, e2e)
# against a real PostgreSQL and Kafka started by with-servers.sh (stopped afterwards, pass or
# fail), and Debian's Prometheus (prometheus.sh install): pytest runs `promtool check rules`,
# `promtool test rules`, `promtool check metrics` on real scrapes and a real Prometheus server
# (tests/integration/test_prometheus*.py, test_metrics*.py). Arguments go to pytest:
# deploy/local/test.sh -k ttfv -x
# pytest runs even when lint finds problems, so one run shows both; the exit code is non-zero
# when either failed (pytest's own code when it failed; 5 means it collected no tests).
# Expects .venv (make venv).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
cd "$REPO"

[[ -x .venv/bin/python ]] || { echo "test.sh: no .venv; run: make venv" >&2; exit 2; }

STATUS="$(mktemp)"
trap 'rm -f "$STATUS"' EXIT
export FIRSTVALUE_TEST_STATUS_FILE="$STATUS"

t0=$SECONDS
# promtool and a Prometheus server for the alerting tests (Debian's package; a no-op when
# installed). Without them those tests skip locally and fail under CI=true.
bash "$HERE/prometheus.sh" install ||
    echo "test.sh: Prometheus not installed; its tests will skip (fail under CI=true)" >&2
bash "$HERE/chromium.sh" install || echo "test.sh: Chromium not installed; the browser tests will skip (fail under CI=true)" >&2
bash "$HERE/sdks.sh" install || echo "test.sh: Node/Go SDKs not installed; their tests will skip (fail under CI=true)" >&2
rc=0
bash "$HERE/with-servers.sh" bash -c '
    set -u
    echo "== lint: ruff check, ruff format --check, mypy" >&2
    .venv/bin/ruff check . && .venv/bin/ruff format --check . &&
        .venv/bin/mypy shared services firstvalue; ruff_rc=$?
    echo "== pytest $*" >&2
    .venv/bin/python -m pytest "$@"; pytest_rc=$?
    echo "$ruff_rc $pytest_rc" > "$FIRSTVALUE_TEST_STATUS_FILE"
    if (( pytest_rc != 0 )); then exit "$pytest_rc"; fi
    exit "$ruff_rc"
' test.sh "$@" || rc=$?

read -r ruff_rc pytest_rc < "$STATUS" || { ruff_rc="-" pytest_rc="-"; }
echo "test.sh: $( ((rc == 0)) && echo OK || echo FAILED ) (lint exit $ruff_rc, pytest exit $pytest_rc) in $((SECONDS - t0)) s, servers included"
exit "$rc"
