"""Mixpanel-compatible HTTP ingest in the shapes Mixpanel documents beyond what the Python SDK
sends: JSON arrays, NDJSON, gzip, base64 ``data`` (POST and GET), strict and non-strict
import, limits and auth — with Mixpanel's own reply shapes."""

from __future__ import annotations

import asyncio
import base64
import gzip
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio

from shared.bus import topics
from shared.storage.events import EventRepository

from .stack import BACKENDS, Stack, api_stack, fresh_database

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

TOKEN = "mp_token_http"


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    directory: Path = tmp_path_factory.mktemp("mixpanel")
    async with (
        fresh_database(request.param, directory) as url,
        api_stack(url, mixpanel_tokens=TOKEN, timer_interval_seconds=3600) as running,
    ):
        yield running


def _basic(user: str, secret: str = "") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


def _event(account: str, name: str = "Logged In", **properties: Any) -> dict[str, Any]:
    return {
        "event": name,
        "properties": {
            "distinct_id": f"user_{account}", "time": int(time.time() * 1000) - 60_000,
            "$insert_id": uuid.uuid4().hex, "token": TOKEN, "company_id": account,
            **properties,
        },
    }  # fmt: skip


async def _stored(stack: Stack, account: str, count: int, deadline: float = 20) -> list[Any]:
    until = time.monotonic() + deadline
    while True:
        async with stack.pipeline.sessionmaker() as session:
            events = await EventRepository(session).for_account(account)
        if len(events) >= count and await stack.pipeline.drained():
            return events
        assert time.monotonic() < until, f"{account}: {len(events)} of {count} stored"
        await asyncio.sleep(0.02)


async def test_ndjson_import_gzipped_with_the_token_as_basic_user(stack: Stack) -> None:
    account = f"acct_{uuid.uuid4().hex[:8]}"
    body = b"\n".join(orjson.dumps(_event(account)) for _ in range(3)) + b"\n"
    response = await stack.client.post(
        "/import",
        content=gzip.compress(body),
        headers={"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip",
                 **_basic(TOKEN)},
    )  # fmt: skip
    assert response.status_code == 200
    assert response.json() == {"code": 200, "num_records_imported": 3, "status": "OK"}
    assert len(await _stored(stack, account, 3)) == 3


async def test_strict_import_lists_failed_records_and_ingests_the_valid_ones(stack: Stack) -> None:
    account = f"acct_{uuid.uuid4().hex[:8]}"
    good, bad = _event(account), _event(account, time="yesterday")
    response = await stack.client.post("/import", json=[good, bad], headers=_basic(TOKEN))
    assert response.status_code == 400
    body = response.json()
    assert (body["code"], body["status"], body["num_records_imported"]) == (400, "Bad Request", 1)
    assert body["failed_records"] == [{
        "index": 1, "insert_id": bad["properties"]["$insert_id"], "field": "properties.time",
        "message": "properties.time must be a number: seconds or milliseconds since the epoch",
    }]  # fmt: skip
    assert "failed validation" in body["error"]
    [stored] = await _stored(stack, account, 1)
    assert stored.user_id == f"user_{account}"


async def test_non_strict_import_accepts_all_and_dead_letters_the_invalid_ones(
    stack: Stack,
) -> None:
    account = f"acct_{uuid.uuid4().hex[:8]}"
    bad = _event(account, **{"$insert_id": "no spaces allowed"})
    response = await stack.client.post(
        "/import?strict=0", json=[_event(account), bad], headers=_basic(TOKEN)
    )
    assert response.json() == {"code": 200, "num_records_imported": 1, "status": "OK"}
    await _stored(stack, account, 1)
    letters = [orjson.loads(m.value) for m in stack.pipeline.bus.messages(topics.EVENTS_DLQ)]
    [letter] = [d for d in letters if "no spaces allowed" in d["original"]]
    assert letter["reason"] == "invalid_insert_id"


async def test_track_takes_base64_data_by_post_and_get_and_answers_1(stack: Stack) -> None:
    account = f"acct_{uuid.uuid4().hex[:8]}"
    encoded = base64.b64encode(orjson.dumps(_event(account))).decode()
    posted = await stack.client.post("/track", data={"data": encoded})
    assert (posted.status_code, posted.text) == (200, "1")
    fetched = await stack.client.get("/track", params={"data": encoded, "verbose": "1"})
    assert fetched.json() == {"status": 1, "error": None}
    assert len(await _stored(stack, account, 1)) == 1  # the same event twice: stored once


