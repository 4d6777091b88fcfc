"""Catching up a history on the real broker announces what ``firstvalue backfill`` of the
same events announces, id for id — no escalation opened by incomplete input and retracted
by the next batch — also when the milestones service is stopped and restarted on a
backlog; and in both runs a webhook receiver gets one signed POST per message on the
topics (docs/watermark.md).

The backfill runs as a user runs it: ``firstvalue backfill`` relays its outbox to a broker
(topics of its own here) while a ``firstvalue milestones`` with a webhook configured runs
beside it and delivers what is published. The clock is the real one: the history ends at
the moment it is generated, so what falls due while the test runs (after that moment) may
differ between the runs and is left out of the comparison between them (not of the POST
counts: every message published is POSTed).
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from firstvalue.demo_data import generate
from services.ingest.backfill import backfill
from services.ingest.consumer import IngestOptions, run_ingest
from services.milestones import webhooks
from services.milestones.service import run_service
from services.milestones.webhooks_worker import WebhookOptions
from shared.bus import topics
from shared.bus.bus import Bus
from shared.bus.kafka import KafkaBus
from shared.domain.transitions import RETRACTED
from shared.plan_files import default_plans
from shared.storage import create_engine, create_sessionmaker, migrate
from shared.storage.tables import AnnouncementRecord

from ..conftest import fresh_postgres_database, postgres_base_url
from ..webhook_receiver import Receiver, serving
from .conftest import SESSION_TIMEOUT_MS, BusFactory
from .harness import consuming, drained, eventually, produce, read_topic

PLANS = default_plans()
ACCOUNTS, DAYS = 20, 45
LATENESS = timedelta(seconds=5)
IDLE = timedelta(seconds=2)
CHUNK = 60  # messages produced at a time, in event-time order, each chunk projected
SECRET = "watermark-test-secret"
ANNOUNCED = (topics.ESCALATIONS, topics.TRANSITIONS)

Published = dict[str, list[bytes]]  # topic → the values on it


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


async def on_topics(bus: Bus) -> Published:
    return {t: [m.value for m in await read_topic(bus, t, at_least=0)] for t in ANNOUNCED}


def message_ids(published: Published) -> Counter[tuple[str, str]]:
    return Counter((t, orjson.loads(v)["id"]) for t, values in published.items() for v in values)


def posted_ids(receiver: Receiver) -> Counter[tuple[str, str]]:
    """(topic, id) of every POST received, each checked to be signed with the secret."""
    now = time.time()
    ids: Counter[tuple[str, str]] = Counter()
    for request in receiver.received:
        assert webhooks.verify(SECRET, request.headers, request.body, now), request.headers
        body = orjson.loads(request.body)
        assert request.headers[webhooks.DELIVERY_HEADER.lower()] == body["id"]
        ids[(body["topic"], body["id"])] += 1
    return ids


async def one_post_per_message(bus: Bus, receiver: Receiver) -> Published:
    """Wait until the receiver has as many POSTs as the topics have messages, then hold the
    two equal, message for message (a repeat or a missing POST fails); returns the topics."""

    async def caught_up() -> bool:
        return len(receiver.received) >= sum(map(len, (await on_topics(bus)).values()))

    await eventually(caught_up, "a webhook POST for every announced message")
    published = await on_topics(bus)
    assert posted_ids(receiver) == message_ids(published)
    assert len(receiver.received) == sum(map(len, published.values()))
    return published


def milestones(bus: Any, sessions: async_sessionmaker[AsyncSession], url: str) -> Any:
    hooks = WebhookOptions(url=url, secret=SECRET, backoff_seconds=0.2)
    service = run_service(bus, sessions, PLANS, interval_seconds=0.5, idle=IDLE, webhooks=hooks)
    return consuming(service)


@contextlib.asynccontextmanager
async def broker_of_its_own(bootstrap: str, prefix: str) -> AsyncIterator[KafkaBus]:
    """The same broker, other topics: the backfill's announcements apart from the stream's."""
    bus = KafkaBus(
        bootstrap, client_id="backfill", topic_prefix=prefix, session_timeout_ms=SESSION_TIMEOUT_MS
    )
    await bus.start()
    try:
        yield bus
    finally:
        await bus.stop()


async def reference(
    messages: list[dict[str, Any]], tmp_path: Path, bus: Bus, receiver: Receiver
) -> Published:
    """``firstvalue backfill`` of the same messages into a database of its own, relayed to
    ``bus``, with a milestones service delivering the webhooks; what it published."""
    path = tmp_path / "history.ndjson"
    path.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in messages))
    async with fresh_postgres_database(postgres_base_url()) as url:
        await migrate(url)
        engine = create_engine(url, application_name="firstvalue-watermark-reference")
        sessions = create_sessionmaker(engine)
        try:
            async with milestones(bus, sessions, receiver.url):
                options = IngestOptions(plan_keys=frozenset(PLANS))
                await backfill([path], sessions, PLANS, options, bus=bus)
                return await one_post_per_message(bus, receiver)
        finally:
            await engine.dispose()


async def nothing_held(sessions: async_sessionmaker[AsyncSession], now: datetime) -> bool:
    a = AnnouncementRecord
    async with sessions() as session:
        stmt = select(func.count()).where(a.held_at.is_not(None), a.held_at <= now)
        return (await session.scalar(stmt)) == 0


async def streamed(
    messages: list[dict[str, Any]],
    bus: Bus,
    sessions: async_sessionmaker[AsyncSession],
    receiver: Receiver,
) -> Published:
    """The messages streamed through ingest and milestones, the service stopped halfway and
    restarted on a backlog; what it published once nothing is held."""
    half = len(messages) // 2
    options = IngestOptions(plan_keys=frozenset(PLANS))
    ingest = run_ingest(bus, sessions, options, max_records=CHUNK, lateness=LATENESS)
    async with consuming(ingest):
        async with milestones(bus, sessions, receiver.url):
            for start in range(0, half, CHUNK):  # as a stream read while it arrives
                await produce(bus, messages[start : min(start + CHUNK, half)])
                await drained(bus)
                await drained(bus, topics.FACTS, "milestones")
        # Stopped: a backlog of notices builds up, then a restarted service works it off.
        for start in range(half, len(messages), CHUNK):
            await produce(bus, messages[start : start + CHUNK])
        await drained(bus)
        async with milestones(bus, sessions, receiver.url):
            await drained(bus, topics.FACTS, "milestones")

            async def released() -> bool:  # the input went idle: its watermark is the clock
                return await nothing_held(sessions, datetime.now(UTC) - IDLE * 3)

            await eventually(released, "held announcements to be released once idle")
            return await one_post_per_message(bus, receiver)


async def test_catching_up_a_history_announces_what_a_backfill_does(
    buses: BusFactory,
    bootstrap: str,
    namespace: str,
    pg_sessions: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    generated_at = datetime.now(UTC).replace(microsecond=0)
    messages = history(generated_at)
    bus = await buses("watermark")
    async with serving(Receiver()) as stream_hooks, serving(Receiver()) as backfill_hooks:
        got = await streamed(messages, bus, pg_sessions, stream_hooks)
        async with broker_of_its_own(bootstrap, f"{namespace}backfill.") as backfill_bus:
            expected = await reference(messages, tmp_path, backfill_bus, backfill_hooks)
    assert announced(expected[topics.ESCALATIONS], generated_at)  # something to compare
    for topic in ANNOUNCED:
        want = announced(expected[topic], generated_at)
        assert set(announced(got[topic], generated_at)) == set(want), topic
        ids = [orjson.loads(v)["id"] for v in got[topic]]
        assert len(ids) == len(set(ids)), topic
        retracted = [v for v in got[topic] if orjson.loads(v).get("resolution") == RETRACTED]
        assert retracted == [], topic
    # Both receivers got the same POSTs (up to what fell due meanwhile), one per message.
    for receiver, published in ((stream_hooks, got), (backfill_hooks, expected)):
        assert len(receiver.received) == sum(map(len, published.values())) > 0
