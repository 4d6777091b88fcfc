"""Retention of operational bookkeeping that would otherwise grow forever: stored
``Idempotency-Key`` responses and settled webhook deliveries.

Facts are never pruned (state is derived from them); only rows whose job is done go:
an idempotency key older than any client retry, a delivery that was delivered or given
up. Pending deliveries stay whatever their age — they are work still to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from shared.storage.tables import IdempotencyRecord, WebhookDeliveryRecord
from shared.storage.webhook_deliveries import DELIVERED, FAILED


@dataclass(frozen=True)
class Pruned:
    idempotency_keys: int
    webhook_deliveries: int


async def prune(session: AsyncSession, before: datetime) -> Pruned:
    """Delete idempotency keys and settled webhook deliveries created before ``before``."""
    keys = await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at < before)
    )
    w = WebhookDeliveryRecord
    deliveries = await session.execute(
        delete(w).where(w.status.in_((DELIVERED, FAILED)), w.created_at < before)
    )
    return Pruned(
        idempotency_keys=keys.rowcount or 0,  # type: ignore[attr-defined]
        webhook_deliveries=deliveries.rowcount or 0,  # type: ignore[attr-defined]
    )
