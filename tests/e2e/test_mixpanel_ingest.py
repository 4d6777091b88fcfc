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
