"""The milestones shell: ``onboarding.facts`` notices in → affected onboardings projected
(a few dozen per transaction) → commit → outbox published → offsets committed.

Projection is idempotent, so committing in chunks before the offset keeps the
exactly-once effect: a redelivered batch re-projects to the same state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus import topics
from shared.bus.bus import Batch, Bus, Subscription
from shared.bus.messages import FactsNotice, dead_letter
from shared.bus.retry import consume_with_retries
from shared.domain.plans import Plan
from shared.domain.watermark import InputProgress
from shared.observability.metrics import record_watermark_lag
from shared.projection.announce import IDLE, Heard
from shared.projection.projector import project_accounts, project_many
from shared.projection.publisher import relay_outbox

log = logging.getLogger(__name__)
MAX_NOTICES = 5000  # notices are tiny and coalesce per account: take many at once
CHUNK = 50  # onboardings' accounts per transaction


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def handle_batch(
    batch: Batch,
    bus: Bus,
    sessionmaker: async_sessionmaker[AsyncSession],
    plans: Mapping[str, Plan],
    now: datetime,
    *,
    idle: timedelta = IDLE,
    progress: InputProgress | None = None,
) -> int:
    """Project the onboardings a batch of notices concerns, announcing by the watermarks
    the notices carry (the highest per account); returns how many were projected."""
    accounts: dict[str, None] = {}
    heard: dict[str, Heard] = {}
    onboardings: dict[str, None] = {}
    dead: list[tuple[str | None, bytes]] = []
    for message in batch.messages:
        try:
            notice = FactsNotice.decode(message.value)
        except ValueError as error:
            log.error("invalid facts notice at offset %d: %s", message.offset, error)
            dead.append((message.key, dead_letter(message, "invalid_facts_notice", str(error))))
            continue
        if notice.onboarding_id is not None:
            onboardings[notice.onboarding_id] = None
        else:
            accounts[notice.account_id] = None
        if notice.watermark is not None:
            known = heard.get(notice.account_id)
            if known is None or notice.watermark > known.watermark:
                heard[notice.account_id] = Heard(notice.watermark, now)
    if heard:
        lowest = min(h.watermark for h in heard.values())
        record_watermark_lag((now - lowest).total_seconds())
        if progress is not None:
            progress.hear(lowest, now)
    mark = progress.watermark(now) if progress is not None else None
    projected = 0
    for chunk in _chunks([*accounts], CHUNK):  # short transactions: SQLite has one writer
        async with sessionmaker() as session, session.begin():
            found = await project_accounts(
                session, plans, chunk, now, heard=heard, idle=idle, input_watermark=mark
            )
            projected += len(found)
    for chunk in _chunks([*onboardings], CHUNK):
        async with sessionmaker() as session, session.begin():
            found = await project_many(
                session, plans, chunk, now, heard=heard, idle=idle, input_watermark=mark
            )
            projected += len(found)
    await relay_outbox(sessionmaker, bus)
    if dead:
        await bus.publish_many(topics.EVENTS_DLQ, dead)
    await batch.commit()
    return projected


async def run_milestones(
    bus: Bus,
    sessionmaker: async_sessionmaker[AsyncSession],
    plans: Mapping[str, Plan],
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    group: str = "milestones",
    idle: timedelta = IDLE,
    progress: InputProgress | None = None,
) -> None:
    """Consume ``onboarding.facts`` until cancelled or the bus stops; a failing batch is
    redelivered after a back-off, and repeated failures raise."""

    async def consume(subscription: Subscription, succeeded: Callable[[], None]) -> None:
        async for batch in subscription:
            now = clock()
            await handle_batch(batch, bus, sessionmaker, plans, now, idle=idle, progress=progress)
            succeeded()

    await consume_with_retries(
        bus, topics.FACTS, group, consume, label="milestones", max_records=MAX_NOTICES
    )
