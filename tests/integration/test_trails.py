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
from shared.domain.trail import Slide, Trail, slide_rows, trail_stats
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
    numbered = await _store_in_three_inserts(sessions, rnd)
    wanted = []
    for _ in range(12):
        account, names, since = _asked(rnd, numbered)
        wide = since - timedelta(hours=rnd.choice([0, 0, rnd.randint(0, 24 * 9)]))
        until = since + timedelta(hours=rnd.randint(0, 24 * 9))
        wanted.append((account, Trail(names, wide, since, until)))
    seqs = {a: rnd.randint(0, 3) for a in numbered}
    async with sessions() as session:
        read = await account_events.trails(session, wanted, seqs)
    assert len(read) == len(set(wanted))
    for account, trail in wanted:
        upto = [e for e, n in numbered[account] if n <= seqs[account]]
        assert read[account, trail] == trail_stats(trail, upto)
    assert any(s.tally is not None and s.tally.count for s in read.values())


@pytest.mark.parametrize("seed", range(3))
async def test_slide_rows_equal_slide_rows_over_the_stored_events(
    sessions: async_sessionmaker[AsyncSession], seed: int
) -> None:
    rnd = random.Random(seed)
    numbered = await _store_in_three_inserts(sessions, rnd)
    wanted = []
    for _ in range(12):
        account, names, since0 = _asked(rnd, numbered)
        until0 = since0 + timedelta(hours=rnd.randint(0, 24 * 7))
        step = timedelta(hours=rnd.randint(0, 24 * 3))
        since1, until1 = since0 + step, until0 + step
        reach = since0 - timedelta(hours=rnd.choice([0, rnd.randint(0, 48)]))
        seq = rnd.randint(0, 3)
        wanted.append((account, Slide(names, seq, reach, since0, since1, until0, until1)))
    async with sessions() as session:
        read = await account_events.slides(session, wanted)
    assert len(read) == len(set(wanted))
    for account, slide in wanted:
        assert read[account, slide] == slide_rows(slide, numbered[account])
    assert any(any(m is not None for m in r.nexts.values()) for r in read.values())


def _asked(
    rnd: random.Random, numbered: dict[str, list[tuple[EventObserved, int]]]
) -> tuple[str, tuple[str, ...], datetime]:
    """A random read's account, names and first moment."""
    account = rnd.choice(sorted(numbered))
    names = rnd.choice([("Logged In",), ("Logged In", "Record Created"), ("Nothing",)])
    return account, names, START + timedelta(hours=rnd.randint(-24, 24 * 20))


async def _store_in_three_inserts(
    sessions: async_sessionmaker[AsyncSession], rnd: random.Random
) -> dict[str, list[tuple[EventObserved, int]]]:
    """Two accounts' random events stored in three inserts each (insert numbers 1 to 3)."""
    numbered: dict[str, list[tuple[EventObserved, int]]] = {}
    for account in ("acct-a", "acct-b"):
        events = _events(rnd, account, rnd.randint(0, 900))
        cuts = sorted(rnd.randint(0, len(events)) for _ in range(2))
        parts = [events[: cuts[0]], events[cuts[0] : cuts[1]], events[cuts[1] :]]
        numbered[account] = []
        for seq, part in enumerate(parts, start=1):
            async with sessions() as session, session.begin():
                repository = EventRepository(session)
                await repository.add_many(part or events[:1], source="segment", recorded_at=START)
            numbered[account] += [(e, seq) for e in part]
    return numbered


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