async def test_track_refusals_in_both_reply_shapes(stack: Stack) -> None:
    account = f"acct_{uuid.uuid4().hex[:8]}"
    invalid = orjson.dumps(_event(account, distinct_id=None)).decode()
    verbose = await stack.client.post("/track", data={"data": invalid, "verbose": "1"})
    assert verbose.json()["status"] == 0
    assert "properties.distinct_id is required" in verbose.json()["error"]
    plain = await stack.client.post("/track", data={"data": invalid})
    assert plain.text == "0"
    missing = await stack.client.post("/track", data={"verbose": "1"})
    assert missing.json() == {"status": 0, "error": "data, missing or empty"}
    stranger = orjson.dumps(_event(account, token="other")).decode()
    refused = await stack.client.post("/track", data={"data": stranger, "verbose": "1"})
    assert refused.status_code == 401 and refused.json()["status"] == 0


@pytest.mark.parametrize(
    ("path", "content", "headers", "status", "error"),
    [
        ("/import", b"[{not json", {}, 400, "not valid JSON"),
        ("/import", orjson.dumps([{"event": "A", "properties": {}}] * 2001), {}, 400,
         "max 2000"),
        ("/import", b"[" + b" " * (10 * 1024 * 1024) + b"]", {}, 413, "10 MB"),
        ("/import?project_id=", b"[]", _basic("sa", "secret"), 400, "project_id is required"),
        ("/import", b"[]", _basic("not-a-token"), 401, "unknown service account"),
    ],
)  # fmt: skip
async def test_import_refuses_whole_requests_in_mixpanels_error_shape(
    stack: Stack, path: str, content: bytes, headers: dict[str, str], status: int, error: str
) -> None:
    response = await stack.client.post(
        path, content=content, headers={"Content-Type": "application/json", **_basic(TOKEN),
                                         **headers},
    )  # fmt: skip
    assert response.status_code == status
    body = response.json()
    assert body["code"] == status and error in body["error"]


async def test_import_by_get_with_base64_data_answers_the_legacy_1_with_verbose_0(
    stack: Stack,
) -> None:
    """mixpanel-node's ``import()``: GET /import?data=<base64>&verbose=0&api_key=…"""
    account = f"acct_{uuid.uuid4().hex[:8]}"
    encoded = base64.b64encode(orjson.dumps(_event(account))).decode()
    ok = await stack.client.get(
        "/import", params={"data": encoded, "verbose": "0", "ip": "0", "api_key": TOKEN}
    )
    assert (ok.status_code, ok.text) == (200, "1")
    bad = base64.b64encode(orjson.dumps(_event(account, time="soon"))).decode()
    refused = await stack.client.get("/import", params={"data": bad, "verbose": "0"})
    assert (refused.status_code, refused.text) == (400, "0")
    newer = await stack.client.get(
        "/import",
        params={"data": encoded, "verbose": "0", "project_id": "1"},
        headers=_basic(TOKEN),
    )
    assert newer.json() == {"code": 200, "num_records_imported": 1, "status": "OK"}
    verbose = await stack.client.post("/import?verbose=1", data={"data": encoded})
    assert verbose.json() == {"code": 200, "num_records_imported": 1, "status": 1, "error": None}
    assert len(await _stored(stack, account, 1)) == 1


async def test_identical_track_calls_without_insert_id_or_time_count_each_delivery(
    stack: Stack,
) -> None:
    account = f"acct_{uuid.uuid4().hex[:8]}"
    properties = {"distinct_id": f"user_{account}", "token": TOKEN, "company_id": account}
    bare = {"event": "Logged In", "properties": properties}
    for _ in range(2):
        sent = await stack.client.get(
            "/track", params={"data": base64.b64encode(orjson.dumps(bare)).decode()}
        )
        assert sent.text == "1"
    retried = _event(account)
    for _ in range(2):  # a retry of one event: the same $insert_id and time
        assert (await stack.client.post("/track", json=[retried])).text == "1"
    assert len(await _stored(stack, account, 3)) == 3  # drained: two deliveries, one retried


