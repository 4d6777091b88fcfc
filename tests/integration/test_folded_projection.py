"""The folded projection on a real database equals ``evaluate`` over every stored fact.

Seeded random histories (duplicates, shuffled order, late events, events ahead of ``now``,
pauses, resumes, amendments, evidence) are stored batch by batch through the repositories,
projected after each batch, and compared with the oracle over ``facts_for``; the summaries
the insert keeps equal those of the stored events, and ``rebuild`` makes the same.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.domain.activity import ActivityDay, summarize
from shared.domain.codec import state_to_dict
from shared.domain.evaluate import evaluate
from shared.domain.facts import (
    EventObserved,
    EvidenceRecorded,
    Fact,
    ManualFact,
    MilestoneAmended,
    OnboardingPaused,
    OnboardingRegistered,
    OnboardingResumed,
)
from shared.plan_files import default_plans
from shared.projection.folded import state_as_of
from shared.projection.projector import project_many
from shared.storage import activity_days
from shared.storage.events import EventRepository
from shared.storage.onboardings import OnboardingRepository
from shared.storage.projections import ProjectionRepository
from shared.storage.tables import ActivityDayRecord, EventRecord

PLANS = default_plans()
MINUTE = timedelta(minutes=1)
SIGNED = datetime(2026, 3, 2, 9, tzinfo=UTC)
NAMES = [
    ("Kickoff Call Completed", {}),
    ("Success Criteria Agreed", {}),
    ("Executive Sponsor Named", {}),
    ("Integration Connected", {}),
    ("Data Sync Completed", {"status": "success"}),
    ("Data Sync Completed", {"status": "failed"}),
    ("Workflow Run", {"environment": "production"}),
    ("Training Completed", {}),
    ("Logged In", {}),
    ("Logged In", {}),
    ("Record Created", {}),
    ("Report Delivered", {}),
    ("Page Viewed", {}),
    ("Page Viewed", {}),
]


def _at(days: float) -> datetime:
    return SIGNED + timedelta(days=days)


def _history(rnd: random.Random, n: int) -> tuple[OnboardingRegistered, list[Fact]]:
    plan = rnd.choice(sorted(PLANS))
    account, onboarding = f"acct-{n}", f"onb-{n}"
    registration = OnboardingRegistered(
        f"reg-{n}", onboarding, account, plan, SIGNED, champion_user_id="u00"
    )
    facts: list[Fact] = []
    users = [f"u{k:02d}" for k in range(rnd.randint(3, 34))]
    live = rnd.uniform(3, 40)
    for name, props in (NAMES[3], NAMES[4], NAMES[6], NAMES[11]):
        facts.append(EventObserved(f"{n}-{name}", account, "u01", name, _at(live), props))
    for k in range(rnd.randint(20, 160)):
        name, props = rnd.choice(NAMES)
        when = live + rnd.uniform(-2, 30) if rnd.random() < 0.5 else rnd.uniform(-3, 120)
        user = rnd.choice([*users, None])
        facts.append(EventObserved(f"{n}-e{k}", account, user, name, _at(when), props))
    for k in range(rnd.randint(0, 5)):
        when = _at(rnd.uniform(0, 110))
        facts.append(
            rnd.choice(
                [
                    EvidenceRecorded(
                        f"{n}-ev{k}", onboarding, "sponsor_confirmation", when, "Dana", "email"
                    ),
                    OnboardingPaused(f"{n}-p{k}", onboarding, when, "reorg"),
                    OnboardingResumed(f"{n}-r{k}", onboarding, when),
                    MilestoneAmended(
                        f"{n}-a{k}",
                        onboarding,
                        when,
                        "integration_connected",
                        "casey",
                        "x",
                        due_day=rnd.randint(5, 50),
                    ),
                ]
            )
        )
    facts += rnd.sample(facts, k=min(len(facts), rnd.randint(0, 10)))  # duplicates
    rnd.shuffle(facts)
    return registration, facts


async def _store(session: AsyncSession, batch: list[Fact], rnd: random.Random) -> None:
    events = [f for f in batch if isinstance(f, EventObserved)]
    repo = EventRepository(session)
    if rnd.random() < 0.5:
        await repo.add_many(events, source="segment", recorded_at=SIGNED)
    else:
        rows = [(e.id, e.account_id, e.user_id, e.name, e.at, e.properties) for e in events]
        await repo.add_rows(rows, source="segment", recorded_at=SIGNED)
    for fact in batch:
        if not isinstance(fact, EventObserved | OnboardingRegistered):
            manual: ManualFact = fact  # type: ignore[assignment]
            await OnboardingRepository(session).add_fact(manual, SIGNED)


async def _summaries(session: AsyncSession, account: str) -> list[ActivityDay]:
    a = ActivityDayRecord
    rows = (await session.scalars(select(a).where(a.account_id == account))).all()
    days = [
        ActivityDay(r.user_key[2:] or None, r.day, r.first_at, r.last_at, r.events) for r in rows
    ]
    return sorted(days, key=lambda d: (d.day, d.user_id or "", d.first_at))


@pytest.mark.parametrize("seed", range(6))
async def test_folded_projections_equal_evaluate_batch_by_batch(
    sessions: async_sessionmaker[AsyncSession], seed: int
) -> None:
    rnd = random.Random(seed)
    registration, facts = _history(rnd, seed)
    plan = PLANS[registration.plan_key]
    async with sessions() as session, session.begin():
        await OnboardingRepository(session).register(registration, SIGNED)
    cuts = sorted(rnd.sample(range(1, len(facts)), k=4))
    now = _at(rnd.uniform(0, 30))
    for start, end in zip([0, *cuts], [*cuts, len(facts)], strict=True):
        now += timedelta(days=rnd.uniform(0, 25))
        async with sessions() as session, session.begin():
            await _store(session, facts[start:end], rnd)
        async with sessions() as session, session.begin():
            await project_many(session, PLANS, [registration.onboarding_id], now)
        async with sessions() as session:
            stored = await ProjectionRepository(session).state_dict(registration.onboarding_id)
            loaded = await OnboardingRepository(session).facts_for(registration.onboarding_id)
            assert loaded is not None
            assert stored == state_to_dict(evaluate(plan, registration, loaded[1], now))
    async with sessions() as session:
        as_of = _at(rnd.uniform(0, 120))
        past = await state_as_of(session, registration, plan, as_of)
        upto = await OnboardingRepository(session).facts_for(
            registration.onboarding_id, as_of=as_of
        )
        assert upto is not None
        assert past == evaluate(plan, registration, upto[1], as_of)
        stored_events = [f for f in upto[1] if isinstance(f, EventObserved)]
        everything = await EventRepository(session).for_account(registration.account_id)
        assert len(stored_events) <= len(everything)
        kept = await _summaries(session, registration.account_id)
        assert kept == summarize(everything)  # duplicates counted once
    async with sessions() as session, session.begin():
        await activity_days.rebuild(session, [registration.account_id])
    async with sessions() as session:
        assert await _summaries(session, registration.account_id) == kept


async def test_bulk_loaded_events_are_folded_after_rebuild(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Events written around the repository (a bulk load) have no sequence and no summary
    until ``rebuild``; after it the projection equals the oracle."""
    registration, facts = _history(random.Random(99), 99)
    plan = PLANS[registration.plan_key]
    events = list({f.id: f for f in facts if isinstance(f, EventObserved)}.values())
    async with sessions() as session, session.begin():
        await OnboardingRepository(session).register(registration, SIGNED)
        session.add_all(
            EventRecord(
                id=e.id,
                account_id=e.account_id,
                user_id=e.user_id,
                name=e.name,
                occurred_at=e.at,
                properties=dict(e.properties),
                source="segment",
                recorded_at=SIGNED,
            )
            for e in events
        )
    async with sessions() as session, session.begin():
        await activity_days.rebuild(session, [registration.account_id])
    now = _at(125)
    async with sessions() as session, session.begin():
        [state] = await project_many(session, PLANS, [registration.onboarding_id], now)
    assert state == evaluate(plan, registration, events, now)
    late = EventObserved("late-1", registration.account_id, "u09", "Page Viewed", _at(124))
    async with sessions() as session, session.begin():
        await EventRepository(session).add_many([late], source="segment", recorded_at=now)
        [again] = await project_many(session, PLANS, [registration.onboarding_id], now)
    assert again == evaluate(plan, registration, [*events, late], now)


