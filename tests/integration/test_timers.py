"""Timers re-evaluate due onboardings with an injected clock; escalations fire on their day."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.consumer import IngestOptions, run_ingest
from services.milestones.service import run_service
from services.milestones.timers import fire_due, run_timers
from shared.analytics.registration import onboarding_id_for
from shared.bus import topics
from shared.bus.memory import MemoryBus
from shared.domain.facts import EventObserved, OnboardingRegistered
from shared.domain.state import MilestoneStatus, OnboardingState
from shared.plan_files import default_plans
from shared.projection.manual import record_fact
from shared.projection.projector import project_accounts
from shared.storage.events import EventRepository
from shared.storage.projections import ProjectionRepository

PLANS = default_plans()
SIGNED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday


async def register(sessions: async_sessionmaker[AsyncSession], onboarding_id: str) -> datetime:
    """Register a silent smb onboarding; returns its first due moment."""
    registration = OnboardingRegistered(
        f"registered:{onboarding_id}", onboarding_id, f"acct-{onboarding_id}", "smb", SIGNED
    )
    async with sessions() as session, session.begin():
        recorded = await record_fact(session, PLANS, registration, SIGNED)
    assert recorded.state.next_due_at is not None
    return recorded.state.next_due_at


async def next_due(sessions: async_sessionmaker[AsyncSession], onboarding_id: str) -> datetime:
    async with sessions() as session:
        summary = await ProjectionRepository(session).get(onboarding_id)
    assert summary is not None and summary.next_due_at is not None
    return summary.next_due_at


async def test_nothing_fires_before_the_due_moment_and_everything_due_fires_after(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    due = await register(sessions, "onb-1")
    await register(sessions, "onb-2")
    bus = MemoryBus()
    assert await fire_due(sessions, bus, PLANS, due - timedelta(seconds=1)) == 0
    assert await fire_due(sessions, bus, PLANS, due) == 2
    assert await next_due(sessions, "onb-1") > due
    assert await fire_due(sessions, bus, PLANS, due) == 0


async def test_stalled_setup_escalates_on_day_14_when_timers_walk_the_clock(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = await register(sessions, "onb-1")
    bus = MemoryBus()
    while now <= SIGNED + timedelta(days=15):
        await fire_due(sessions, bus, PLANS, now)
        now = await next_due(sessions, "onb-1")
    opened = [orjson.loads(m.value) for m in bus.messages(topics.ESCALATIONS)]
    late = [e for e in opened if e["rule_key"] == "technical_completion_late"]
    assert len(late) == 1
    assert late[0]["type"] == "EscalationOpened"
    assert datetime.fromisoformat(late[0]["fired_at"]) == SIGNED + timedelta(days=14)
    async with sessions() as session:
        page = await ProjectionRepository(session).escalations(limit=10)
    assert "technical_completion_late" in {e.rule_key for e in page.items}


async def test_the_timer_loop_uses_the_injected_clock(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    due = await register(sessions, "onb-1")
    clock = [due - timedelta(hours=1)]
    bus = MemoryBus()
    task = asyncio.create_task(
        run_timers(sessions, bus, PLANS, interval_seconds=0.01, clock=lambda: clock[0])
    )
    try:
        clock[0] = due + timedelta(minutes=1)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while await next_due(sessions, "onb-1") == due:
            assert loop.time() < deadline, "the timer loop never fired"
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    async with sessions() as session:
        summary = await ProjectionRepository(session).get("onb-1")
    assert summary is not None and summary.state["as_of"] == clock[0].isoformat()


def _integration(state: OnboardingState) -> MilestoneStatus:
    return next(m for m in state.milestones if m.key == "integration_connected")


async def test_an_event_ahead_of_the_clock_is_applied_when_the_timer_reaches_its_moment(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Stored 20 s ahead of ``now``: not counted yet, but it is the next due moment, and
    the tick at that moment completes its milestone with no other traffic."""
    await register(sessions, "onb-1")
    now = SIGNED + timedelta(days=2)
    ahead = now + timedelta(seconds=20)
    connected = EventObserved("e-ahead", "acct-onb-1", "u1", "Integration Connected", ahead)
    async with sessions() as session, session.begin():
        await EventRepository(session).add_many([connected], source="segment", recorded_at=now)
        [state] = await project_accounts(session, PLANS, ["acct-onb-1"], now)
    assert _integration(state).progress == "not_started"
    assert await next_due(sessions, "onb-1") == ahead
    bus = MemoryBus()
    assert await fire_due(sessions, bus, PLANS, ahead - timedelta(microseconds=1)) == 0
    assert await fire_due(sessions, bus, PLANS, ahead) == 1
    async with sessions() as session:
        stored = await ProjectionRepository(session).state("onb-1")
    assert stored is not None and _integration(stored).completed_at == ahead


async def test_an_event_20s_ahead_completes_its_milestone_within_a_minute_end_to_end(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The real ingest and milestones service on the wall clock: a Segment event stamped
    20 s ahead of the server is complete within a minute after its moment, nothing else sent."""
    bus = MemoryBus()
    await bus.start()
    start = datetime.now(UTC)
    signed = (start - timedelta(days=3)).isoformat()
    ahead = start + timedelta(seconds=20)
    messages = [
        {"type": "track", "messageId": "contract", "userId": "crm", "event": "Contract Signed",
         "properties": {"account_id": "acme", "plan": "smb"}, "timestamp": signed},
        {"type": "track", "messageId": "early", "userId": "u1", "event": "Integration Connected",
         "properties": {"account_id": "acme"}, "timestamp": ahead.isoformat(),
         "sentAt": start.isoformat(), "receivedAt": start.isoformat()},
    ]  # fmt: skip
    options = IngestOptions(plan_keys=frozenset(PLANS))
    tasks = [
        asyncio.create_task(run_ingest(bus, sessions, options)),
        asyncio.create_task(run_service(bus, sessions, PLANS, interval_seconds=30)),
    ]
    try:
        await bus.publish_many(topics.EVENTS, [("acme", orjson.dumps(m)) for m in messages])
        onboarding = onboarding_id_for("acme", "smb")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20 + 60
        while True:
            async with sessions() as session:
                state = await ProjectionRepository(session).state(onboarding)
            if state is not None and _integration(state).completed_at == ahead:
                break
            assert not any(t.done() for t in tasks), [t.exception() for t in tasks if t.done()]
            assert loop.time() < deadline, "not complete within a minute after its moment"
            await asyncio.sleep(0.2)
        assert datetime.now(UTC) >= ahead  # counted at its moment, not before
    finally:
        await bus.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
