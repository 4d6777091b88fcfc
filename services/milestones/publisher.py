"""Relay the outbox to the bus: rows are claimed, published, then the claim commits.

If publishing fails the transaction rolls back and the rows stay unsent for the next
relay; a row is marked sent only together with a successful publish.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus.bus import Bus
from shared.storage.outbox import OutboxRepository


async def relay_outbox(
    sessionmaker: async_sessionmaker[AsyncSession], bus: Bus, *, limit: int = 500
) -> int:
    """Publish every unsent outbox row (key = account id, value = JSON); returns how many."""
    total = 0
    while True:
        async with sessionmaker() as session, session.begin():
            claimed = await OutboxRepository(session).claim_unsent(limit, datetime.now(UTC))
            by_topic: dict[str, list[tuple[str | None, bytes]]] = defaultdict(list)
            for message in claimed:  # oldest first, so per-topic order is kept
                by_topic[message.topic].append((message.key, orjson.dumps(message.payload)))
            for topic, items in by_topic.items():
                await bus.publish_many(topic, items)
        total += len(claimed)
        if len(claimed) < limit:
            return total
