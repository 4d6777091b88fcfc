"""At-least-once in, exactly-once effect, on a real broker: the same events sent twice, out of
order, or across a consumer restart leave exactly the facts, identities, registrations and
evaluated states of one in-order ingestion (``scenario.reference_snapshot``)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.consumer import IngestResult
from shared.plan_files import default_plans

from .conftest import BusFactory
from .harness import drained, ingesting, produce, snapshot
from .scenario import NOW, demo_messages, reference_snapshot, shuffled

PLANS = default_plans()
ACCOUNTS = 10


async def test_events_sent_twice_give_the_facts_of_once(
    buses: BusFactory, pg_sessions: async_sessionmaker[AsyncSession]
) -> None:
    messages = demo_messages(PLANS, ACCOUNTS)
    bus = await buses("twice")
    results: list[IngestResult] = []
    async with ingesting(bus, pg_sessions, PLANS, NOW, results=results, max_records=300):
        await produce(bus, messages)
        await drained(bus)
        await produce(bus, messages[: len(messages) // 2])  # a retrying producer, later
        await produce(bus, messages)  # and the whole history again
        await drained(bus)

    assert await snapshot(pg_sessions, PLANS, NOW) == await reference_snapshot(messages, PLANS)
    assert sum(r.duplicates for r in results) >= len(messages)  # repeats seen, and absorbed


async def test_events_out_of_order_give_the_facts_of_in_order(
    buses: BusFactory, pg_sessions: async_sessionmaker[AsyncSession]
) -> None:
    messages = demo_messages(PLANS, ACCOUNTS)
    bus = await buses("shuffled")
    results: list[IngestResult] = []
    # small batches: a usage event often comes batches before the group call naming its account
    async with ingesting(bus, pg_sessions, PLANS, NOW, results=results, max_records=50):
        await produce(bus, shuffled(messages))
        await drained(bus)

    assert sum(r.pending for r in results) > 0  # some events really waited for their identity
    assert await snapshot(pg_sessions, PLANS, NOW) == await reference_snapshot(messages, PLANS)


async def test_a_consumer_restart_between_deliveries_gives_the_facts_of_one_run(
    buses: BusFactory, pg_sessions: async_sessionmaker[AsyncSession]
) -> None:
    messages = demo_messages(PLANS, ACCOUNTS)
    half = len(messages) // 2
    first = await buses("before-restart")
    async with ingesting(first, pg_sessions, PLANS, NOW, max_records=200):
        await produce(first, shuffled(messages[:half]))
        await drained(first)
    # stopped; meanwhile the producer sends the rest and repeats part of the first half
    await produce(first, messages[half:] + messages[half // 2 : half])
    second = await buses("after-restart")
    async with ingesting(second, pg_sessions, PLANS, NOW, max_records=200):
        await drained(second)

    assert await snapshot(pg_sessions, PLANS, NOW) == await reference_snapshot(messages, PLANS)
