"""Ingest: Segment messages become deduplicated, attributed events; bad ones are dead-lettered."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.consumer import IngestOptions, IngestResult, ingest_messages, run_ingest
from shared.analytics.registration import onboarding_id_for
from shared.bus import topics
from shared.bus.memory import MemoryBus
from shared.bus.messages import FactsNotice
from shared.storage.events import EventRepository
from shared.storage.identities import IdentityRepository
from shared.storage.onboardings import OnboardingRepository

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
OPTIONS = IngestOptions(plan_keys=frozenset({"smb", "mid_market"}))


def track(message_id: str, user: str, event: str, at: datetime, **properties: Any) -> dict:
    return {
        "type": "track",
        "messageId": message_id,
        "userId": user,
        "event": event,
        "properties": properties,
        "timestamp": at.isoformat(),
    }


def group(message_id: str, user: str, account: str, at: datetime) -> dict:
    return {
        "type": "group",
        "messageId": message_id,
        "userId": user,
        "groupId": account,
        "traits": {"name": account.title()},
        "timestamp": at.isoformat(),
    }


async def consume(bus: MemoryBus, sessions: async_sessionmaker[AsyncSession]) -> IngestResult:
    """Run the real consumer until it has committed every record; what its batches did."""
    results: list[IngestResult] = []
    task = asyncio.create_task(
        run_ingest(bus, sessions, OPTIONS, clock=lambda: NOW, on_batch=results.append)
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    try:
        while await bus.lag(topics.EVENTS, "ingest"):
            assert not task.done(), task.result()
            assert loop.time() < deadline, "the consumer did not catch up"
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    total = IngestResult()
    for result in results:
        total.add(result)
    return total


async def ingest(sessions: async_sessionmaker[AsyncSession], *messages: dict) -> Any:
    async with sessions() as session, session.begin():
        return await ingest_messages(session, messages, OPTIONS, received_at=NOW)


async def test_a_late_group_call_applies_parked_events_without_counting_them_twice(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    login = track("m1", "u1", "Logged In", NOW - timedelta(days=3))
    first = await ingest(sessions, login, login)
    assert (first.accepted, first.pending, first.duplicates) == (0, 1, 1)
    assert first.facts == {}

    linked = await ingest(sessions, group("g1", "u1", "acme", NOW - timedelta(days=2)))
    assert linked.accepted == 1
    assert linked.facts == {"acme": ["m1"]}

    again = await ingest(sessions, login, group("g1", "u1", "acme", NOW - timedelta(days=2)))
    assert (again.accepted, again.duplicates, again.pending) == (0, 1, 0)
    async with sessions() as session:
        events = await EventRepository(session).for_account("acme")
        assert await IdentityRepository(session).pending_count() == 0
    assert [(e.id, e.user_id, e.name) for e in events] == [("m1", "u1", "Logged In")]


async def test_a_group_call_later_in_the_same_batch_attributes_earlier_events(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    result = await ingest(
        sessions,
        track("m1", "u1", "Logged In", NOW - timedelta(hours=2)),
        group("g1", "u1", "acme", NOW - timedelta(hours=1)),
    )
    assert (result.accepted, result.pending) == (1, 0)


async def test_events_naming_their_account_need_no_group_call(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    by_property = track("m1", "u1", "Report Delivered", NOW, account_id="acme", status="sent")
    by_context = {**track("m2", "u2", "Logged In", NOW), "context": {"groupId": "globex"}}
    result = await ingest(sessions, by_property, by_context)
    assert result.facts == {"acme": ["m1"], "globex": ["m2"]}


async def test_contract_signed_registers_the_onboarding_at_the_event_time(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    signed_at = NOW - timedelta(days=5)
    contract = track(
        "c1", "crm", "Contract Signed", signed_at,
        account_id="acme", plan="smb", csm="dana", licensed_seats=10, account_name="Acme",
    )  # fmt: skip
    explicit = track(
        "c2", "crm", "Contract Signed", signed_at, account_id="acme", plan="mid_market",
        onboarding_id="acme-rollout-2",
    )  # fmt: skip
    result = await ingest(sessions, contract, explicit, contract)
    assert result.registered == 2
    derived = onboarding_id_for("acme", "smb")
    async with sessions() as session:
        onboardings = OnboardingRepository(session)
        assert await onboardings.ids_for_account("acme") == sorted([derived, "acme-rollout-2"])
        registration = await onboardings.registration(derived)
    assert registration is not None
    assert registration.at == signed_at and registration.plan_key == "smb"
    assert (registration.csm, registration.licensed_seats) == ("dana", 10)
    assert registration.account_name == "Acme"
    assert f"registered:{derived}" in result.facts["acme"]


async def test_a_malformed_message_goes_to_the_dlq_while_the_good_ones_are_processed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    bus = MemoryBus()
    good = track("m1", "u1", "Logged In", NOW, account_id="acme")
    await bus.publish_many(
        topics.EVENTS,
        [
            ("acme", orjson.dumps(good)),
            ("acme", b'{"type": "track", "userId": '),  # truncated JSON
            ("acme", orjson.dumps({"type": "track", "event": "Logged In"})),  # no user
            ("acme", orjson.dumps(track("c1", "u1", "Contract Signed", NOW, plan="nope"))),
            ("acme", orjson.dumps({"batch": [track("m2", "u2", "X", NOW, account_id="acme"), 7]})),
        ],
    )
    result = await consume(bus, sessions)

    dead = [orjson.loads(m.value) for m in bus.messages(topics.EVENTS_DLQ)]
    assert [(d["reason"], d["offset"]) for d in dead] == [
        ("invalid_json", 1),
        ("missing_user", 2),
        ("unknown_plan", 3),
        ("not_an_object", 4),
    ]
    assert dead[0]["original"] == '{"type": "track", "userId": '
    assert dead[0]["topic"] == topics.EVENTS and dead[0]["partition"] == 0
    assert all(d["error"] for d in dead)
    assert orjson.loads(dead[3]["original"]) == 7
    assert result.accepted == 2
    notices = [FactsNotice.decode(m.value) for m in bus.messages(topics.FACTS)]
    assert notices == [FactsNotice("acme", ("m1", "m2"))]
    assert await bus.lag(topics.EVENTS, "ingest") == 0


async def test_a_batch_redelivered_after_a_crash_stores_nothing_twice_but_renotifies(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    bus = MemoryBus()
    login = track("m1", "u1", "Logged In", NOW, account_id="acme")
    await bus.publish(topics.EVENTS, "acme", orjson.dumps(login))
    async with bus.subscribe(topics.EVENTS, "ingest") as subscription:
        batch = await anext(aiter(subscription))
        async with (
            sessions() as session,
            session.begin(),
        ):  # crash after the DB commit, before the offsets
            await ingest_messages(session, [batch.messages[0].value], OPTIONS, received_at=NOW)
    result = await consume(bus, sessions)
    assert (result.accepted, result.duplicates) == (0, 1)
    assert [FactsNotice.decode(m.value) for m in bus.messages(topics.FACTS)] == [
        FactsNotice("acme", ("m1",))
    ]
    async with sessions() as session:
        assert await EventRepository(session).count() == 1


async def test_concurrent_track_and_group_transactions_never_strand_an_event(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A user's first event and its group call land in separate, concurrent transactions
    (different partitions): whichever commits first, the event ends up attributed."""
    users = [f"user-{n}" for n in range(20)]

    async def one(messages: list[dict]) -> None:
        async with sessions() as session, session.begin():
            await ingest_messages(session, messages, OPTIONS, received_at=NOW)

    await asyncio.gather(
        *(
            one([track(f"t-{u}", u, "Logged In", NOW - timedelta(hours=1))])
            if n % 2
            else one([group(f"g-{u}", u, "acme", NOW - timedelta(hours=2))])
            for u in users
            for n in range(2)
        )
    )
    async with sessions() as session:
        events = await EventRepository(session).for_account("acme")
        assert await IdentityRepository(session).pending_count() == 0
    assert sorted(e.id for e in events) == sorted(f"t-{u}" for u in users)


