"""Every kind of malformed record in the corpus lands in ``analytics.events.dlq`` with its own
reason, its original bytes and its source offset, while the good Segment and Mixpanel events
interleaved with them in the same batches are all stored — through the real ingest consumer
on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.analytics.registration import onboarding_id_for
from shared.bus import topics
from shared.bus.memory import MemoryBus
from shared.plan_files import default_plans
from shared.storage.events import EventRepository
from shared.storage.onboardings import OnboardingRepository

from .corpus import build_corpus, verify_dead_letters
from .pipeline import drained, running_pipeline


async def test_each_malformed_record_is_dead_lettered_with_its_reason_beside_stored_good_ones(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = datetime.now(UTC)
    corpus = build_corpus(now, uuid.uuid4().hex[:8])
    assert len({case.reason for case in corpus.bad}) >= 25 and len(corpus.bad) >= 30
    bus = MemoryBus()
    await bus.start()
    async with running_pipeline(bus, sessions, default_plans(), now):
        await bus.publish_many(topics.EVENTS, corpus.records)
        await drained(bus)
        verify_dead_letters(
            corpus,
            bus.messages(topics.EVENTS),
            [m.value for m in bus.messages(topics.EVENTS_DLQ)],
        )
    async with sessions() as session:
        stored = await EventRepository(session).for_account(corpus.account)
        registered = await OnboardingRepository(session).registration(
            onboarding_id_for(corpus.account, corpus.registered_plan)
        )
    assert {event.id for event in stored} == corpus.good_ids
    assert registered is not None
