"""One milestones service instance: the ``onboarding.facts`` consumer and the timer loop side
by side, on one bus and one database, with one injectable clock.

Run as many instances as needed: the consumer group splits the facts partitions between
them, timer pages are claimed with ``SKIP LOCKED``, projections of one onboarding serialise
on its row lock, and the outbox publishes each transition id once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.milestones.consumer import run_milestones
from services.milestones.timers import run_timers
from shared.bus.bus import Bus
from shared.domain.plans import Plan


async def run_service(
    bus: Bus,
    sessionmaker: async_sessionmaker[AsyncSession],
    plans: Mapping[str, Plan],
    *,
    interval_seconds: float,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    group: str = "milestones",
) -> None:
    """Consume facts and fire timers until cancelled or the bus stops (then the timers stop
    too: they hold no batch)."""
    async with asyncio.TaskGroup() as tg:
        consumer = tg.create_task(
            run_milestones(bus, sessionmaker, plans, clock=clock, group=group)
        )
        timers = tg.create_task(
            run_timers(sessionmaker, bus, plans, interval_seconds=interval_seconds, clock=clock)
        )
        await consumer
        timers.cancel()
