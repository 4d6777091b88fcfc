"""``firstvalue run`` as a user runs it: a subprocess on a fresh SQLite file and a free port,
serving the demo within the deadline, answering plainly, and stopping cleanly on Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from segment.analytics.client import Client

from shared.analytics.registration import onboarding_id_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SERVE_DEADLINE = 180.0  # seconds; `make run` targets under 60 on a 2-core machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_serving(process: subprocess.Popen[str], url: str, deadline: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < deadline:
        if process.poll() is not None:
            raise AssertionError(f"firstvalue run exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.2)  # poll interval between readiness probes, bounded by the deadline
    raise AssertionError(f"firstvalue run was not serving after {deadline}s")


def _official_sdk_moves_a_milestone(url: str, auth: dict[str, str], write_key: str) -> None:
    """segment-analytics-python, pointed at the embedded server, registers and kicks off."""
    refused = httpx.post(f"{url}/v1/track", json={"userId": "u", "event": "x"}, timeout=10)
    assert refused.status_code == 401  # the demo's ingest takes its own write key only
    errors: list[object] = []
    client = Client(
        write_key,
        host=url,
        sync_mode=True,
        gzip=True,
        max_retries=0,
        on_error=lambda error, _: errors.append(error),
    )
    account, user = f"acct_sdk_{uuid.uuid4().hex[:8]}", f"user_sdk_{uuid.uuid4().hex[:8]}"
    signed = datetime.now(UTC) - timedelta(minutes=10)
    client.group(user, account, {"name": "SDK Corp"}, timestamp=signed)
    client.track(
        user,
        "Contract Signed",
        {"plan": "smb", "csm": "Avery Chen", "licensed_seats": 10},
        timestamp=signed,
    )
    client.track(user, "Kickoff Call Completed", {}, timestamp=signed + timedelta(minutes=5))
    assert not errors, errors
    detail_url = f"{url}/v1/onboardings/{onboarding_id_for(account, 'smb')}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = httpx.get(detail_url, headers=auth, timeout=10)
        if response.status_code == 200:
            kickoff = next(m for m in response.json()["milestones"] if m["key"] == "kickoff_call")
            if kickoff["progress"] == "complete":
                return
        time.sleep(0.1)  # poll interval, bounded by the deadline
    raise AssertionError(f"the SDK's kickoff did not complete: {response.text}")


def test_run_serves_the_demo_and_explains_a_tasks_done_no_value_account(
    tmp_path: Path,
) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "FIRSTVALUE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "COLUMNS": "200",
    }
    env.pop("FIRSTVALUE_KAFKA_BOOTSTRAP_SERVERS", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "firstvalue", "run", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_serving(process, url, SERVE_DEADLINE)
        key = (tmp_path / ".firstvalue-demo-key").read_text().strip()
        auth = {"Authorization": f"Bearer {key}"}
        listing = httpx.get(f"{url}/v1/onboardings?limit=200", headers=auth, timeout=10).json()
        assert len(listing["items"]) == 200 and listing["next_cursor"]
        at_risk = httpx.get(
            f"{url}/v1/onboardings?at_risk=true&breach=severe", headers=auth, timeout=10
        )
        example = at_risk.json()["items"][0]["onboarding_id"]
        detail = httpx.get(f"{url}/v1/onboardings/{example}", headers=auth, timeout=10).json()
        assert detail["tasks_done_no_value"] is True
        assert detail["first_value"]["reached"] is False
        assert "first value" in detail["summary"] and "missing" in detail["summary"]
        tasks = [m for m in detail["milestones"] if m["kind"] == "task"]
        assert tasks and all(m["progress"] == "complete" for m in tasks)
        write_key = (tmp_path / ".firstvalue-demo-write-key").read_text().strip()
        _official_sdk_moves_a_milestone(url, auth, write_key)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
            raise AssertionError(f"firstvalue run did not stop on SIGINT:\n{output}") from None
    assert process.returncode == 0, output
    assert f"serving on {url}" in output
    assert key in output and write_key in output and f"/v1/onboardings/{example}" in output
    assert "firstvalue stopped" in output
    assert "Traceback" not in output


def test_migrate_then_api_serves_with_a_bootstrap_key(tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "FIRSTVALUE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'api.db'}",
        "FIRSTVALUE_API_KEYS": "ops:read:ops-secret-key",
        "FIRSTVALUE_INGEST_AUTH": "open",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    env.pop("FIRSTVALUE_KAFKA_BOOTSTRAP_SERVERS", None)
    command = [sys.executable, "-m", "firstvalue"]
    migrated = subprocess.run(
        [*command, "migrate"], cwd=tmp_path, env=env, text=True, capture_output=True, timeout=120
    )
    assert migrated.returncode == 0, migrated.stderr
    process = subprocess.Popen(
        [*command, "api", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_serving(process, url, 60)
        listing = httpx.get(
            f"{url}/v1/onboardings", headers={"Authorization": "Bearer ops-secret-key"}, timeout=10
        )
        assert listing.status_code == 200 and listing.json() == {"items": [], "next_cursor": None}
        ingest = httpx.post(f"{url}/v1/track", json={"userId": "u", "event": "x"}, timeout=10)
        assert ingest.status_code == 503 and "KAFKA" in ingest.json()["message"]
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
