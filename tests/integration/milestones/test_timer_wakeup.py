"""The timer loop wakes at the earliest due moment, not only every interval: on the real
clock an escalation due in half a second fires about then, with a 60-second interval."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.milestones.timers import run_timers
from shared.bus import topics
from shared.bus.memory import MemoryBus
from shared.domain.facts import OnboardingRegistered
from shared.projection.manual import record_fact

from .scenario import PLANS


async def test_a_timer_fires_at_its_due_moment_well_inside_the_interval(
    pg_sessions: async_sessionmaker[AsyncSession],
) -> None:
    due = datetime.now(UTC) + timedelta(seconds=0.5)
    signed = due - timedelta(days=14)  # smb: day 14 → technical completion late, silence
    registration = OnboardingRegistered("registered:onb", "onb", "acct", "smb", signed)
    async with pg_sessions() as session, session.begin():
        recorded = await record_fact(session, PLANS, registration, datetime.now(UTC))
    assert recorded.state.next_due_at == due and not recorded.state.escalations
    bus = MemoryBus()
    timers = asyncio.create_task(run_timers(pg_sessions, bus, PLANS, interval_seconds=60))
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not bus.messages(topics.ESCALATIONS):
            assert loop.time() < deadline, "the timer waited for its interval"
            await asyncio.sleep(0.02)
        latency = datetime.now(UTC) - due
    finally:
        timers.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await timers
    assert timedelta(0) <= latency < timedelta(seconds=5)
