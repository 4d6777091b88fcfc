"""Several ingest instances in one consumer group share ``analytics.events``' partitions:
each owns some, together they own all, each stores part of the load, and the result equals
one in-order ingestion — also for events keyed by user whose ``group`` call, keyed by
account, is consumed by another instance."""

from __future__ import annotations

import contextlib

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.consumer import IngestResult
from shared.bus import topics
from shared.bus.kafka import KafkaBus
from shared.plan_files import default_plans

from .conftest import BusFactory
from .harness import drained, eventually, ingesting, produce, snapshot, stored_ids
from .scenario import NOW, demo_messages, reference_snapshot

PLANS = default_plans()
INSTANCES = 3
PARTITIONS = 6  # auto-created topics get the broker's num.partitions (deploy/local/kafka.sh)


async def test_ingest_instances_in_one_group_share_the_partitions_and_the_work(
    buses: BusFactory, pg_sessions: async_sessionmaker[AsyncSession]
) -> None:
    messages = demo_messages(PLANS, accounts=24)
    instances: list[KafkaBus] = [await buses(f"ingest-{n}") for n in range(INSTANCES)]
    results: list[list[IngestResult]] = [[] for _ in instances]
    await produce(instances[0], messages[:1])  # creates the topic before the group forms

    def owned(bus: KafkaBus) -> set[int]:
        return {p for topic, p in bus.assignment() if topic == topics.EVENTS}

    async def balanced() -> bool:
        shares = [owned(bus) for bus in instances]
        union = set().union(*shares)
        return all(shares) and len(union) == PARTITIONS == sum(len(s) for s in shares)

    async with contextlib.AsyncExitStack() as stack:
        for bus, mine in zip(instances, results, strict=True):
            await stack.enter_async_context(
                ingesting(bus, pg_sessions, PLANS, NOW, results=mine, max_records=200)
            )
        await eventually(balanced, "every instance to own partitions, all of them owned once")
        await produce(instances[1], messages[1:])
        await drained(instances[2])

    accepted = [sum(r.accepted for r in mine) for mine in results]
    assert all(accepted), accepted  # every instance stored part of the events
    assert sum(accepted) == len(await stored_ids(pg_sessions))  # none stored twice
    assert await snapshot(pg_sessions, PLANS, NOW) == await reference_snapshot(messages, PLANS)
