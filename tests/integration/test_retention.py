"""`prune` (and the milestones service's hourly retention loop) deletes only bookkeeping
whose job is done and that is older than the cut-off: old idempotency keys and old settled
webhook deliveries; pending deliveries and anything newer stay — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.milestones.retention import run_retention
from shared.bus import topics
from shared.storage.idempotency import IdempotencyRepository
from shared.storage.retention import prune
from shared.storage.webhook_deliveries import DELIVERED, FAILED, PENDING, WebhookDeliveryRepository

NOW = datetime(2026, 6, 1, tzinfo=UTC)
OLD = NOW - timedelta(days=40)
RECENT = NOW - timedelta(days=2)


async def test_prune_removes_old_settled_rows_and_keeps_pending_and_recent_ones(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await seed(sessions)
    async with sessions() as session, session.begin():
        pruned = await prune(session, NOW - timedelta(days=30))
    assert (pruned.idempotency_keys, pruned.webhook_deliveries) == (1, 2)
    await assert_only_pending_and_recent_left(sessions)


async def test_the_retention_loop_prunes_by_itself_and_keeps_going_on(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await seed(sessions)
    loop = asyncio.create_task(
        run_retention(sessions, days=30, interval_seconds=0.05, clock=lambda: NOW)
    )
    try:

        async def pruned() -> bool:
            async with sessions() as session:
                return await IdempotencyRepository(session).get("writer", "old") is None

        for _ in range(200):
            if await pruned():
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # several more runs: nothing else goes
        assert not loop.done()
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    await assert_only_pending_and_recent_left(sessions)


async def seed(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        keys = IdempotencyRepository(session)
        await keys.save("writer", "old", "h1", 201, {"ok": 1}, OLD)
        await keys.save("writer", "recent", "h2", 201, {"ok": 2}, RECENT)
        deliveries = WebhookDeliveryRepository(session)
        for message_id, at in (("d-old", OLD), ("f-old", OLD), ("p-old", OLD), ("d-new", RECENT)):
            await deliveries.enqueue(topics.TRANSITIONS, message_id, "acme", {}, at)
        leased = {d.message_id: d for d in await deliveries.claim_due(NOW, 10, timedelta(0))}
        await deliveries.delivered(leased["d-old"].id, 200, OLD)
        await deliveries.failed(leased["f-old"].id, 410, "gone")
        await deliveries.delivered(leased["d-new"].id, 200, RECENT)


async def assert_only_pending_and_recent_left(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        keys = IdempotencyRepository(session)
        assert await keys.get("writer", "old") is None
        assert await keys.get("writer", "recent") is not None
        left = {d.message_id: d.status for d in await WebhookDeliveryRepository(session).all()}
    assert left == {"p-old": PENDING, "d-new": DELIVERED}
    assert FAILED not in left.values()
