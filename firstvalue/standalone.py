"""Each pipeline service alone in its own process (production): ``firstvalue ingest`` and
``firstvalue milestones``, on Kafka and the configured database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.app import configured_plans
from services.ingest.consumer import IngestOptions, run_ingest
from services.milestones.consumer import run_milestones
from services.milestones.timers import run_timers
from shared.bus.bus import Bus
from shared.bus.factory import create_bus
from shared.config import Settings
from shared.storage.engine import create_engine, create_sessionmaker


@asynccontextmanager
async def _resources(
    settings: Settings, name: str
) -> AsyncIterator[tuple[Bus, async_sessionmaker[AsyncSession]]]:
    engine = create_engine(settings.database_url, application_name=f"firstvalue-{name}")
    bus = create_bus(settings)
    await bus.start()
    try:
        yield bus, create_sessionmaker(engine)
    finally:
        await bus.stop()
        await engine.dispose()


async def ingest(settings: Settings) -> None:
    """Consume ``analytics.events`` until cancelled."""
    plans = configured_plans(settings)
    async with _resources(settings, "ingest") as (bus, sessionmaker):
        await run_ingest(bus, sessionmaker, IngestOptions.from_settings(settings, plans))


async def milestones(settings: Settings) -> None:
    """Consume ``onboarding.facts`` and fire SLA timers until cancelled."""
    plans = configured_plans(settings)
    async with _resources(settings, "milestones") as (bus, sessionmaker), asyncio.TaskGroup() as tg:
        tg.create_task(run_milestones(bus, sessionmaker, plans))
        tg.create_task(
            run_timers(sessionmaker, bus, plans, interval_seconds=settings.timer_interval_seconds)
        )
