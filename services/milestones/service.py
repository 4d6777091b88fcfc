"""One milestones service instance (``firstvalue milestones``): the ``onboarding.facts``
consumer, the timer loop, the optional webhook worker and the retention loop side by side,
on one bus and one database, with one injectable clock.

Run as many instances as needed: the consumer group splits the facts partitions between
them, timer pages are claimed with ``SKIP LOCKED``, projections of one onboarding serialise
on its row lock, and the outbox publishes each transition id once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.milestones.consumer import run_milestones
from services.milestones.retention import run_retention
from services.milestones.timers import run_timers
from services.milestones.webhooks_worker import WebhookOptions, run_webhooks
from shared.bus.bus import Bus
from shared.config import Settings
from shared.domain.plans import Plan
from shared.domain.watermark import InputProgress
from shared.projection.announce import IDLE

INGEST_GROUP = "ingest"  # ``firstvalue ingest``'s consumer group on analytics.events


async def run_service(
    bus: Bus,
    sessionmaker: async_sessionmaker[AsyncSession],
    plans: Mapping[str, Plan],
    *,
    interval_seconds: float,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    group: str = "milestones",
    webhooks: WebhookOptions | None = None,
    retention_days: float = 0.0,
    idle: timedelta = IDLE,
    ingest_group: str | None = None,
) -> None:
    """Consume facts, fire timers, (with ``webhooks``) deliver webhooks and (with
    ``retention_days`` > 0) prune finished bookkeeping until cancelled or the bus stops;
    then the helpers stop too (the timers hold no batch; a webhook batch cut short is
    redelivered and deduplicated). With ``ingest_group``, ingest's backlog on
    ``analytics.events`` keeps the input from counting as idle (``fire_due``)."""
    progress = InputProgress(idle)  # what the consumer hears, the timers announce by
    async with asyncio.TaskGroup() as tg:
        consumer = tg.create_task(
            run_milestones(
                bus, sessionmaker, plans, clock=clock, group=group, idle=idle, progress=progress
            )
        )
        helpers = [
            tg.create_task(
                run_timers(
                    sessionmaker,
                    bus,
                    plans,
                    interval_seconds=interval_seconds,
                    clock=clock,
                    idle=idle,
                    progress=progress,
                    facts_group=group,
                    ingest_group=ingest_group,
                )
            )
        ]
        if webhooks is not None:  # its own consumer group: never holds up the consumer
            helpers.append(tg.create_task(run_webhooks(bus, sessionmaker, webhooks)))
        if retention_days > 0:
            retention = run_retention(sessionmaker, days=retention_days, clock=clock)
            helpers.append(tg.create_task(retention))
        await consumer
        for helper in helpers:
            helper.cancel()


def run_configured(
    bus: Bus,
    sessionmaker: async_sessionmaker[AsyncSession],
    plans: Mapping[str, Plan],
    settings: Settings,
) -> Coroutine[Any, Any, None]:
    """``run_service`` as the settings configure it (``firstvalue milestones``, embedded)."""
    return run_service(
        bus,
        sessionmaker,
        plans,
        interval_seconds=settings.timer_interval_seconds,
        webhooks=WebhookOptions.from_settings(settings),
        retention_days=settings.retention_days,
        idle=timedelta(seconds=settings.watermark_idle_seconds),
        # Only where ingest announces watermarks: with the hold off, announce at the clock.
        ingest_group=INGEST_GROUP if settings.allowed_lateness() is not None else None,
    )
