"""Segment-compatible HTTP ingest, end to end: a message posted to /v1/batch or /v1/track
moves a milestone (bus → ingest → milestones → API); bad input gets Segment's 400 shape."""

from __future__ import annotations

import asyncio
import base64
import gzip
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio

from shared.analytics.registration import onboarding_id_for
from shared.bus import topics
from shared.plan_files import default_plans
from shared.storage.events import EventRepository

from .stack import BACKENDS, Stack, api_stack, fresh_database

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

WRITE_KEY = "wk_e2e_test"
RUDDER_KEY = "wk_e2e_rudder"  # declared a RudderStack source: RudderStack's limits
PLAN = default_plans()["smb"]


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    directory: Path = tmp_path_factory.mktemp("segment")
    async with (
        fresh_database(request.param, directory) as url,
        api_stack(
            url,
            segment_write_keys=WRITE_KEY,
            rudderstack_write_keys=RUDDER_KEY,
            timer_interval_seconds=3600,
        ) as running,
    ):
        yield running


def _basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def _milestone_for(event: str) -> str:
    return next(m.key for m in PLAN.milestones if m.rule and event in m.rule.events)


def _message(kind: str, user: str, minutes_ago: float = 5, **fields: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "userId": user,
        "messageId": str(uuid.uuid4()),
        "timestamp": (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat(),
        **fields,
    }


def _signup(account: str, user: str) -> list[dict[str, Any]]:
    return [
        _message("identify", user, traits={"name": "Ada Park", "email": "ada@park.example"}),
        _message("group", user, groupId=account, traits={"name": "Park Industries"}),
        _message(
            "track",
            user,
            event="Contract Signed",
            properties={
                "plan": "smb",
                "csm": "Avery Chen",
                "champion_user_id": user,
                "licensed_seats": 10,
                "account_name": "Park Industries",
            },
        ),
    ]


async def _milestone(stack: Stack, onboarding_id: str, key: str, deadline: float = 30) -> dict:
    """Poll the API until the milestone completes (the consumers run on this loop)."""
    until = time.monotonic() + deadline
    last: Any = None
    while time.monotonic() < until:
        response = await stack.client.get(f"/v1/onboardings/{onboarding_id}", headers=stack.auth())
        if response.status_code == 200:
            last = next(m for m in response.json()["milestones"] if m["key"] == key)
            if last["progress"] == "complete":
                return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{key} of {onboarding_id} did not complete in {deadline}s: {last}")


async def test_batch_with_basic_write_key_moves_a_milestone_end_to_end(stack: Stack) -> None:
    account, user = f"acct_{uuid.uuid4().hex[:8]}", f"user_{uuid.uuid4().hex[:8]}"
    kickoff = _message("track", user, 1, event="Kickoff Call Completed", properties={})
    response = await stack.client.post(
        "/v1/batch",
        json={"batch": [*_signup(account, user), kickoff], "sentAt": datetime.now(UTC).isoformat()},
        headers=_basic(WRITE_KEY),
    )
    assert response.status_code == 200
    assert response.json() == {"success": True}
    done = await _milestone(
        stack, onboarding_id_for(account, "smb"), _milestone_for("Kickoff Call Completed")
    )
    assert kickoff["messageId"] in done["evidence"]["event_ids"]


async def test_single_track_with_body_write_key_and_gzip_is_accepted(stack: Stack) -> None:
    account, user = f"acct_{uuid.uuid4().hex[:8]}", f"user_{uuid.uuid4().hex[:8]}"
    signup = await stack.client.post(
        "/v1/batch", json={"batch": _signup(account, user), "writeKey": WRITE_KEY}
    )
    assert signup.status_code == 200, signup.text
    track = _message(
        "track", user, 1, event="Success Criteria Agreed", properties={}, writeKey=WRITE_KEY
    )
    track.pop("type")  # the endpoint says what it is
    response = await stack.client.post(
        "/v1/track",
        content=gzip.compress(orjson.dumps(track)),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    done = await _milestone(
        stack, onboarding_id_for(account, "smb"), _milestone_for("Success Criteria Agreed")
    )
    assert track["messageId"] in done["evidence"]["event_ids"]


@pytest.mark.parametrize(
    "path", ["/v1/batch", "/v1/track", "/v1/identify", "/v1/group", "/v1/page"]
)
async def test_invalid_json_is_400_in_segments_shape(stack: Stack, path: str) -> None:
    response = await stack.client.post(path, content=b"{not json", headers=_basic(WRITE_KEY))
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_request" and "JSON" in body["message"]


async def test_message_over_32_kb_is_400(stack: Stack) -> None:
    big = _message("track", "u1", event="Page Viewed", properties={"blob": "x" * 33_000})
    for path, payload in (("/v1/track", big), ("/v1/batch", {"batch": [big]})):
        response = await stack.client.post(path, json=payload, headers=_basic(WRITE_KEY))
        assert response.status_code == 400, path
        assert response.json()["code"] == "invalid_request"


async def test_batch_over_500_kb_is_400(stack: Stack) -> None:
    items = [
        _message("track", "u1", event="Page Viewed", properties={"blob": "x" * 20_000})
        for _ in range(30)
    ]
    response = await stack.client.post(
        "/v1/batch", json={"batch": items}, headers=_basic(WRITE_KEY)
    )
    assert response.status_code == 400
    assert "500 KB" in response.json()["message"]


async def test_a_rudderstack_key_takes_batches_up_to_4_mb_and_a_segment_key_does_not(
    stack: Stack,
) -> None:
    """rudder-sdk-python batches up to 4 MB: twenty 30 KB events in one request."""
    account = f"acct_{uuid.uuid4().hex[:8]}"
    items = [
        _message("track", f"u{n}", event="Logged In", context={"groupId": account},
                 properties={"blob": "x" * 30_000})
        for n in range(20)
    ]  # fmt: skip
    body = orjson.dumps({"batch": items})
    assert 500 * 1024 < len(body) < 4 * 1024 * 1024
    segment = await stack.client.post("/v1/batch", content=body, headers=_basic(WRITE_KEY))
    assert segment.status_code == 400 and "500 KB" in segment.json()["message"]
    rudder = await stack.client.post("/v1/batch", content=body, headers=_basic(RUDDER_KEY))
    assert (rudder.status_code, rudder.json()) == (200, {"success": True})
    over = orjson.dumps({"batch": items * 7})  # past 4 MB
    refused = await stack.client.post("/v1/batch", content=over, headers=_basic(RUDDER_KEY))
    assert refused.status_code == 400 and "4 MB" in refused.json()["message"]
    deadline = time.monotonic() + 30
    while True:
        async with stack.pipeline.sessionmaker() as session:
            stored = await EventRepository(session).for_account(account)
        if len(stored) == len(items) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert {e.id for e in stored} == {m["messageId"] for m in items}


async def test_unknown_write_key_is_refused(stack: Stack) -> None:
    response = await stack.client.post(
        "/v1/batch",
        json={"batch": [_message("track", "u1", event="Page Viewed")]},
        headers=_basic("wk_wrong"),
    )
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


async def test_batch_must_hold_a_list_of_messages(stack: Stack) -> None:
    response = await stack.client.post(
        "/v1/batch", json={"batch": "nope"}, headers=_basic(WRITE_KEY)
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"


async def test_screen_and_alias_are_accepted_and_a_non_object_item_is_dead_lettered(
    stack: Stack,
) -> None:
    user = f"user_{uuid.uuid4().hex[:8]}"
    for path, body in (
        ("/v1/screen", {"userId": user, "name": "Welcome"}),
        ("/v1/alias", {"userId": user, "previousId": f"anon_{user}"}),
        ("/v1/batch", {"batch": [f"not a message {user}", _message("track", user, event="A")]}),
    ):
        response = await stack.client.post(path, json=body, headers=_basic(WRITE_KEY))
        assert (response.status_code, response.json()) == (200, {"success": True}), path
    until = time.monotonic() + 20
    while not await stack.pipeline.drained():
        assert time.monotonic() < until, "the pipeline did not catch up"
        await asyncio.sleep(0.02)
    letters = [orjson.loads(m.value) for m in stack.pipeline.bus.messages(topics.EVENTS_DLQ)]
    [letter] = [d for d in letters if user in d["original"]]
    assert (letter["reason"], letter["original"]) == ("not_an_object", f'"not a message {user}"')


async def test_json_nested_deeper_than_we_can_store_is_400(stack: Stack) -> None:
    deep = b'{"userId":"u","event":"A","properties":{"x":' + b"[" * 300 + b"]" * 300 + b"}}"
    response = await stack.client.post("/v1/track", content=deep, headers=_basic(WRITE_KEY))
    assert response.status_code == 400
    assert response.json()["message"] == "the message is nested too deeply"


@pytest.mark.parametrize(
    "times",
    [
        {"timestamp": "0001-01-01T00:00:00+01:00"},
        {"timestamp": "0001-01-01T00:00:00Z", "sentAt": "9999-12-31T23:59:59Z"},
    ],
)
async def test_a_track_at_the_calendars_end_is_dead_lettered_and_ingest_goes_on(
    stack: Stack, times: dict[str, str]
) -> None:
    """Issue 10, defect 1: this body stopped the consumer with OverflowError."""
    account = f"acct_{uuid.uuid4().hex[:8]}"
    poison = {"userId": "p", "event": "Logged In", "messageId": f"x-{account}",
              "context": {"groupId": account}, **times}  # fmt: skip
    response = await stack.client.post("/v1/track", json=poison, headers=_basic(WRITE_KEY))
    assert (response.status_code, response.json()) == (200, {"success": True})
    good = _message("track", "u1", event="Logged In", context={"groupId": account})
    assert (await stack.client.post("/v1/track", json=good, headers=_basic(WRITE_KEY))).is_success
    deadline = time.monotonic() + 30
    while True:
        stack.pipeline.check()  # the consumers are alive
        async with stack.pipeline.sessionmaker() as session:
            stored = await EventRepository(session).for_account(account)
        if stored and await stack.pipeline.drained():
            break
        assert time.monotonic() < deadline, "the good track was not stored"
        await asyncio.sleep(0.05)
    assert [e.id for e in stored] == [good["messageId"]]
    letters = [orjson.loads(m.value) for m in stack.pipeline.bus.messages(topics.EVENTS_DLQ)]
    [letter] = [d for d in letters if f"x-{account}" in d["original"]]
    assert letter["reason"] == "out_of_range"
