"""Hostile requests to the HTTP ingest never stop the consumer: hypothesis-drawn messages
(extreme dates and numbers, wrong types, huge strings, NUL, random JSON, bytes that are not
UTF-8) through ``/v1/batch``, ``/v1/track``, Mixpanel ``/import`` and ``/track``, each
request beside good messages. No reply is a 5xx; every reply has the vendor's shape; the
pipeline drains with its consumers alive; the good messages of every accepted request are
stored; and every hostile Segment message of an accepted request is stored, parked or
dead-lettered with a reason."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from integration.hostile import (
    drawn,
    encode,
    good_message,
    hostile_mixpanel,
    hostile_segment,
    mixpanel_event,
)
from sqlalchemy import text

from shared.bus import topics

from .stack import BACKENDS, Stack, api_stack, fresh_database

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]
EXAMPLES = 40
NOW = datetime.now(UTC)


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    directory: Path = tmp_path_factory.mktemp("hostile")
    async with (
        fresh_database(request.param, directory) as url,
        api_stack(url, timer_interval_seconds=3600) as running,
    ):
        yield running


def _account() -> str:
    return f"acct-{uuid.uuid4().hex[:8]}"


async def _settled(stack: Stack) -> None:
    """Poll until the pipeline has consumed everything, failing if a consumer stopped."""
    deadline = time.monotonic() + 30
    while not await stack.pipeline.drained():
        stack.pipeline.check()
        assert time.monotonic() < deadline, "the pipeline did not drain"
        await asyncio.sleep(0.02)
    stack.pipeline.check()


async def _ids(stack: Stack, table: str, ids: set[str]) -> set[str]:
    async with stack.pipeline.sessionmaker() as session:
        rows = await session.execute(text(f"SELECT id FROM {table}"))
        return set(rows.scalars()) & ids


def _dead_ids(stack: Stack) -> set[str]:
    found = set()
    for message in stack.pipeline.bus.messages(topics.EVENTS_DLQ):
        letter = orjson.loads(message.value)
        assert letter["reason"] and letter["error"], letter
        try:
            original = orjson.loads(letter["original"])
        except orjson.JSONDecodeError:
            continue
        if isinstance(original, dict) and isinstance(original.get("messageId"), str):
            found.add(original["messageId"])
    return found


def _vendor_shape(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text[:300]
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        assert isinstance(body, dict) and body, body
    else:
        assert response.text in ("0", "1"), response.text[:300]


async def _post(stack: Stack, path: str, content: bytes, **headers: str) -> httpx.Response:
    response = await stack.client.post(
        path, content=content, headers={"Content-Type": "application/json", **headers}
    )
    _vendor_shape(response)
    return response


async def test_hostile_segment_batches_and_tracks_never_stop_ingest(stack: Stack) -> None:
    account = _account()
    cases = drawn(hostile_segment(account, NOW), EXAMPLES)
    accepted_hostile: set[str] = set()
    good_ids: set[str] = set()
    for n, message in enumerate(cases):
        good = good_message(account, n, NOW)
        path, body = (
            ("/v1/batch", encode({"batch": [good, message]}))
            if n % 2
            else ("/v1/track", encode(message))
        )
        response = await _post(stack, path, body)
        if response.status_code == 200:
            accepted_hostile.add(message["messageId"])
            if path == "/v1/batch":
                good_ids.add(good["messageId"])
        else:
            assert set(response.json()) == {"code", "message"}
    for raw in (b"\xff\xfe{", b'{"batch": [\x00]}', b"[" * 10_000, b'{"type": "track"'):
        assert (await _post(stack, "/v1/batch", raw)).status_code == 400
    await _settled(stack)
    assert await _ids(stack, "events", good_ids) == good_ids
    kept = await _ids(stack, "events", accepted_hostile) | await _ids(
        stack, "pending_events", accepted_hostile
    )
    dead = _dead_ids(stack) & accepted_hostile
    assert kept | dead == accepted_hostile and not kept & dead


async def test_hostile_mixpanel_imports_and_tracks_never_stop_ingest(stack: Stack) -> None:
    account = _account()
    cases = drawn(hostile_mixpanel(account, NOW), EXAMPLES)
    good: list[dict[str, Any]] = []
    for n, event in enumerate(cases):
        fine = mixpanel_event(account, uuid.uuid4().hex, NOW)
        good.append(fine)
        strict = "1" if n % 3 else "0"
        path = f"/import?strict={strict}" if n % 2 else "/track?verbose=1"
        await _post(stack, path, encode([fine, event]))
    for raw in (b"\xff\xfe[", b"data=%FF%FE", b"[" * 10_000, b"\x00"):
        response = await _post(stack, "/import", raw)
        assert response.status_code == 400
        assert (await _post(stack, "/track", raw)).status_code == 400
    await _settled(stack)
    async with stack.pipeline.sessionmaker() as session:
        rows = await session.execute(
            text("SELECT count(*) FROM events WHERE account_id = :a AND user_id LIKE 'user-%'"),
            {"a": account},
        )
        stored = rows.scalar_one()
    assert stored >= len(good)  # every good event of every request (hostile ones may join)
