"""Catching up a history on the real broker announces what ``firstvalue backfill`` of the
same events announces, id for id — no escalation opened by incomplete input and retracted
by the next batch — also when the milestones service is stopped and restarted on a
backlog; and a webhook receiver gets one POST per announced message (docs/watermark.md).

The clock is the real one: the history ends at the moment it is generated, so what falls
due while the test runs (after that moment) may differ between the runs and is left out.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from firstvalue.demo_data import generate
from services.ingest.backfill import backfill
from services.ingest.consumer import IngestOptions, run_ingest
from services.milestones.service import run_service
from services.milestones.webhooks_worker import WebhookOptions
from shared.bus import topics
from shared.bus.memory import MemoryBus
from shared.domain.transitions import RETRACTED
from shared.plan_files import default_plans
from shared.storage import create_engine, create_sessionmaker, migrate
from shared.storage.tables import AnnouncementRecord

from ..conftest import fresh_postgres_database, postgres_base_url
from ..webhook_receiver import Receiver, serving
from .conftest import BusFactory
from .harness import consuming, drained, eventually, produce, read_topic

PLANS = default_plans()
ACCOUNTS, DAYS = 20, 45
LATENESS = timedelta(seconds=5)
IDLE = timedelta(seconds=2)
CHUNK = 60  # messages produced at a time, in event-time order, each chunk projected


def history(now: datetime) -> list[dict[str, Any]]:
    return copy.deepcopy(generate(PLANS, now, accounts=ACCOUNTS, seed=13, days=DAYS).messages)


def announced(values: list[bytes], until: datetime) -> dict[str, dict[str, Any]]:
    """The announced transitions by id, those whose moment is at or before ``until``."""
    found = {}
    for value in values:
        data = orjson.loads(value)
        if datetime.fromisoformat(data["at"]) <= until:
            found[data["id"]] = data
    return found


async def reference(messages: list[dict[str, Any]], tmp_path: Path) -> dict[str, list[bytes]]:
    """``firstvalue backfill`` of the same messages into a database of its own."""
    path = tmp_path / "history.ndjson"
    path.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in messages))
    bus = MemoryBus()
    async with fresh_postgres_database(postgres_base_url()) as url:
        await migrate(url)
        engine = create_engine(url, application_name="firstvalue-watermark-reference")
        try:
            options = IngestOptions(plan_keys=frozenset(PLANS))
            await backfill([path], create_sessionmaker(engine), PLANS, options, bus=bus)
        finally:
            await engine.dispose()
    return {t: [m.value for m in bus.messages(t)] for t in (topics.ESCALATIONS, topics.TRANSITIONS)}


async def nothing_held(sessions: async_sessionmaker[AsyncSession], now: datetime) -> bool:
    a = AnnouncementRecord
    async with sessions() as session:
        stmt = select(func.count()).where(a.held_at.is_not(None), a.held_at <= now)
        return (await session.scalar(stmt)) == 0


def milestones(bus: Any, sessions: async_sessionmaker[AsyncSession], url: str) -> Any:
    hooks = WebhookOptions(url=url, secret="watermark-test-secret", backoff_seconds=0.2)
    service = run_service(bus, sessions, PLANS, interval_seconds=0.5, idle=IDLE, webhooks=hooks)
    return consuming(service)


async def test_catching_up_a_history_announces_what_a_backfill_does(
    buses: BusFactory, pg_sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    generated_at = datetime.now(UTC).replace(microsecond=0)
    messages = history(generated_at)
    half = len(messages) // 2
    bus = await buses("watermark")
    options = IngestOptions(plan_keys=frozenset(PLANS))
    ingest = run_ingest(bus, pg_sessions, options, max_records=CHUNK, lateness=LATENESS)
    async with serving(Receiver()) as receiver, consuming(ingest):
        async with milestones(bus, pg_sessions, receiver.url):
            for start in range(0, half, CHUNK):  # as a stream read while it arrives
                await produce(bus, messages[start : min(start + CHUNK, half)])
                await drained(bus)
                await drained(bus, topics.FACTS, "milestones")
        # Stopped: a backlog of notices builds up, then a restarted service works it off.
        for start in range(half, len(messages), CHUNK):
            await produce(bus, messages[start : start + CHUNK])
        await drained(bus)
        async with milestones(bus, pg_sessions, receiver.url):
            await drained(bus, topics.FACTS, "milestones")

            async def released() -> bool:  # the input went idle: its watermark is the clock
                return await nothing_held(pg_sessions, datetime.now(UTC) - IDLE * 3)

            await eventually(released, "held announcements to be released once idle")
            expected = await reference(messages, tmp_path)
            published = 0
            assert announced(expected[topics.ESCALATIONS], generated_at)  # something to compare
            for topic in (topics.ESCALATIONS, topics.TRANSITIONS):
                want = announced(expected[topic], generated_at)

                async def complete(topic: str = topic, want: dict[str, Any] = want) -> bool:
                    seen = await read_topic(bus, topic, at_least=0)
                    return set(want) <= set(announced([m.value for m in seen], generated_at))

                await eventually(complete, f"every {topic} message of the backfill")
                values = [m.value for m in await read_topic(bus, topic, at_least=0)]
                got = announced(values, generated_at)
                assert set(got) == set(want), topic
                assert len(values) == len({orjson.loads(v)["id"] for v in values}), topic
                retracted = [v for v in values if orjson.loads(v).get("resolution") == RETRACTED]
                assert retracted == [], topic
                published += len(values)

            async def posted() -> bool:  # one signed POST per topic message, no more
                return len({r.headers["x-firstvalue-delivery"] for r in receiver.received}) >= (
                    published
                )

            await eventually(posted, "a webhook POST for every announced message")
            deliveries = [r.headers["x-firstvalue-delivery"] for r in receiver.received]
            assert len(deliveries) == len(set(deliveries)) == published
