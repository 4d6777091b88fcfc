"""The milestones service on a real broker and PostgreSQL, walked through time with an
injected clock: TTFV, the smb escalation ladder, pauses, resolution and sign-off, each
counted on the output topics as a downstream consumer sees them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus import topics
from shared.bus.messages import FactsNotice
from shared.domain.facts import (
    EvidenceRecorded,
    MilestoneAmended,
    OnboardingPaused,
    OnboardingResumed,
)
from shared.storage.projections import ProjectionRepository

from ..kafka.conftest import BusFactory
from .scenario import (
    SIGNED,
    Clock,
    Instance,
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

pytestmark = pytest.mark.integration
HALF_MINUTE = 30 / 86400  # in days: each due moment is reached half a minute late


@pytest.fixture
async def world(
    buses: BusFactory, pg_url: str, pg_sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[World]:
    """One milestones service instance, the API's side, and a downstream consumer."""
    clock = Clock(SIGNED)
    observer = Observer(await buses("downstream"))
    service: Instance = await start_instance(buses, pg_url, clock, "milestones-a")
    world = World(pg_sessions, await buses("api"), clock, observer)
    yield world
    await observer.stop()
    await service.crash()


async def walk(world: World, days: list[float]) -> None:
    for n in days:
        await world.advance(n)
    await world.observer.caught_up()


async def test_first_value_on_day_9_shows_ttfv_9_and_no_escalations(world: World) -> None:
    onboarding = await world.register("acme")
    world.schedule([*kickoff("acme"), *setup("acme", 5), *first_value("acme", 9)])
    world.schedule(chatter("acme", until=40))
    await walk(world, [1, 3, 5, 7, 9, 10, 14 + HALF_MINUTE, 20, 30, 40])
    state = await world.state(onboarding)
    assert state.ttfv.days == 9 and state.ttfv.breach == "none"
    assert state.escalations == () and state.ladder.state == "none"
    assert world.observer.escalations(onboarding) == []
    reached = [
        m
        for m in world.observer.of(topics.TRANSITIONS, onboarding)
        if m["type"] == "FirstValueReached"
    ]
    assert [(m["ttfv_days"], m["at"]) for m in reached] == [(9.0, day(9).isoformat())]


async def test_stalled_setup_escalates_on_days_14_45_and_60_each_published_once(
    world: World,
) -> None:
    onboarding = await world.register("acme")
    world.schedule(stalled("acme", until=75))
    moments = [1, 4, 13, 14 + HALF_MINUTE, 15, 30, 44, 45 + HALF_MINUTE, 46, 59]
    await walk(world, [*moments, 60 + HALF_MINUTE, 61, 70, 75])
    assert world.observer.escalations(onboarding) == [
        ("EscalationOpened", "technical_completion_late", 1, day(14)),
        ("EscalationRaised", "success_milestone_late", 2, day(45)),
        ("EscalationRaised", "nothing_met", 3, day(60)),
    ]
    raised = world.observer.of(topics.ESCALATIONS, onboarding)[1:]
    assert [(m["from_level"], m["action"]) for m in raised] == [
        (1, "manager_joins_call"),
        (2, "at_risk_save_play"),
    ]
    assert raised[0]["reason"].startswith("success_milestone_late: first_report_delivered")
    state = await world.state(onboarding)
    assert (state.ladder.state, state.ladder.level, state.ladder.rule_key) == (
        "raised",
        3,
        "nothing_met",
    )
    async with world.sessions() as session:
        page = await ProjectionRepository(session).escalations(limit=10)
    assert sorted((e.level, e.rule_key, e.state, e.raised_from) for e in page.items) == [
        (1, "technical_completion_late", "open", None),
        (2, "success_milestone_late", "raised", 1),
        (3, "nothing_met", "raised", 2),
    ]


