"""Run the real consumers on a KafkaBus, wait for them with deadlines, and read back what
they stored, in a form two runs can be compared by."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.consumer import IngestOptions, IngestResult, run_ingest
from services.milestones.consumer import run_milestones
from shared.analytics.normalize import partition_key
from shared.bus import topics
from shared.bus.bus import Bus, Message
from shared.domain import codec
from shared.domain.evaluate import evaluate
from shared.domain.plans import Plan
from shared.storage.onboardings import OnboardingRepository

DEADLINE_SECONDS = 30.0


async def produce(bus: Bus, messages: Iterable[Mapping[str, Any]]) -> int:
    """Publish Segment messages to ``analytics.events`` keyed as the HTTP ingest keys them."""
    items = [(partition_key(m), orjson.dumps(m)) for m in messages]
    await bus.publish_many(topics.EVENTS, items)
    return len(items)


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def read_topic(bus: Bus, topic: str, *, at_least: int) -> list[Message]:
    """Every record of ``topic``, read by a group of its own that never commits (so its lag
    is the topic's size), once there are at least ``at_least``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    seen: list[Message] = []
    group = f"reader-{uuid.uuid4().hex[:8]}"
    async with bus.subscribe(topic, group) as subscription:
        batches = aiter(subscription)
        while len(seen) < max(at_least, await bus.lag(topic, group)):
            if loop.time() > deadline:
                raise AssertionError(f"read {len(seen)} of {at_least} records of {topic}")
            batch = await asyncio.wait_for(anext(batches), deadline - loop.time())
            seen.extend(batch.messages)
    return seen


async def drained(bus: Bus, topic: str = topics.EVENTS, group: str = "ingest") -> None:
    async def caught_up() -> bool:
        return await bus.lag(topic, group) == 0

    await eventually(caught_up, f"group {group} to commit all of {topic}")


@contextlib.asynccontextmanager
async def consuming(
    task: Awaitable[None],
) -> AsyncIterator[asyncio.Task[None]]:
    """A consumer as a task, cancelled on exit (like a process that is stopped)."""
    running = asyncio.ensure_future(task)
    try:
        yield running
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


def ingesting(
    bus: Bus,
    sessions: async_sessionmaker[AsyncSession],
    plans: Mapping[str, Plan],
    now: datetime,
    *,
    results: list[IngestResult] | None = None,
    max_records: int = 2000,
) -> contextlib.AbstractAsyncContextManager[asyncio.Task[None]]:
    options = IngestOptions(plan_keys=frozenset(plans))
    on_batch = results.append if results is not None else None
    return consuming(
        run_ingest(
            bus, sessions, options, clock=lambda: now, on_batch=on_batch, max_records=max_records
        )
    )


def projecting(
    bus: Bus, sessions: async_sessionmaker[AsyncSession], plans: Mapping[str, Plan], now: datetime
) -> contextlib.AbstractAsyncContextManager[asyncio.Task[None]]:
    return consuming(run_milestones(bus, sessions, plans, clock=lambda: now))


async def count(sessions: async_sessionmaker[AsyncSession], table: str) -> int:
    async with sessions() as session:
        return int((await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def stored_ids(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessions() as session:
        return list((await session.execute(text("SELECT id FROM events"))).scalars())


async def snapshot(
    sessions: async_sessionmaker[AsyncSession], plans: Mapping[str, Plan], now: datetime
) -> dict[str, Any]:
    """Everything ingest decided, minus when it was recorded: events, identities, parked
    events, registrations, and every onboarding's state evaluated from its facts at ``now``."""
    queries = {
        "events": "SELECT id, account_id, user_id, name, occurred_at, properties, source "
        "FROM events ORDER BY id",
        "identities": "SELECT user_id, account_id, linked_at FROM identities "
        "WHERE account_id IS NOT NULL ORDER BY user_id",
        "pending": "SELECT id, user_id FROM pending_events ORDER BY id",
        "onboardings": "SELECT onboarding_id, fact_id, account_id, plan_key, signed_at, csm, "
        "champion_user_id, licensed_seats, account_name FROM onboardings ORDER BY onboarding_id",
    }
    state: dict[str, Any] = {}
    async with sessions() as session:
        for name, sql in queries.items():
            state[name] = [tuple(row) for row in await session.execute(text(sql))]
        repository = OnboardingRepository(session)
        evaluated = {}
        for onboarding_id, *_rest in state["onboardings"]:
            loaded = await repository.facts_for(onboarding_id)
            assert loaded is not None
            registration, facts = loaded
            evaluated[onboarding_id] = codec.state_to_dict(
                evaluate(plans[registration.plan_key], registration, facts, now)
            )
        state["evaluated"] = evaluated
    return state