async def test_identify_traits_link_users_and_a_parked_contract_registers_on_linking(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    signed_at = NOW - timedelta(days=2)
    parked = await ingest(
        sessions, track("c1", "champion", "Contract Signed", signed_at, plan="smb")
    )
    assert (parked.pending, parked.registered) == (1, 0)
    identify = {
        "type": "identify",
        "messageId": "i1",
        "userId": "champion",
        "traits": {"account_id": "acme", "email": "jo@acme.test"},
        "timestamp": NOW.isoformat(),
    }
    linked = await ingest(sessions, identify)
    assert (linked.accepted, linked.registered) == (1, 1)
    async with sessions() as session:
        registration = await OnboardingRepository(session).registration(
            onboarding_id_for("acme", "smb")
        )
    assert registration is not None and registration.at == signed_at


async def test_a_batch_whose_transaction_fails_is_redelivered_after_a_back_off(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    calls = 0

    def flaky() -> AsyncSession:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database restarting")
        return sessions()

    bus = MemoryBus()
    await bus.publish(
        topics.EVENTS, "acme", orjson.dumps(track("m1", "u1", "Logged In", NOW, account_id="acme"))
    )
    task = asyncio.create_task(run_ingest(bus, flaky, OPTIONS))  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while await bus.lag(topics.EVENTS, "ingest"):
        assert loop.time() < deadline and not task.done()
        await asyncio.sleep(0.01)
    await bus.stop()
    await task
    assert calls == 2
    async with sessions() as session:
        assert [e.id for e in await EventRepository(session).for_account("acme")] == ["m1"]


async def refuse_event_id(sessions: async_sessionmaker[AsyncSession], event_id: str) -> None:
    """Make the database itself refuse one event row (a record that passes every check of
    ours yet breaks the insert: a poison message)."""
    async with sessions() as session, session.begin():
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(
                text(f"ALTER TABLE events ADD CONSTRAINT poison CHECK (id <> '{event_id}')")
            )
        else:
            await session.execute(
                text(
                    f"CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.id = '{event_id}' "
                    "BEGIN SELECT RAISE(ABORT, 'poison'); END"
                )
            )


async def test_a_record_the_database_refuses_is_dead_lettered_alone(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await refuse_event_id(sessions, "poison-1")
    bus = MemoryBus()
    records = [
        track("m1", "u1", "Logged In", NOW, account_id="acme"),
        track("poison-1", "u1", "Logged In", NOW, account_id="acme"),
        track("m2", "u2", "Logged In", NOW, account_id="acme"),
    ]
    await bus.publish_many(topics.EVENTS, [("acme", orjson.dumps(r)) for r in records])
    result = await consume(bus, sessions)

    dead = [orjson.loads(m.value) for m in bus.messages(topics.EVENTS_DLQ)]
    assert [(d["reason"], d["offset"]) for d in dead] == [("storage_error", 1)]
    assert orjson.loads(dead[0]["original"])["messageId"] == "poison-1"
    assert result.accepted == 2
    async with sessions() as session:
        stored = {e.id for e in await EventRepository(session).for_account("acme")}
    assert stored == {"m1", "m2"}
    assert await bus.lag(topics.EVENTS, "ingest") == 0


async def test_a_poison_record_alone_in_its_batch_is_dead_lettered_and_consumption_goes_on(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A record the database refuses is a dead letter even when it is the whole batch (the
    head of a partition): the consumer commits past it and stores what follows."""
    await refuse_event_id(sessions, "poison-1")
    bus = MemoryBus()
    poison = track("poison-1", "u1", "Logged In", NOW, account_id="acme")
    await bus.publish(topics.EVENTS, "acme", orjson.dumps(poison))
    first = await consume(bus, sessions)
    await bus.publish(
        topics.EVENTS, "acme", orjson.dumps(track("m1", "u1", "Logged In", NOW, account_id="acme"))
    )
    second = await consume(bus, sessions)
    dead = [orjson.loads(m.value) for m in bus.messages(topics.EVENTS_DLQ)]
    assert [(d["reason"], d["offset"]) for d in dead] == [("storage_error", 0)]
    assert "poison" in dead[0]["error"]
    assert (first.accepted, second.accepted) == (0, 1)
    async with sessions() as session:
        assert [e.id for e in await EventRepository(session).for_account("acme")] == ["m1"]
