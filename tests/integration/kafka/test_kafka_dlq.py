"""The malformed-input corpus (``tests/integration/corpus.py``) through a real broker: every
bad record lands in ``analytics.events.dlq`` with its reason, original bytes and source
partition and offset, while the good Segment and Mixpanel events interleaved with them in
the same batches are stored."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.consumer import IngestResult
from shared.analytics.registration import onboarding_id_for
from shared.bus import topics
from shared.plan_files import default_plans
from shared.storage.events import EventRepository
from shared.storage.onboardings import OnboardingRepository

from ..corpus import build_corpus, verify_dead_letters
from .conftest import BusFactory
from .harness import drained, ingesting, read_topic

PLANS = default_plans()


async def test_each_malformed_record_is_dead_lettered_on_kafka_beside_stored_good_ones(
    buses: BusFactory, pg_sessions: async_sessionmaker[AsyncSession]
) -> None:
    now = datetime.now(UTC)
    corpus = build_corpus(now, uuid.uuid4().hex[:8])
    assert len(corpus.bad) >= 30 and len({case.reason for case in corpus.bad}) >= 25
    bus = await buses("dlq")
    results: list[IngestResult] = []
    async with ingesting(bus, pg_sessions, PLANS, now, results=results):
        await bus.publish_many(topics.EVENTS, corpus.records)
        await drained(bus)

    source = await read_topic(bus, topics.EVENTS, at_least=len(corpus.records))
    dead = await read_topic(bus, topics.EVENTS_DLQ, at_least=len(corpus.bad))
    verify_dead_letters(corpus, source, [m.value for m in dead])
    assert all(m.key == corpus.account for m in dead)  # keyed like the record they came in
    assert any(len(r.rejected) and r.accepted for r in results)  # good and bad in one batch
    async with pg_sessions() as session:
        stored = await EventRepository(session).for_account(corpus.account)
        registered = await OnboardingRepository(session).registration(
            onboarding_id_for(corpus.account, corpus.registered_plan)
        )
    assert {event.id for event in stored} == corpus.good_ids
    assert registered is not None
