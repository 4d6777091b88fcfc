"""Segment's official Go SDK (``analytics-go/v3``), unchanged, against a real uvicorn server of
the app (SQLite and PostgreSQL): a full smb onboarding sent through it is accepted with no
failure reported to the SDK's callback, and the onboarding reaches first value with those
events as its evidence; a wrong write key is reported to the callback as a failure."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.analytics.registration import onboarding_id_for

from .live_server import LiveServer, completed_milestone, live_server
from .sdk_journey import GO_DRIVER, journey, require, run_driver
from .stack import BACKENDS

pytestmark = pytest.mark.e2e

WRITE_KEY = "wk_go_e2e"


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    require(GO_DRIVER, "the analytics-go driver")
    directory: Path = tmp_path_factory.mktemp("sdk-go")
    with live_server(
        request.param, directory, segment_write_keys=WRITE_KEY, timer_interval_seconds=3600
    ) as running:
        yield running


def _send(server: LiveServer, key: str, messages: list[dict[str, object]]) -> list[dict[str, str]]:
    stdin = "".join(json.dumps(m) + "\n" for m in messages)
    out = run_driver([str(GO_DRIVER), server.url, key], stdin)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_analytics_go_sends_an_smb_onboarding_to_first_value(server: LiveServer) -> None:
    account, user = f"acct_{uuid.uuid4().hex[:8]}", f"user_{uuid.uuid4().hex[:8]}"
    messages: list[dict[str, object]] = [
        {"type": "group", "userId": user, "groupId": account, "messageId": f"{account}-g",
         "traits": {"name": "Park"}, "timestamp": journey()[0][2].isoformat()},
    ]  # fmt: skip
    for event, properties, at in journey():
        messages.append({"type": "track", "userId": user, "event": event, "properties":
                         properties, "timestamp": at.isoformat(),
                         "messageId": f"{account}-{event}"})  # fmt: skip
    results = _send(server, WRITE_KEY, messages)
    assert [r for r in results if "error" in r] == []
    assert len(results) == len(messages)  # one success per message
    done = completed_milestone(server, onboarding_id_for(account, "smb"), "first_report_delivered")
    assert done["evidence"]["event_ids"] == [f"{account}-Report Delivered"]


def test_a_wrong_write_key_is_reported_to_the_callback(server: LiveServer) -> None:
    message = {"type": "track", "userId": "u", "event": "Logged In", "messageId": "go-wrong",
               "timestamp": journey()[0][2].isoformat()}  # fmt: skip
    results = _send(server, "wk_wrong", [message])
    assert results and all("error" in r for r in results)
    assert any("401" in r["error"] for r in results)
