"""``firstvalue run`` for a team's own data: ``--no-demo`` on an empty database with one
custom plan serves, takes a registration and events through the HTTP ingest, and the
console (in a real Chromium) shows them; with only custom plans the demo is built on them;
a refused plan is one line, never a traceback."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By

from .browser import chromium
from .test_cli_run import ROOT, SERVE_DEADLINE, _free_port, _wait_serving

pytestmark = pytest.mark.e2e

SMB = ROOT / "shared" / "default_plans" / "smb.yaml"
TEAM_KEY = "team-segment-key"


def _custom_plan(folder: Path, key: str, segment: str) -> Path:
    """The packaged SMB plan under another key, segment and title: a team's own plan."""
    text = SMB.read_text()
    text = text.replace("key: smb\n", f"key: {key}\n", 1)
    text = text.replace("segment: smb\n", f"segment: {segment}\n", 1)
    text = text.replace("title: SMB self-serve onboarding\n", f"title: {key.title()} plan\n", 1)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.yaml"
    path.write_text(text)
    return path


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "FIRSTVALUE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'team.db'}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "COLUMNS": "200",
        **extra,
    }
    for name in ("FIRSTVALUE_KAFKA_BOOTSTRAP_SERVERS", "FIRSTVALUE_API_KEYS", "FIRSTVALUE_PLANS"):
        if name not in extra:
            env.pop(name, None)
    return env