def _onboarding(stack: Stack, account: str) -> str:
    from shared.analytics.registration import onboarding_id_for

    return onboarding_id_for(account, "smb")


async def _detail(stack: Stack, onboarding_id: str, deadline: float = 20) -> dict[str, Any]:
    until = time.monotonic() + deadline
    while True:
        response = await stack.client.get(f"/v1/onboardings/{onboarding_id}", headers=stack.auth())
        if response.status_code == 200 and await stack.pipeline.drained():
            return dict(response.json())
        assert time.monotonic() < until, response.text
        await asyncio.sleep(0.02)


async def test_group_and_people_profiles_name_the_account_and_tie_the_user(stack: Stack) -> None:
    account = f"acct_{uuid.uuid4().hex[:8]}"
    contract = _event(account, "Contract Signed", plan="smb")
    assert (await stack.client.post("/import", json=[contract], headers=_basic(TOKEN))).is_success
    group = {"$token": TOKEN, "$group_key": "company_id", "$group_id": account,
             "$set": {"$name": "Park Industries", "licensed_seats": 25}}  # fmt: skip
    sent = await stack.client.get(
        "/groups", params={"data": base64.b64encode(orjson.dumps(group)).decode(), "verbose": "0"}
    )
    assert (sent.status_code, sent.text) == (200, "1")
    detail = await _detail(stack, _onboarding(stack, account))
    assert detail["account_name"] == "Park Industries"

    person = {"$token": TOKEN, "$distinct_id": "champion-" + account,
              "$set": {"$email": "ada@park.example", "company_id": account}}  # fmt: skip
    people = await stack.client.post(
        "/engage?verbose=1", data={"data": orjson.dumps([person]).decode()}
    )
    assert people.json() == {"status": 1, "error": None}
    login = _event("ignored", distinct_id="champion-" + account)
    del login["properties"]["company_id"]  # the user's account comes from the profile alone
    assert (await stack.client.post("/track", json=[login])).text == "1"
    [stored] = [e for e in await _stored(stack, account, 2) if e.user_id.startswith("champion")]
    assert stored.name == "Logged In"


@pytest.mark.parametrize(
    ("path", "update", "error"),
    [
        ("/engage", {"$token": TOKEN, "$set": {"a": 1}}, "$distinct_id is required"),
        ("/groups", {"$token": TOKEN, "$group_key": "company_id", "$set": {}},
         "$group_key and $group_id are required"),
        ("/groups", {"$token": TOKEN, "$group_key": "company_id", "$group_id": "x",
                     "$set": {"licensed_seats": 1e19}}, "licensed_seats is over"),
        ("/engage", {"$token": TOKEN, "$distinct_id": "u"}, "needs one of"),
        ("/engage", {"$token": "stranger", "$distinct_id": "u", "$set": {}}, "$token"),
    ],
)  # fmt: skip
async def test_profile_refusals_come_in_mixpanels_shapes(
    stack: Stack, path: str, update: dict[str, Any], error: str
) -> None:
    data = base64.b64encode(orjson.dumps(update)).decode()
    verbose = await stack.client.get(path, params={"data": data, "verbose": "1"})
    assert verbose.status_code in (400, 401)
    assert verbose.json()["status"] == 0 and error in verbose.json()["error"]
    plain = await stack.client.get(path, params={"data": data})
    assert plain.text == "0"


@pytest.mark.parametrize("seats", [1e19, 18446744073709551615, 3_000_000_000])
async def test_an_import_of_a_contract_with_seats_past_storage_is_refused_as_out_of_range(
    stack: Stack, seats: float
) -> None:
    """Issue 10, defect 1: /import answered 200 to these and the consumer then stopped."""
    account = f"acct_{uuid.uuid4().hex[:8]}"
    contract = _event(account, "Contract Signed", plan="smb", licensed_seats=seats)
    good = _event(account)
    response = await stack.client.post("/import", json=[contract, good], headers=_basic(TOKEN))
    assert response.status_code == 400
    [failed] = response.json()["failed_records"]
    assert failed["index"] == 0 and failed["field"] == "properties.licensed_seats"
    assert len(await _stored(stack, account, 1)) == 1  # the valid one, and ingest goes on
    stack.pipeline.check()
