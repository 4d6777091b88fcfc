"""Relay the outbox to the bus: rows are claimed, published, then the claim commits.

If publishing fails the transaction rolls back and the rows stay unsent for the next
relay; a row is marked sent only together with a successful publish. Concurrent relays
(several milestone instances) claim disjoint rows (``SKIP LOCKED``). A page in flight is
shielded from cancellation: a service told to stop finishes publishing and marking the
page it holds instead of leaving published rows unmarked, which would publish them again.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus.bus import Bus
from shared.storage.outbox import OutboxRepository

DRAIN_SECONDS = 10.0  # how long a cancelled relay may take to finish its page


async def _relay_page(sessionmaker: async_sessionmaker[AsyncSession], bus: Bus, limit: int) -> int:
    async with sessionmaker() as session, session.begin():
        claimed = await OutboxRepository(session).claim_unsent(limit, datetime.now(UTC))
        by_topic: dict[str, list[tuple[str | None, bytes]]] = defaultdict(list)
        for message in claimed:  # oldest first, so per-topic order is kept
            by_topic[message.topic].append((message.key, orjson.dumps(message.payload)))
        for topic, items in by_topic.items():
            await bus.publish_many(topic, items)
    return len(claimed)


async def relay_outbox(
    sessionmaker: async_sessionmaker[AsyncSession], bus: Bus, *, limit: int = 500
) -> int:
    """Publish every unsent outbox row (key = account id, value = JSON); returns how many."""
    total = 0
    while True:
        page = asyncio.ensure_future(_relay_page(sessionmaker, bus, limit))
        try:
            count = await asyncio.shield(page)
        except asyncio.CancelledError:
            await asyncio.wait([page], timeout=DRAIN_SECONDS)
            if not page.done():
                page.cancel()
            raise
        total += count
        if count < limit:
            return total
