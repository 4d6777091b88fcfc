"""The consumers' retry policy on the in-memory bus: outages are waited out however long
they last (or until the budget), other failures stop the loop after a few in a row, and the
ingest pipeline leaves no failed task uncollected when its database is unreachable."""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from services.ingest.consumer import IngestOptions, run_ingest
from shared.bus import retry, topics
from shared.bus.bus import Subscription
from shared.bus.memory import MemoryBus
from shared.bus.retry import OutageBudgetExceeded, consume_with_retries, outage_budget
from shared.plan_files import default_plans
from shared.storage import create_engine, create_sessionmaker


@pytest.fixture
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "backoff_seconds", lambda attempt: 0.001)
    monkeypatch.setattr(retry, "MAX_BACKOFF_SECONDS", 0.001)


def failing(errors: list[BaseException]) -> tuple[list[int], Any]:
    """A consume function that raises ``errors`` one per attempt, then returns."""
    attempts: list[int] = []

    async def consume(subscription: Subscription, succeeded: Callable[[], None]) -> None:
        attempts.append(len(attempts))
        if errors:
            raise errors.pop(0)

    return attempts, consume


async def test_an_outage_is_retried_past_any_failure_count(quick_backoff: None) -> None:
    bus = MemoryBus()
    outages = [
        ConnectionRefusedError(111, "refused") for _ in range(retry.MAX_CONSECUTIVE_FAILURES * 4)
    ]
    attempts, consume = failing(list(outages))
    await consume_with_retries(bus, topics.EVENTS, "g", consume, label="test")
    assert len(attempts) == len(outages) + 1


async def test_other_failures_stop_the_loop_after_a_few_in_a_row(quick_backoff: None) -> None:
    bus = MemoryBus()
    attempts, consume = failing([ValueError(f"bug {n}") for n in range(10)])
    with pytest.raises(ValueError, match="bug 4"):
        await consume_with_retries(bus, topics.EVENTS, "g", consume, label="test")
    assert len(attempts) == retry.MAX_CONSECUTIVE_FAILURES


async def test_an_outage_longer_than_the_budget_ends_the_loop() -> None:
    bus = MemoryBus()
    attempts, consume = failing([ConnectionRefusedError(111, "refused") for _ in range(100)])
    with outage_budget(0.2), pytest.raises(OutageBudgetExceeded, match="over 0.2 s"):
        await consume_with_retries(bus, topics.EVENTS, "g", consume, label="test")
    assert 2 <= len(attempts) <= 3  # back-off 0.5 s: the second attempt is past the budget


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens there once the socket closes


async def test_the_ingest_pipeline_collects_every_failed_task_on_a_lost_database() -> None:
    unretrieved: list[str] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: unretrieved.append(context["message"]))
    plans = default_plans()
    bus = MemoryBus(partitions=1)
    await bus.start()
    await bus.publish_many(
        topics.EVENTS,
        [
            (f"acct-{n % 3}", orjson.dumps({"type": "track", "messageId": f"m-{n}",
                                           "userId": f"u-{n}", "event": "Logged In",
                                           "properties": {"account_id": f"acct-{n % 3}"}}))
            for n in range(10)
        ],
    )  # fmt: skip
    engine = create_engine(
        f"postgresql+asyncpg://fv:fv@127.0.0.1:{_closed_port()}/fv", application_name="test"
    )
    try:
        with outage_budget(1.0), pytest.raises(OutageBudgetExceeded):
            await run_ingest(
                bus, create_sessionmaker(engine), IngestOptions(frozenset(plans)), max_records=5
            )  # two batches in the pipeline, both failing while it waits for a third
    finally:
        await engine.dispose()
    gc.collect()  # a task whose error nobody retrieved is reported when it is collected
    await asyncio.sleep(0)
    assert await bus.lag(topics.EVENTS, "ingest") == 10  # nothing committed meanwhile
    assert not [m for m in unretrieved if "never retrieved" in m], unretrieved
