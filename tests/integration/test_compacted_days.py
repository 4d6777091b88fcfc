"""The projector's activity read: a small account's summaries as stored; on PostgreSQL a
large one's equal ``activity.compact`` of the stored rows (then the rows of ``today`` and
later as stored), for any champion."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.domain.activity import ActivityDay, compact, summarize
from shared.domain.facts import EventObserved
from shared.storage import account_events, activity_days, dialect
from shared.storage.events import EventRepository

START = datetime(2026, 3, 2, 9, tzinfo=UTC)


@pytest.mark.parametrize("seed", range(3))
async def test_compacted_days_equal_compact_of_the_stored_summaries(
    sessions: async_sessionmaker[AsyncSession], seed: int
) -> None:
    rnd = random.Random(seed)
    users = [None, *(f"u{k}" for k in range(rnd.randint(30, 60)))]
    events = {
        account: [
            EventObserved(
                f"{account}-{n}",
                account,
                rnd.choice(users),
                rnd.choice(["Logged In", "Page Viewed"]),
                START + timedelta(minutes=rnd.randint(0, 60 * 24 * 30)),
            )
            for n in range(size)
        ]
        for account, size in (("acct-a", 0), ("acct-b", rnd.randint(1, 300)), ("acct-c", 3000))
    }
    async with sessions() as session, session.begin():
        for stored in events.values():
            await EventRepository(session).add_many(stored, source="segment", recorded_at=START)
    wanted = {
        (account, champion)
        for account in events
        for champion in (None, "u0", "u1", "nobody", rnd.choice(users))
    }
    today = (START + timedelta(days=rnd.uniform(-2, 33))).date()
    async with sessions() as session:  # as the projector reads them: caught up first
        await activity_days.catch_up(session, await account_events.sequences(session, events))
        read = await activity_days.compacted_days(session, wanted, today)
        postgres = dialect.is_postgresql(session)
    assert set(read) == wanted
    compacted = set()
    for account, champion in wanted:
        rows = summarize(events[account])
        if postgres and len(rows) > activity_days.COMPACT_ABOVE:
            compacted.add(account)
            expected = [*compact(rows, champion, today), *(d for d in rows if d.day > today)]
        else:
            expected = rows
        assert sorted(read[account, champion], key=_order) == sorted(expected, key=_order)
    assert compacted == ({"acct-c"} if postgres else set())


def _order(d: ActivityDay) -> tuple[date, str, datetime]:
    return d.day, d.user_id or "", d.first_at