async def test_ten_day_pause_moves_each_escalation_by_ten_days(world: World) -> None:
    onboarding = await world.register("acme")
    world.schedule(stalled("acme", until=85))
    await walk(world, [1, 2])
    await world.record(
        OnboardingPaused("pause:acme", onboarding, day(2), "customer reorg", "casey")
    )
    await walk(world, [4, 12])
    await world.record(OnboardingResumed("resume:acme", onboarding, day(12), "casey"))
    await walk(world, [14, 15, 23, 24 + HALF_MINUTE, 45, 54, 55 + HALF_MINUTE, 60, 69])
    await walk(world, [70 + HALF_MINUTE, 71, 85])
    assert world.observer.escalations(onboarding) == [
        ("EscalationOpened", "technical_completion_late", 1, day(24)),
        ("EscalationRaised", "success_milestone_late", 2, day(55)),
        ("EscalationRaised", "nothing_met", 3, day(70)),
    ]
    state = await world.state(onboarding)
    assert state.pause.paused_days == 10 and not state.pause.paused


async def test_completing_the_milestone_resolves_its_escalation(world: World) -> None:
    onboarding = await world.register("acme")
    world.schedule([*stalled("acme", until=30), *setup("acme", 20)])
    await walk(world, [1, 4, 14 + HALF_MINUTE, 18, 19, 20, 21, 30])
    assert world.observer.escalations(onboarding) == [
        ("EscalationOpened", "technical_completion_late", 1, day(14)),
        ("EscalationResolved", "technical_completion_late", 1, day(20)),
    ]
    resolved = world.observer.of(topics.ESCALATIONS, onboarding)[1]
    assert resolved["resolution"] == "stage setup exited"
    state = await world.state(onboarding)
    assert (state.ladder.state, state.ladder.resolved_at) == ("resolved", day(20))
    assert state.escalations[0].resolution == "stage setup exited"
    async with world.sessions() as session:
        page = await ProjectionRepository(session).escalations(open_only=False, limit=10)
    assert [(e.state, e.resolution) for e in page.items] == [("resolved", "stage setup exited")]


async def test_sponsor_confirmation_flips_successfully_onboarded_published_once(
    world: World,
) -> None:
    onboarding = await world.register("acme")
    world.schedule([*kickoff("acme"), *setup("acme", 5), *first_value("acme", 9)])
    world.schedule(chatter("acme", until=30))
    await walk(world, [1, 5, 9, 11])
    assert (await world.state(onboarding)).onboarded_at is None
    confirmation = EvidenceRecorded(
        "evidence:acme:sponsor",
        onboarding,
        "sponsor_confirmation",
        day(11) - timedelta(hours=2),
        "Dana Reyes (VP Operations)",
        "email",
        quote="The weekly report replaced our spreadsheet; we are live.",
        recorded_by="casey",
    )
    state = await world.record(confirmation)
    assert state.onboarded_at == confirmation.at and state.status == "onboarded"
    await world.record(confirmation)  # a retried API call
    notice = FactsNotice("acme", ("acme:Report Delivered:9:u00",))
    await world.bus.publish(topics.FACTS, "acme", notice.encode())  # redelivered
    await walk(world, [12, 20, 30])
    flips = [
        m
        for m in world.observer.of(topics.TRANSITIONS, onboarding)
        if m["type"] == "SuccessfullyOnboarded"
    ]
    assert [(m["at"], m["plan_key"]) for m in flips] == [(confirmation.at.isoformat(), "smb")]
    assert world.observer.ids().most_common(1)[0][1] == 1


async def test_amendment_keeps_author_date_reason_and_the_prior_definition(world: World) -> None:
    onboarding = await world.register("acme")
    await world.advance(2)
    change = MilestoneAmended(
        "amend:acme:report",
        onboarding,
        day(2),
        "first_report_delivered",
        author="casey",
        reason="the customer's first board meeting moved",
        title="First board report delivered",
        due_day=30,
    )
    await world.record(change)
    async with world.sessions() as session:
        stored = await ProjectionRepository(session).state_dict(onboarding)
    assert stored is not None
    [amendment] = stored["amendments"]
    assert (amendment["author"], amendment["reason"], amendment["at"]) == (
        "casey",
        "the customer's first board meeting moved",
        day(2).isoformat(),
    )
    assert amendment["due_day"] == 30
    assert amendment["previous"] == {
        "title": "First report delivered",
        "description": "",
        "due_day": 14,
    }
    report = next(m for m in stored["milestones"] if m["key"] == "first_report_delivered")
    assert report["due_at"] == day(30).isoformat()