def _start(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "firstvalue", "run", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        raise AssertionError(f"firstvalue run did not stop on SIGINT:\n{output}") from None
    assert process.returncode == 0, output
    assert "Traceback" not in output
    return output


def _track(account: str, user: str, event: str, at: datetime, **props: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": event,
        "properties": {"account_id": account, **props},
        "context": {"groupId": account},
        "messageId": str(uuid.uuid4()),
        "timestamp": at.isoformat(timespec="milliseconds"),
    }


def _poll(check: Any, what: str, deadline: float = 30) -> Any:
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        found = check()
        if found:
            return found
        time.sleep(0.1)  # poll interval, bounded by the deadline
    raise AssertionError(f"not seen within {deadline}s: {what}")


def test_no_demo_serves_a_teams_own_onboardings_in_the_console(tmp_path: Path) -> None:
    plan = _custom_plan(tmp_path / "plans", "starter", "self_serve")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = _env(tmp_path, FIRSTVALUE_PLANS=str(plan), FIRSTVALUE_SEGMENT_WRITE_KEYS=TEAM_KEY)
    process = _start(tmp_path, env, "--no-demo", "--port", str(port))
    try:
        _wait_serving(process, url, SERVE_DEADLINE)
        key = (tmp_path / ".firstvalue-key").read_text().strip()
        auth = {"Authorization": f"Bearer {key}"}
        empty = httpx.get(f"{url}/v1/onboardings", headers=auth, timeout=10).json()
        assert empty == {"items": [], "next_cursor": None}  # no demo data
        signed = datetime.now(UTC) - timedelta(days=3)
        registered = httpx.post(
            f"{url}/v1/onboardings",
            json={
                "account_id": "acme-team",
                "plan": "starter",
                "signed_at": signed.isoformat(),
                "csm": "Our Own CSM",
                "account_name": "Acme Team",
            },
            headers=auth,
            timeout=10,
        )
        assert registered.status_code == 201, registered.text
        acme = registered.json()["onboarding"]["onboarding_id"]
        batch = [  # a registration through the ingest, and events for both accounts
            _track(
                "globex", "g-admin", "Contract Signed", signed, plan="starter", csm="Our Own CSM"
            ),
            _track("acme-team", "a-admin", "Kickoff Call Completed", signed + timedelta(days=1)),
            _track("globex", "g-admin", "Kickoff Call Completed", signed + timedelta(days=2)),
        ]
        basic = base64.b64encode(f"{TEAM_KEY}:".encode()).decode()
        sent = httpx.post(
            f"{url}/v1/batch",
            json={"batch": batch},
            headers={"Authorization": f"Basic {basic}"},
            timeout=10,
        )
        assert sent.status_code == 200, sent.text
        refused = httpx.post(
            f"{url}/v1/batch", json={"batch": batch}, auth=("someone-else", ""), timeout=10
        )
        assert refused.status_code == 401  # only the team's write key

        def both_kicked_off() -> list[dict[str, Any]] | None:
            items = httpx.get(f"{url}/v1/onboardings", headers=auth, timeout=10).json()["items"]
            done = [
                i
                for i in items
                if next(
                    m
                    for m in httpx.get(
                        f"{url}/v1/onboardings/{i['onboarding_id']}", headers=auth, timeout=10
                    ).json()["milestones"]
                    if m["key"] == "kickoff_call"
                )["progress"]
                == "complete"
            ]
            return items if len(done) == 2 else None

        items = _poll(both_kicked_off, "both onboardings kicked off")
        assert {i["plan_key"] for i in items} == {"starter"}
        with chromium() as browser:
            browser.open(f"{url}/login")
            browser.driver.find_element(By.ID, "key").send_keys(key)
            browser.driver.find_element(By.ID, "sign-in").click()
            browser.wait_for(lambda: browser.driver.find_element(By.ID, "who"), "signed in")
            cards = browser.driver.find_elements(By.CSS_SELECTOR, "section.group")
            assert [c.get_attribute("data-group") for c in cards] == ["self_serve"]
            browser.open(f"{url}/queue")
            rows = browser.driver.find_elements(By.CSS_SELECTOR, "#queue tbody tr[data-onboarding]")
            assert {r.get_attribute("data-onboarding") for r in rows} == {
                i["onboarding_id"] for i in items
            }
            assert "Acme Team" in browser.driver.find_element(By.ID, "queue").text
            browser.open(f"{url}/onboardings/{acme}")
            kickoff = browser.driver.find_element(
                By.CSS_SELECTOR, '#milestones tr[data-milestone="kickoff_call"]'
            )
            assert kickoff.get_attribute("data-progress") == "complete"
            assert "1 event(s)" in kickoff.text
            assert browser.requested and not browser.outside(url), browser.outside(url)
    finally:
        output = _stop(process)
    assert "no demo" in output and key in output and f"{url}/v1/batch" in output


def test_run_builds_its_demo_on_custom_plans(tmp_path: Path) -> None:
    plans = tmp_path / "plans"
    _custom_plan(plans, "starter", "self_serve")
    _custom_plan(plans, "scale", "growth")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    process = _start(tmp_path, _env(tmp_path, FIRSTVALUE_PLANS=str(plans)), "--port", str(port))
    try:
        _wait_serving(process, url, SERVE_DEADLINE)
        key = (tmp_path / ".firstvalue-demo-key").read_text().strip()
        report = httpx.get(
            f"{url}/v1/reports/ttfv", headers={"Authorization": f"Bearer {key}"}, timeout=10
        ).json()
        groups = {g["group"]: g["onboardings"] for g in report["groups"]}
        assert set(groups) == {"growth", "self_serve"}
        assert sum(groups.values()) == 320 and abs(groups["growth"] - groups["self_serve"]) <= 1
    finally:
        _stop(process)


@pytest.mark.parametrize("command", [["run"], ["run", "--no-demo"], ["api"]])
def test_a_refused_plan_is_one_line_not_a_traceback(tmp_path: Path, command: list[str]) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        SMB.read_text().replace("first_value: first_report_delivered", "first_value: nowhere")
    )
    result = subprocess.run(
        [sys.executable, "-m", "firstvalue", *command, "--port", str(_free_port())],
        cwd=tmp_path,
        env=_env(tmp_path, FIRSTVALUE_PLANS=str(broken)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Plans refused:") and "broken.yaml" in lines[0]
