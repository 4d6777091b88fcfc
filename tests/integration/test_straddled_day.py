"""The projector's reads where a day straddles ``now``, on both backends: the day's
summaries up to ``now`` have the moments ``summarize`` gives its events up to ``now``,
whether a straddling user's last event before ``now`` is seconds, minutes or hours old
(PostgreSQL looks back further and further) and whatever the events after ``now``; and
the first event after ``now`` is the earliest one stored after it."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.domain.activity import ActivityDay, straddles, summarize
from shared.domain.facts import EventObserved
from shared.storage import account_events, activity_days
from shared.storage.events import EventRepository

NOW = datetime(2026, 3, 12, 15, 30, 0, 250_000, tzinfo=UTC)
NAMES = ("Logged In", "Page Viewed", "Report Delivered", "Workflow Run")

# How long before ``now`` a user's last event up to ``now`` lies: each of ``LOOK_BACK``'s
# rounds finds some, the day's events the rest (the first event of the day, at midnight).
AGES = (
    timedelta(0),
    timedelta(milliseconds=3),
    timedelta(seconds=4),
    timedelta(seconds=40),
    timedelta(minutes=30),
    timedelta(hours=4),
    NOW - datetime.combine(NOW.date(), time(), UTC),
)


def _history(rnd: random.Random, account: str) -> list[EventObserved]:
    """Users whose last event up to ``now`` is of each age, most with events after ``now``
    too, some before ``now``'s day, some only after ``now``; the user-less events too."""
    users = [None, *(f"u{k}" for k in range(rnd.randint(8, 30)))]
    events: list[EventObserved] = []

    def add(user: str | None, at: datetime) -> None:
        n = len(events)
        events.append(EventObserved(f"{account}-{n}", account, user, rnd.choice(NAMES), at))

    for user in users:
        if rnd.random() < 0.15:  # active only after ``now`` (or not today at all)
            add(user, NOW + timedelta(seconds=rnd.uniform(0.001, 3600)))
            continue
        last = NOW - rnd.choice(AGES)
        add(user, last)
        start = datetime.combine(NOW.date(), time(), UTC)
        for _ in range(rnd.randint(0, 6)):  # earlier ones of the day
            add(user, start + (last - start) * rnd.random())
        for _ in range(rnd.randint(0, 3)):  # days before
            add(user, last - timedelta(days=rnd.randint(1, 3)))
        for _ in range(rnd.choice((0, 1, 1, 4))):  # after ``now``: the row straddles
            add(user, NOW + timedelta(microseconds=1) + timedelta(minutes=rnd.uniform(0, 90)))
    for _ in range(rnd.randint(0, 300)):  # noise from the busiest users, just before ``now``
        add(rnd.choice(users[1:4]), NOW - timedelta(seconds=rnd.uniform(0, 2)))
    return events


async def _store(
    sessions: async_sessionmaker[AsyncSession],
    history: dict[str, list[EventObserved]],
    rnd: random.Random,
) -> None:
    """Store each account's events through the repository, in any order."""
    async with sessions() as session, session.begin():
        for events in history.values():
            rnd.shuffle(events)
            await EventRepository(session).add_many(events, source="segment", recorded_at=NOW)


def _moments(days: list[ActivityDay]) -> list[tuple[str, date, datetime, datetime]]:
    return sorted((d.user_id or "", d.day, d.first_at, d.last_at) for d in days)


@pytest.mark.parametrize("seed", range(4))
async def test_a_straddled_day_up_to_now_has_the_moments_of_its_events_up_to_now(
    sessions: async_sessionmaker[AsyncSession], seed: int
) -> None:
    rnd = random.Random(seed)
    history = {a: _history(rnd, a) for a in ("acct-a", "acct-b")}
    await _store(sessions, history, rnd)
    async with sessions() as session:  # as the projector reads them: caught up first
        await activity_days.catch_up(session, await account_events.sequences(session, history))
        stored = await activity_days.summaries(session, list(history))
        assert all(straddles(rows, NOW) for rows in stored.values())
        today = {a: [d for d in rows if d.day == NOW.date()] for a, rows in stored.items()}
        read = await activity_days.day_upto(session, today, NOW)
    for account, events in history.items():
        expected = summarize(e for e in events if e.at.date() == NOW.date() and e.at <= NOW)
        assert _moments(read[account]) == _moments(expected)


@pytest.mark.parametrize("seed", range(3))
async def test_the_first_event_after_now_is_the_earliest_stored_after_it(
    sessions: async_sessionmaker[AsyncSession], seed: int
) -> None:
    rnd = random.Random(seed)
    history = {a: _history(rnd, a) for a in ("acct-a", "acct-b")}
    history["acct-c"] = [e for e in _history(rnd, "acct-c") if e.at <= NOW]  # none after
    await _store(sessions, history, rnd)
    moments = sorted({e.at for events in history.values() for e in events})
    for now in (NOW, *rnd.sample(moments, 5)):
        async with sessions() as session:
            read = await account_events.first_after(session, [*history, "acct-none"], now)
        expected = {
            a: min((e.at for e in es if e.at > now), default=None) for a, es in history.items()
        }
        assert read == {**expected, "acct-none": None}
