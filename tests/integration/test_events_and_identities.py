"""Events are stored once per id; events of unlinked users wait and are applied once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.domain.facts import EventObserved
from shared.storage.events import EventRepository
from shared.storage.identities import IdentityRepository, UnattributedEvent

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def event(event_id: str, at: datetime = T0, account: str = "acme") -> EventObserved:
    return EventObserved(event_id, account, "u1", "Logged In", at, {"plan": "pro", "n": 1})


async def test_the_same_event_twice_is_stored_once_and_reported_duplicate(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        first = await EventRepository(session).add_many(
            [event("m1"), event("m2"), event("m1")], source="segment", recorded_at=T0
        )
    async with sessions() as session, session.begin():
        second = await EventRepository(session).add_many(
            [event("m2"), event("m3")], source="segment", recorded_at=T0
        )
    async with sessions() as session:
        stored = await EventRepository(session).for_account("acme")
        assert await EventRepository(session).count() == 3
    assert first == {"m1", "m2"}
    assert second == {"m3"}
    assert [e.id for e in stored] == ["m1", "m2", "m3"]
    assert stored[0].properties == {"plan": "pro", "n": 1}
    assert stored[0].at == T0 and stored[0].at.tzinfo is not None


async def test_account_events_come_back_in_event_time_order_up_to_a_moment(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    events = [
        event("late", T0 + timedelta(days=2)),
        event("early", T0 - timedelta(days=1)),
        event("other", T0, account="globex"),
    ]
    async with sessions() as session, session.begin():
        await EventRepository(session).add_many(events, source="segment", recorded_at=T0)
    async with sessions() as session:
        everything = await EventRepository(session).for_account("acme")
        until = await EventRepository(session).for_account("acme", until=T0)
    assert [e.id for e in everything] == ["early", "late"]
    assert [e.id for e in until] == ["early"]


async def test_pending_events_are_parked_once_and_taken_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    parked = [
        UnattributedEvent("p1", "u9", "Logged In", T0, {}),
        UnattributedEvent("p2", "u9", "X", T0),
    ]
    async with sessions() as session, session.begin():
        identities = IdentityRepository(session)
        assert await identities.add_pending(parked, T0) == {"p1", "p2"}
        assert await identities.add_pending(parked[:1], T0) == set()
        assert await identities.claim(["u9"]) == {"u9": None}
    async with sessions() as session, session.begin():
        identities = IdentityRepository(session)
        await identities.link("u9", "acme", T0)
        taken = await identities.take_pending("u9")
        assert await identities.take_pending("u9") == []
        assert await identities.accounts_of(["u9", "nobody"]) == {"u9": "acme"}
        assert await identities.pending_count() == 0
    assert [e.id for e in taken] == ["p1", "p2"]


async def test_the_latest_link_by_event_time_wins(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        identities = IdentityRepository(session)
        await identities.link("u1", "new-co", T0 + timedelta(days=1))
        await identities.link("u1", "old-co", T0)  # arrives late, happened earlier
        assert await identities.accounts_of(["u1"]) == {"u1": "new-co"}
        assert await identities.claim(["u1"]) == {"u1": "new-co"}
