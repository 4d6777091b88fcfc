"""Several milestones instances at once: timer pages are claimed with SKIP LOCKED, facts
partitions are split by the consumer group, and across a restart every transition and
escalation reaches the topics exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.milestones.timers import fire_due
from shared.bus import topics
from shared.bus.memory import MemoryBus
from shared.domain.facts import EvidenceRecorded, OnboardingPaused, OnboardingResumed
from shared.storage.projections import ProjectionRepository

from ..kafka.conftest import BusFactory
from .scenario import (
    PLANS,
    SIGNED,
    Clock,
    Observer,
    World,
    chatter,
    day,
    first_value,
    kickoff,
    setup,
    stalled,
    start_instance,
)

ACCOUNTS = [f"acct-{n:02d}" for n in range(12)]


async def register_silent(world: World, count: int) -> list[str]:
    return [await world.register(f"quiet-{n:02d}") for n in range(count)]


async def test_concurrent_timer_claims_take_disjoint_pages(
    buses: BusFactory, pg_sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = World(pg_sessions, await buses("api"), Clock(SIGNED), Observer(await buses("obs")))
    ids = await register_silent(world, 10)
    now = day(20)
    async with pg_sessions() as first, first.begin():
        mine = await ProjectionRepository(first).claim_due(now, 6)
        async with pg_sessions() as second, second.begin():
            theirs = await ProjectionRepository(second).claim_due(now, 10)
    assert len(mine) == 6 and len(theirs) == 4
    assert sorted(mine + theirs) == sorted(ids)
    await world.observer.stop()


async def test_concurrent_ticks_re_evaluate_each_due_onboarding_once(
    buses: BusFactory, pg_sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = World(pg_sessions, await buses("api"), Clock(SIGNED), Observer(await buses("obs")))
    ids = await register_silent(world, 40)
    bus = MemoryBus()
    now = day(20)  # every one of them is due: escalations, SLAs, silence
    counts = await asyncio.gather(
        *(fire_due(pg_sessions, bus, PLANS, now, limit=5) for _ in range(3))
    )
    assert sum(counts) == len(ids)
    announced = Counter(m.value for m in bus.messages(topics.TRANSITIONS))
    assert set(announced.values()) <= {1}
    await world.observer.stop()


async def test_two_instances_and_a_restart_publish_everything_exactly_once(
    buses: BusFactory, pg_url: str, pg_sessions: async_sessionmaker[AsyncSession]
) -> None:
    clock = Clock(SIGNED)
    world = World(pg_sessions, await buses("api"), clock, Observer(await buses("downstream")))
    a = await start_instance(buses, pg_url, clock, "milestones-a")
    b = await start_instance(buses, pg_url, clock, "milestones-b")
    instances = [a, b]
    try:
        onboardings = {account: await world.register(account) for account in ACCOUNTS}
        for n, account in enumerate(ACCOUNTS):
            if n % 3 == 0:
                world.schedule(stalled(account, until=75))
            elif n % 3 == 1:
                world.schedule([*kickoff(account), *setup(account, 5), *first_value(account, 9)])
                world.schedule(chatter(account, until=75))
            else:
                world.schedule([*stalled(account, until=75), *setup(account, 20)])
        for n in [1, 4, 5, 9]:
            await world.advance(n)
        await world.advance(12)
        for account in ACCOUNTS[1::3]:
            await world.record(
                EvidenceRecorded(
                    f"sponsor:{account}",
                    onboardings[account],
                    "sponsor_confirmation",
                    day(12) - timedelta(hours=1),
                    "Dana (VP Ops)",
                    "email",
                )
            )
        for n in [14, 15, 20, 21]:
            await world.advance(n)
        for account in ACCOUNTS[2::3]:
            await world.record(
                OnboardingPaused(
                    f"pause:{account}", onboardings[account], day(21), "reorg", "casey"
                )
            )
        await world.advance(30, settle=False)  # work in flight: b is restarted in the middle of it
        await b.crash()
        b = await start_instance(buses, pg_url, clock, "milestones-b2")
        await world.settle()
        await world.advance(31)
        for account in ACCOUNTS[2::3]:
            await world.record(
                OnboardingResumed(f"resume:{account}", onboardings[account], day(31), "casey")
            )
        await world.advance(44)
        await world.advance(45, settle=False)  # and a at the ladder's raise to level 2
        await a.crash()
        a = await start_instance(buses, pg_url, clock, "milestones-a2")
        instances[0] = a
        for n in [45, 46, 59, 60, 61, 75]:
            await world.advance(n)
        await world.observer.caught_up()

        for onboarding_id in onboardings.values():  # one account's messages stay in order
            for topic in (topics.TRANSITIONS, topics.ESCALATIONS):
                moments = [m["at"] for m in world.observer.of(topic, onboarding_id)]
                assert moments == sorted(moments), (topic, onboarding_id)
        published = world.observer.ids()
        assert published and max(published.values()) == 1, published.most_common(3)
        for topic in (topics.TRANSITIONS, topics.ESCALATIONS):
            expected: set[str] = set()
            for onboarding_id in onboardings.values():
                expected |= (await world.expected_ids(onboarding_id))[topic]
            assert {m["id"] for m in world.observer.received[topic]} == expected, topic
        kinds = Counter(m["type"] for m in world.observer.received[topics.ESCALATIONS])
        # stalled: opened day 14, raised 45 and 60; set up on day 20: resolved, then (paused 10
        # days) the success milestone opens a fresh episode on day 55
        assert kinds == {"EscalationOpened": 12, "EscalationRaised": 8, "EscalationResolved": 4}
        flips = [
            m
            for m in world.observer.received[topics.TRANSITIONS]
            if m["type"] == "SuccessfullyOnboarded"
        ]
        assert len(flips) == 4
    finally:
        await world.observer.stop()
        for instance in instances:
            await instance.crash()
