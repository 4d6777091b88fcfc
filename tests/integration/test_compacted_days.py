"""The database's compacted activity summaries equal ``activity.compact`` of the stored rows
(and the rows of ``today`` and later as stored), for any champion, on both backends."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.domain.activity import compact, summarize
from shared.domain.facts import EventObserved
from shared.storage import activity_days
from shared.storage.events import EventRepository

START = datetime(2026, 3, 2, 9, tzinfo=UTC)


@pytest.mark.parametrize("seed", range(3))
async def test_compacted_days_equal_compact_of_the_stored_summaries(
    sessions: async_sessionmaker[AsyncSession], seed: int
) -> None:
    rnd = random.Random(seed)
    users = [None, *(f"u{k}" for k in range(rnd.randint(1, 40)))]
    events = {
        account: [
            EventObserved(
                f"{account}-{n}",
                account,
                rnd.choice(users),
                rnd.choice(["Logged In", "Page Viewed"]),
                START + timedelta(minutes=rnd.randint(0, 60 * 24 * 30)),
            )
            for n in range(rnd.randint(0, 1500))
        ]
        for account in ("acct-a", "acct-b", "acct-c")
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
    async with sessions() as session:
        read = await activity_days.compacted_days(session, wanted, today)
    assert set(read) == wanted
    for account, champion in wanted:
        rows = summarize(events[account])
        expected = [*compact(rows, champion, today), *(d for d in rows if d.day > today)]
        assert read[account, champion] == expected
