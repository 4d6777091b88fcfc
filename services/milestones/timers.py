"""Timers: re-evaluate onboardings whose next due moment has passed (SLA deadlines,
escalation days, silence), found through the indexed ``next_due_at`` — never a full scan.

Several milestone instances may tick at once: each page of due onboardings is claimed with
``FOR UPDATE SKIP LOCKED`` (PostgreSQL), so no onboarding is re-evaluated by two instances
in one tick, and a re-evaluation that races a fact's projection waits on the same row lock.
A transition is queued in the outbox once (unique id), so it is published once either way.

The clock is injected, so tests move time instead of waiting for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus import topics
from shared.bus.bus import Bus
from shared.bus.outages import Outage, log_failure
from shared.domain.plans import Plan
from shared.domain.watermark import InputProgress
from shared.observability.database import observe_timer_lateness
from shared.projection.announce import IDLE, release_held
from shared.projection.projector import project_many
from shared.projection.publisher import relay_outbox
from shared.storage.projections import ProjectionRepository

log = logging.getLogger(__name__)
NEVER_IDLE = timedelta(days=36500)  # no input counts as idle (the facts consumer is behind)


async def fire_due(
    sessionmaker: async_sessionmaker[AsyncSession],
    bus: Bus,
    plans: Mapping[str, Plan],
    now: datetime,
    *,
    limit: int = 50,
    idle: timedelta = IDLE,
    progress: InputProgress | None = None,
    facts_group: str | None = None,
    ingest_group: str | None = None,
) -> int:
    """One tick: project every onboarding due at ``now`` (a page per transaction), announce
    what the watermark has passed since it was held, then publish the outbox. Returns how
    many onboardings were re-evaluated. With ``facts_group`` (the facts consumer's group), an
    input is never taken as idle while that consumer has notices still to read: the stored
    projections are then behind the stored facts. With ``ingest_group`` (ingest's group on
    ``analytics.events``) and ``progress``, nor while ingest has events still to read
    (``InputProgress.ingest_lagging``): ingest down on a backlog is not an idle input."""
    done: set[str] = set()
    if progress is not None and ingest_group is not None:
        progress.ingest_lagging(await bus.lag(topics.EVENTS, ingest_group) > 0, now)
    mark = progress.watermark(now) if progress is not None else None
    if facts_group is not None and await bus.lag(topics.FACTS, facts_group) > 0:
        idle = NEVER_IDLE
    while True:
        async with sessionmaker() as session, session.begin():
            due = await ProjectionRepository(session).claim_due(now, limit)
            fresh = [onboarding_id for onboarding_id in due if onboarding_id not in done]
            await observe_timer_lateness(session, fresh, now)  # metrics, before re-projection
            await project_many(session, plans, fresh, now, idle=idle, input_watermark=mark)
        done.update(fresh)
        # A page with nothing new means what is left is stuck (e.g. its plan is gone).
        if len(due) < limit or not fresh:
            break
    while True:  # held announcements the watermark has passed (each page re-announced once)
        async with sessionmaker() as session, session.begin():
            released = await release_held(
                session, now, idle=idle, input_watermark=mark, limit=limit
            )
        if released < limit:
            break
    await relay_outbox(sessionmaker, bus)
    return len(done)


async def _seconds_to_next(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Callable[[], datetime], cap: float
) -> float:
    """How long to sleep: until the earliest upcoming due moment, at most ``cap``."""
    now = clock()
    async with sessionmaker() as session:
        upcoming = await ProjectionRepository(session).next_due_after(now)
    if upcoming is None:
        return cap
    return min(cap, max((upcoming - clock()).total_seconds(), 0.0))


async def run_timers(
    sessionmaker: async_sessionmaker[AsyncSession],
    bus: Bus,
    plans: Mapping[str, Plan],
    *,
    interval_seconds: float,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    idle: timedelta = IDLE,
    progress: InputProgress | None = None,
    facts_group: str | None = None,
    ingest_group: str | None = None,
) -> None:
    """Tick until cancelled: at the earliest upcoming due moment, and at least every
    ``interval_seconds`` (which also catches moments that facts just brought forward). A
    failed tick is logged and the next one retries it (state is derived from facts, so
    nothing is lost by waiting); an outage is logged when it starts and ends."""
    outage = Outage("timer loop", logger=log)
    while True:
        wait = interval_seconds
        try:
            now = clock()
            fired = await fire_due(
                sessionmaker,
                bus,
                plans,
                now,
                idle=idle,
                progress=progress,
                facts_group=facts_group,
                ingest_group=ingest_group,
            )
            if fired:
                log.info("timers re-evaluated %d onboardings", fired)
            wait = await _seconds_to_next(sessionmaker, clock, interval_seconds)
            outage.up()
        except Exception as error:
            log_failure(outage, log, error, "timer tick failed; retrying in %.0fs", wait)
        await asyncio.sleep(wait)
