"""Summaries folded when read (``activity_days.catch_up``) count every stored event once.

Random histories (duplicates, events out of time order, several accounts) are stored in
random batches with catch-ups of random accounts between them — some of them two at once,
from two sessions, as two milestones instances would — and the summaries then equal
``summarize`` of every stored event (the reference), and every mark stands at its
account's insert number. On SQLite the insert keeps the summaries and catching up is a
no-op; the same equality holds.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from shared.domain.activity import ActivityDay, summarize
from shared.domain.facts import EventObserved
from shared.storage import account_events, activity_days, create_engine, create_sessionmaker
from shared.storage.dialect import is_postgresql
from shared.storage.events import EventRepository
from shared.storage.tables import ActivityMarkRecord

EXAMPLES = 60 if os.environ.get("CI") == "true" else 20
START = datetime(2026, 3, 2, tzinfo=UTC)
ACCOUNTS = ("a", "b", "c")

pool = st.lists(
    st.tuples(
        st.sampled_from(ACCOUNTS),
        st.sampled_from([None, "u0", "u1", "u2"]),
        st.integers(0, 4 * 24 * 60),  # minutes: four days, in any order
    ),
    min_size=1,
    max_size=40,
)
# each step: a batch (indexes into the pool, repeats allowed) and the accounts caught up
# after it, once or from two sessions at the same time
steps = st.lists(
    st.tuples(
        st.lists(st.integers(0, 39), max_size=25),
        st.sets(st.sampled_from(ACCOUNTS)),
        st.booleans(),
    ),
    min_size=1,
    max_size=6,
)


def test_caught_up_summaries_count_every_stored_event_once(database_url: str) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(pool=pool, steps=steps)
    def check(pool: list[tuple[str, str | None, int]], steps: list[object]) -> None:
        asyncio.run(_check(database_url, pool, steps))  # type: ignore[arg-type]

    check()


async def _check(
    url: str,
    pool: list[tuple[str, str | None, int]],
    steps: list[tuple[list[int], set[str], bool]],
) -> None:
    run = uuid.uuid4().hex[:8]  # this example's accounts: the database is shared
    events = [
        EventObserved(f"{run}-{n}", f"{run}-{a}", user, "Page Viewed", START + timedelta(minutes=m))
        for n, (a, user, m) in enumerate(pool)
    ]
    accounts = [f"{run}-{a}" for a in ACCOUNTS]
    engine = create_engine(url, application_name="firstvalue-tests")
    sessions = create_sessionmaker(engine)

    async def catch_up(wanted: set[str]) -> None:
        async with sessions() as session, session.begin():
            seqs = await account_events.sequences(session, wanted)
            await activity_days.catch_up(session, seqs)

    stored: list[EventObserved] = []
    try:
        for batch, wanted, twice in steps:
            rows = [events[i] for i in batch if i < len(events)]
            async with sessions() as session, session.begin():
                await EventRepository(session).add_many(rows, source="segment", recorded_at=START)
            stored += rows
            chosen = {f"{run}-{a}" for a in wanted}
            await asyncio.gather(*(catch_up(chosen) for _ in range(2 if twice else 1)))
        await catch_up(set(accounts))
        async with sessions() as session:
            read = await activity_days.summaries(session, accounts)
            seqs = await account_events.sequences(session, accounts)
            m = ActivityMarkRecord
            result = await session.execute(
                select(m.account_id, m.seq).where(m.account_id.in_(accounts))
            )
            marks = {account: seq for account, seq in result}
            postgresql = is_postgresql(session)
    finally:
        await engine.dispose()
    for account in accounts:
        expected = summarize(e for e in stored if e.account_id == account)
        assert sorted(read[account], key=_order) == sorted(expected, key=_order)
        if postgresql and seqs[account]:
            assert marks[account] == seqs[account]


def _order(day: ActivityDay) -> tuple[str, date]:
    return (day.user_id or "", day.day)
