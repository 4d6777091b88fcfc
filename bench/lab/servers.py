"""The servers a bench talks to: those ``deploy/local/with-servers.sh`` starts (named by
``FIRSTVALUE_TEST_*`` variables), a free port for a process a bench starts itself, and that
process's environment, and waiting until that process is ready."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Mapping

import httpx

# Kept from the bench's own environment for the services it starts: with-servers.sh declares
# its PostgreSQL disposable (fsync off), which the services refuse to start on otherwise.
KEPT_SETTINGS = ("FIRSTVALUE_ALLOW_NON_DURABLE_DATABASE",)


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"{name} is not set: run through deploy/local/with-servers.sh (make bench)")
    return value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_environment(settings: Mapping[str, str]) -> dict[str, str]:
    """The environment of a ``firstvalue`` process a bench starts: ``settings`` as its only
    ``FIRSTVALUE_*`` variables besides ``KEPT_SETTINGS``; ingest open to any sender (a
    generated write key is configured, so a service that requires one starts)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FIRSTVALUE_")}
    environment |= {k: os.environ[k] for k in KEPT_SETTINGS if k in os.environ}
    environment |= {
        "FIRSTVALUE_INGEST_AUTH": "open",
        "FIRSTVALUE_SEGMENT_WRITE_KEYS": "bench_" + secrets.token_urlsafe(12),
    }
    return environment | dict(settings)


def wait_ready(
    base: str,
    process: subprocess.Popen[bytes],
    what: str,
    deadline: float = 60.0,
    interval: float = 0.2,
) -> None:
    """Until ``base``'s ``/readyz`` answers 200; exits the bench with ``process``'s stderr
    if it dies first, or once ``deadline`` seconds have passed (``what`` names it)."""
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        if process.poll() is not None:
            errors = process.stderr.read().decode() if process.stderr else ""
            sys.exit(f"{what} exited: {errors}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(interval)
    sys.exit(f"{what} did not become ready in time")
