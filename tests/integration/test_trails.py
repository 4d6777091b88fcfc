"""The database's trail aggregates equal ``trail_stats`` over the stored events, and a live
stream of logins projected batch by batch (the trail path) equals ``evaluate``."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.domain.codec import state_to_dict
from shared.domain.evaluate import evaluate
from shared.domain.facts import EventObserved, OnboardingRegistered
from shared.domain.trail import Trail, trail_stats
from shared.plan_files import default_plans
from shared.projection.projector import project_many
from shared.storage import account_events
from shared.storage.events import EventRepository
from shared.storage.onboardings import OnboardingRepository
from shared.storage.projections import ProjectionRepository

PLANS = default_plans()
START = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _events(rnd: random.Random, account: str, n: int) -> list[EventObserved]:
    """Ids that order differently by code point and by a locale (case, digits, dashes),
    unique across accounts (the id is the dedupe key); times with ties, user-less events."""
    users = [None, *(f"u{k}" for k in range(rnd.randint(1, 80)))]
    names = ["Logged In", "Logged In", "Record Created", "Page Viewed"]
    moments = [START + timedelta(hours=rnd.randint(0, 24 * 20)) for _ in range(n // 3 + 1)]
    alphabet = "aB9-_zZ0é"
    found = {}
    for _ in range(n):
        event_id = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 8))) + account[-1]
        found[event_id] = EventObserved(
            event_id,
            account,
            rnd.choice(users),
            rnd.choice(names),
            rnd.choice(moments),
            {"k": rnd.randint(0, 3)},
        )
    return list(found.values())


@pytest.mark.parametrize("seed", range(3))
async def test_trail_aggregates_equal_trail_stats_over_the_stored_events(
    sessions: async_sessionmaker[AsyncSession], seed: int
) -> None:
    rnd = random.Random(seed)
    stored = {a: _events(rnd, a, rnd.randint(0, 900)) for a in ("acct-a", "acct-b")}
    async with sessions() as session, session.begin():
        for events in stored.values():
            await EventRepository(session).add_many(events, source="segment", recorded_at=START)
    wanted = []
    for _ in range(12):
        account = rnd.choice(sorted(stored))
        names = rnd.choice([("Logged In",), ("Logged In", "Record Created"), ("Nothing",)])
        since = START + timedelta(hours=rnd.randint(-24, 24 * 20))
        wide = since - timedelta(hours=rnd.choice([0, 0, rnd.randint(0, 24 * 9)]))
        until = since + timedelta(hours=rnd.randint(0, 24 * 9))
        wanted.append((account, Trail(names, wide, since, until)))
    async with sessions() as session:
        read = await account_events.trails(session, wanted)
    assert len(read) == len(set(wanted))
    for account, trail in wanted:
        assert read[account, trail] == trail_stats(trail, stored[account])


async def test_a_live_stream_of_logins_folds_to_evaluate(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Logins in event-time order, projected after each small batch at the moment just past
    it: the rolling rules stay open (their trails answer) until enough users meet."""
    rnd = random.Random(7)
    plan = PLANS["mid_market"]
    registration = OnboardingRegistered(
        "reg-live", "onb-live", "acct-live", plan.key, START, champion_user_id="u00"
    )
    users = [f"u{k:02d}" for k in range(14)]
    at, events = START, []
    for k in range(260):
        at += timedelta(minutes=rnd.randint(0, 90))
        events.append(EventObserved(f"live-{k}", "acct-live", rnd.choice(users), "Logged In", at))
    async with sessions() as session, session.begin():
        await OnboardingRepository(session).register(registration, START)
    for start in range(0, len(events), 20):
        batch = events[start : start + 20]
        now = batch[-1].at + timedelta(seconds=5)
        async with sessions() as session, session.begin():
            await EventRepository(session).add_many(batch, source="segment", recorded_at=now)
        async with sessions() as session, session.begin():
            await project_many(session, PLANS, [registration.onboarding_id], now)
        async with sessions() as session:
            stored = await ProjectionRepository(session).state_dict(registration.onboarding_id)
        expected = evaluate(plan, registration, [registration, *events[: start + 20]], now)
        assert stored == state_to_dict(expected)
    adoption = next(m for m in expected.milestones if m.key == "team_adoption")
    assert adoption.completed_at is not None  # it did complete, mid-stream
