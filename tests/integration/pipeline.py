"""Run the real consumers on a ``MemoryBus`` inside a test, and wait for them to catch up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.consumer import IngestOptions, run_ingest
from services.milestones.consumer import run_milestones
from shared.bus import topics
from shared.bus.memory import MemoryBus
from shared.domain.plans import Plan

DEADLINE_SECONDS = 20.0


@asynccontextmanager
async def running_pipeline(
    bus: MemoryBus,
    sessions: async_sessionmaker[AsyncSession],
    plans: Mapping[str, Plan],
    now: datetime,
) -> AsyncIterator[None]:
    """The ingest and milestones consumers as tasks, with a fixed clock; stopped on exit."""
    options = IngestOptions(plan_keys=frozenset(plans))
    tasks = [
        asyncio.create_task(run_ingest(bus, sessions, options, clock=lambda: now)),
        asyncio.create_task(run_milestones(bus, sessions, plans, clock=lambda: now)),
    ]
    try:
        yield
    finally:
        await bus.stop()
        await asyncio.gather(*tasks)


async def drained(bus: MemoryBus) -> None:
    """Poll (with a deadline) until both consumer groups have committed everything."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while await bus.lag(topics.EVENTS, "ingest") or await bus.lag(topics.FACTS, "milestones"):
        if loop.time() > deadline:
            raise TimeoutError("the pipeline did not catch up in time")
        await asyncio.sleep(0.01)
