"""The servers a bench talks to: those ``deploy/local/with-servers.sh`` starts (named by
``FIRSTVALUE_TEST_*`` variables), a free port for a process a bench starts itself, and that
process's environment."""

from __future__ import annotations

import os
import secrets
import socket
import sys
from collections.abc import Mapping

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
