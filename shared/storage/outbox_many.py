"""Many outbox messages in one statement: a cold replay queues a dozen transitions per
onboarding, and ``OutboxRepository.add`` is a round trip each. Same rows and the same
duplicate rule (a (topic, message id) queued before is dropped); ids follow list order, so the
relay publishes them in the order given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shared.storage import dialect
from shared.storage.tables import OutboxRecord


@dataclass(frozen=True)
class QueuedMessage:
    topic: str
    key: str | None
    message_id: str
    payload: dict[str, Any]


async def add_many(
    session: AsyncSession, messages: Sequence[QueuedMessage], created_at: datetime
) -> None:
    """Queue ``messages`` in order; repeats (within the list or queued before) are dropped."""
    unique: dict[tuple[str, str], QueuedMessage] = {}
    for m in messages:
        unique.setdefault((m.topic, m.message_id), m)
    rows = [
        {
            "topic": m.topic,
            "key": m.key,
            "message_id": m.message_id,
            "payload": m.payload,
            "created_at": created_at,
        }
        for m in unique.values()
    ]
    if rows:
        stmt = dialect.insert(session, OutboxRecord.__table__).on_conflict_do_nothing(
            index_elements=["topic", "message_id"]
        )
        await session.execute(stmt, rows)  # executemany: batched multi-row VALUES, in order
