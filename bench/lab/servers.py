"""The servers a bench talks to: those ``deploy/local/with-servers.sh`` starts (named by
``FIRSTVALUE_TEST_*`` variables), and a free port for the API process a bench starts itself."""

from __future__ import annotations

import os
import socket
import sys


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"{name} is not set: run through deploy/local/with-servers.sh (make bench)")
    return value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
