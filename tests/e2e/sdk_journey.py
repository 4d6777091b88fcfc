"""What the SDK tests send and need: one smb onboarding's events up to first value (in
time order, hours apart, all in the past), and the Node and Go SDK installs
(``deploy/local/sdks.sh``: skipped locally without them, a failure under ``CI=true``)."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from shared.storage.events import EventRepository

from .live_server import LiveServer

REPO = Path(__file__).resolve().parents[2]
SDKS = REPO / ".cache" / "sdks"
NODE_MODULES = SDKS / "node" / "node_modules"
GO_DRIVER = SDKS / "go" / "bin" / "segment-go-driver"
DRIVERS = Path(__file__).with_name("sdk_drivers")

# Contract Signed starts the clock; the kickoff and setup gates open the first-value stage,
# where Report Delivered is the smb plan's first-value milestone.
SMB_FIRST_VALUE: list[tuple[str, dict[str, Any]]] = [
    ("Contract Signed", {"plan": "smb", "csm": "Avery Chen", "licensed_seats": 10}),
    ("Kickoff Call Completed", {}),
    ("Success Criteria Agreed", {}),
    ("Executive Sponsor Named", {}),
    ("Integration Connected", {"source": "salesforce"}),
    ("Data Sync Completed", {"status": "success"}),
    ("Workflow Run", {"environment": "production"}),
    ("Report Delivered", {"report": "weekly pipeline"}),
]


def journey(start: datetime | None = None) -> list[tuple[str, dict[str, Any], datetime]]:
    """The smb events with their times: an hour apart, ending an hour ago."""
    first = start or datetime.now(UTC) - timedelta(hours=len(SMB_FIRST_VALUE) + 1)
    return [(e, dict(p), first + timedelta(hours=n)) for n, (e, p) in enumerate(SMB_FIRST_VALUE)]


def require(path: Path, what: str) -> Path:
    """``path``, or skip (locally) / fail (under CI) when the SDK install is missing."""
    if path.exists():
        return path
    message = f"{what} is not installed: run deploy/local/sdks.sh install (make test does)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def run_driver(command: list[str], stdin: str, timeout: float = 60) -> str:
    """Run an SDK driver to completion; its stdout (stderr in the failure)."""
    env = {**os.environ, "NODE_PATH": str(NODE_MODULES)}
    done = subprocess.run(
        command, input=stdin.encode(), capture_output=True, timeout=timeout, env=env, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def account_events(server: LiveServer, account: str) -> dict[str, str]:
    """The account's stored events: id → name."""

    async def read(session: AsyncSession) -> dict[str, str]:
        return {e.id: e.name for e in await EventRepository(session).for_account(account)}

    return server.call(read)
