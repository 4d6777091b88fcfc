"""Embedded SQLite under concurrency: the file is in WAL mode, reads take no write lock (a
read answers while another connection holds it), and writes stay serialised — many
concurrent writers beside many readers all succeed, none with ``database is locked``."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.engine import make_url

from shared.storage.onboardings import OnboardingRepository

from .stack import Stack, api_stack, fresh_database

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

SIGNED = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)
READERS, WRITERS, ROUNDS = 40, 10, 3
LOCK_HELD_DEADLINE = 10.0  # a reader that waited for the lock would wait the 30 s busy timeout
LOCK_WAIT = 30.0  # how long the test's own connection waits to take the write lock


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    directory: Path = tmp_path_factory.mktemp("api-concurrency")
    async with (
        fresh_database("sqlite", directory) as url,
        api_stack(url, None, timer_interval_seconds=3600) as running,
    ):
        yield running


def _file(stack: Stack) -> str:
    database = make_url(stack.settings.database_url).database
    assert database is not None
    return database


def _writer(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.write_only_key}"}


async def _register(stack: Stack, account: str) -> str:
    body = {"account_id": account, "plan": "smb", "signed_at": SIGNED.isoformat()}
    response = await stack.client.post("/v1/onboardings", json=body, headers=_writer(stack))
    assert response.status_code == 201, response.text
    onboarding_id: str = response.json()["onboarding"]["onboarding_id"]
    return onboarding_id


async def test_the_embedded_database_is_in_wal_mode(stack: Stack) -> None:
    async with stack.pipeline.sessionmaker() as session:
        mode = await session.scalar(text("PRAGMA journal_mode"))
    assert str(mode).lower() == "wal"


async def test_reads_answer_while_another_connection_holds_the_write_lock(stack: Stack) -> None:
    await _register(stack, f"acct-{uuid.uuid4().hex[:8]}")
    # The stack may still be writing the registration's projection: wait for the write lock
    # (off the event loop, which that write needs) instead of failing on "database is locked".
    holder = sqlite3.connect(
        _file(stack), isolation_level=None, timeout=LOCK_WAIT, check_same_thread=False
    )
    await asyncio.to_thread(holder.execute, "BEGIN IMMEDIATE")  # held until the end of the test
    try:
        reads = [
            stack.client.get("/v1/onboardings", headers=stack.auth()),
            stack.client.get("/v1/reports/ttfv", headers=stack.auth()),
            stack.client.get("/v1/escalations", headers=stack.auth()),
            stack.client.get("/readyz"),
        ]
        reading = asyncio.gather(*reads)
        done, _ = await asyncio.wait({reading}, timeout=LOCK_HELD_DEADLINE)
        # A write waits its turn instead of failing: it completes once the lock is released.
        write = asyncio.ensure_future(_register(stack, f"acct-{uuid.uuid4().hex[:8]}"))
        await asyncio.sleep(0.1)  # let it start and queue behind the held lock
        assert not write.done()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    answered = await reading  # (had they waited for the lock, they would finish now)
    assert done, "the reads waited for the write lock"
    assert [r.status_code for r in answered] == [200, 200, 200, 200]
    assert answered[0].json()["items"]
    assert await asyncio.wait_for(write, LOCK_HELD_DEADLINE)


async def test_concurrent_readers_and_writers_all_succeed(stack: Stack) -> None:
    accounts = [f"acct-c-{uuid.uuid4().hex[:8]}" for _ in range(WRITERS * ROUNDS)]

    async def reader(n: int) -> list[int]:
        statuses = []
        for _ in range(ROUNDS):
            path = ("/v1/onboardings?limit=50", "/v1/reports/at-risk", "/v1/escalations")[n % 3]
            statuses.append((await stack.client.get(path, headers=stack.auth())).status_code)
        return statuses

    async def writer(n: int) -> list[str]:
        return [await _register(stack, a) for a in accounts[n * ROUNDS : (n + 1) * ROUNDS]]

    reads = asyncio.gather(*(reader(n) for n in range(READERS)))
    writes = asyncio.gather(*(writer(n) for n in range(WRITERS)))
    read_results, write_results = await asyncio.gather(reads, writes)
    statuses = Counter(status for batch in read_results for status in batch)
    assert statuses == {200: READERS * ROUNDS}, statuses
    registered = [onboarding for batch in write_results for onboarding in batch]
    assert len(set(registered)) == WRITERS * ROUNDS
    async with stack.pipeline.sessionmaker() as session:
        stored = OnboardingRepository(session)
        for onboarding in registered:
            assert await stored.registration(onboarding) is not None
