"""The official ``segment-analytics-python`` client, unchanged, against a real uvicorn server
of the app (SQLite and PostgreSQL): every call type is accepted first time (no ``on_error``,
no retried request) and moves milestones; failures come back in the shape the SDK parses
into ``APIError`` and are not retried."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from segment.analytics.client import Client
from segment.analytics.request import APIError, post

from shared.analytics.registration import onboarding_id_for

from .live_server import LiveServer, completed_milestone, live_server, wait_stored
from .stack import BACKENDS

pytestmark = pytest.mark.e2e

WRITE_KEY = "wk_sdk_e2e"


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    directory: Path = tmp_path_factory.mktemp("sdk-segment")
    with live_server(
        request.param, directory, segment_write_keys=WRITE_KEY, timer_interval_seconds=3600
    ) as running:
        yield running


def _client(server: LiveServer, key: str, errors: list[Any], **options: Any) -> Client:
    return Client(
        key, host=server.url, on_error=lambda error, batch: errors.append(error),
        upload_interval=0.05, max_retries=3, **options,
    )  # fmt: skip


def _basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def test_every_call_type_is_accepted_first_time_and_moves_a_milestone(server: LiveServer) -> None:
    errors: list[Any] = []
    client = _client(server, WRITE_KEY, errors, gzip=True)
    before = len(server.requests("/v1/batch"))
    account, user = f"acct_{uuid.uuid4().hex[:8]}", f"user_{uuid.uuid4().hex[:8]}"
    signed = datetime.now(UTC) - timedelta(hours=2)
    sent = [
        client.identify(user, {"email": "ada@park.example"}, timestamp=signed),
        client.group(user, account, {"name": "Park Industries"}, timestamp=signed),
        client.track(user, "Contract Signed", {"plan": "smb", "csm": "Avery Chen",
                                               "licensed_seats": 10}, timestamp=signed),
        client.page(user, "Docs", "Getting started", {"path": "/docs"}),
        client.screen(user, "Onboarding", "Welcome"),
        client.alias(f"anon_{user}", user),
        client.track(user, "Kickoff Call Completed", {}, timestamp=signed + timedelta(hours=1)),
    ]  # fmt: skip
    client.flush()
    client.join()
    assert errors == []
    assert all(queued for queued, _ in sent)
    requests = server.requests("/v1/batch")[before:]
    assert requests and all(r.status == 200 for r in requests)
    assert not [r for r in requests if "x-retry-count" in r.headers]  # nothing was retried
    assert all(r.headers["authorization"] == _basic(WRITE_KEY) for r in requests)

    kickoff = sent[-1][1]["messageId"]
    done = completed_milestone(server, onboarding_id_for(account, "smb"), "kickoff_call")
    assert kickoff in done["evidence"]["event_ids"]
    usage = {message["messageId"] for _, message in sent[2:5]} | {kickoff}
    stored = wait_stored(server, account, usage)
    names = {e.id: e.name for e in stored}
    assert names[sent[3][1]["messageId"]] == "Page Viewed"
    assert names[sent[4][1]["messageId"]] == "Screen Viewed"


def test_an_unknown_write_key_is_reported_once_through_on_error_and_not_retried(
    server: LiveServer,
) -> None:
    errors: list[Any] = []
    client = _client(server, "wk_wrong", errors)
    client.track("user_x", "Logged In", {})
    client.flush()
    client.join()
    assert len(errors) == 1 and isinstance(errors[0], APIError)
    assert (errors[0].status, errors[0].code) == (401, "unauthorized")
    refused = [r for r in server.requests("/v1/batch") if r.headers.get("authorization")
               == _basic("wk_wrong")]  # fmt: skip
    assert [r.status for r in refused] == [401]


def test_oversize_message_and_batch_come_back_as_the_sdks_api_error(server: LiveServer) -> None:
    def message(size: int) -> dict[str, Any]:
        return {"type": "track", "userId": "u1", "event": "Logged In",
                "messageId": str(uuid.uuid4()), "properties": {"blob": "x" * size}}  # fmt: skip

    with pytest.raises(APIError) as one:
        post(WRITE_KEY, host=server.url, batch=[message(33_000)])
    assert (one.value.status, one.value.code) == (400, "invalid_request")
    assert "32768 bytes" in one.value.message
    with pytest.raises(APIError) as whole:
        post(WRITE_KEY, host=server.url, gzip=True, batch=[message(18_000) for _ in range(30)])
    assert (whole.value.status, whole.value.code) == (400, "invalid_request")
    assert "500 KB" in whole.value.message