async def test_a_batch_reads_only_the_rule_events_it_needs(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once folded, a batch of page views reads no rule events but an unfinished rolling
    window's (the shipped plans' weekly-active rule), whatever the account's history."""
    registration, facts = _history(random.Random(7), 7)
    async with sessions() as session, session.begin():
        await OnboardingRepository(session).register(registration, SIGNED)
        await _store(session, facts, random.Random(1))
    now = _at(126)
    async with sessions() as session, session.begin():
        await project_many(session, PLANS, [registration.onboarding_id], now)
    spans: list[Any] = []
    from shared.storage import account_events

    real = account_events.in_spans

    async def counting(session: AsyncSession, wanted: Any) -> Any:
        spans.extend(wanted)
        return await real(session, wanted)

    monkeypatch.setattr(account_events, "in_spans", counting)
    views = [
        EventObserved(
            f"pv-{k}", registration.account_id, "u03", "Page Viewed", now - timedelta(minutes=k)
        )
        for k in range(100)
    ]
    later = now + timedelta(minutes=5)
    async with sessions() as session, session.begin():
        await EventRepository(session).add_many(views, source="segment", recorded_at=later)
        [state] = await project_many(session, PLANS, [registration.onboarding_id], later)
    async with sessions() as session:
        loaded = await OnboardingRepository(session).facts_for(registration.onboarding_id)
    assert loaded is not None
    assert state == evaluate(PLANS[registration.plan_key], registration, loaded[1], later)
    # only an unfinished rolling rule reads, and only its last window: never the history
    assert all(n == "Logged In" and since >= now - timedelta(days=7) for _, n, since, _ in spans)
