"""Kept for ``shared.projection.projector``'s imports: batched queueing now lives in
``OutboxRepository.add_many``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from shared.storage.outbox import OutboxRepository, QueuedMessage

__all__ = ["QueuedMessage", "add_many"]


async def add_many(
    session: AsyncSession, messages: Sequence[QueuedMessage], created_at: datetime
) -> None:
    await OutboxRepository(session).add_many(messages, created_at)
