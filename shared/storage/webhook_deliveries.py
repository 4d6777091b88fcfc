"""Webhook deliveries: the durable queue between the bus and the webhook sender.

A row is enqueued once per (topic, message id), leased to one sender at a time by pushing
``next_attempt_at`` past the request's timeout, and finally marked ``delivered`` or
``failed``. A sender that dies mid-request leaves a lease that simply expires: the row is
due again (at-least-once; receivers dedupe on the delivery id header).
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.storage import dialect
from shared.storage.tables import WebhookDeliveryRecord

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class WebhookDelivery:
    id: int
    topic: str
    message_id: str
    key: str | None
    payload: dict[str, Any]
    status: str
    attempts: int  # including the one just claimed, for rows returned by ``claim_due``
    last_status: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None


def _delivery(record: Any) -> WebhookDelivery:
    return WebhookDelivery(
        id=record.id,
        topic=record.topic,
        message_id=record.message_id,
        key=record.key,
        payload=record.payload,
        status=record.status,
        attempts=record.attempts,
        last_status=record.last_status,
        last_error=record.last_error,
        next_attempt_at=record.next_attempt_at,
        created_at=record.created_at,
        delivered_at=record.delivered_at,
    )


class WebhookDeliveryRepository:
    """Enqueue, lease and settle webhook deliveries."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def enqueue(
        self, topic: str, message_id: str, key: str | None, payload: dict[str, Any], now: datetime
    ) -> bool:
        """Queue a delivery due at once; False if this (topic, message id) was queued before."""
        stmt = (
            dialect.insert(self._session, WebhookDeliveryRecord)
            .values(
                topic=topic,
                message_id=message_id,
                key=key,
                payload=payload,
                status=PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["topic", "message_id"])
            .returning(WebhookDeliveryRecord.id)
        )
        return (await self._session.scalar(stmt)) is not None

    async def claim_due(
        self, now: datetime, limit: int, lease: timedelta
    ) -> builtins.list[WebhookDelivery]:
        """Lease up to ``limit`` due pending deliveries: count the attempt and move
        ``next_attempt_at`` to ``now + lease`` so no other sender takes them meanwhile.
        PostgreSQL claimers skip each other's rows (``SKIP LOCKED``); SQLite serialises."""
        w = WebhookDeliveryRecord
        # A CTE, not ``IN (subquery)``: PostgreSQL may re-run a plain subquery, and with
        # SKIP LOCKED each run can pick other rows — more than ``limit`` would be leased.
        due = (
            select(w.id)
            .where(w.status == PENDING, w.next_attempt_at <= now)
            .order_by(w.next_attempt_at, w.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("due")
        )
        stmt = (
            update(w)
            .where(w.status == PENDING, w.id.in_(select(due.c.id)))
            .values(attempts=w.attempts + 1, next_attempt_at=now + lease)
            .returning(w)
            .execution_options(synchronize_session=False)
        )
        rows = (await self._session.execute(stmt)).scalars().all()
        return sorted((_delivery(r) for r in rows), key=lambda d: d.id)

    async def delivered(self, delivery_id: int, status: int, now: datetime) -> None:
        await self._settle(
            delivery_id,
            status=DELIVERED,
            last_status=status,
            last_error=None,
            next_attempt_at=None,
            delivered_at=now,
        )

    async def retry(self, delivery_id: int, status: int | None, error: str, at: datetime) -> None:
        """Record a failed attempt; the delivery is due again at ``at``."""
        await self._settle(
            delivery_id, status=PENDING, last_status=status, last_error=error, next_attempt_at=at
        )

    async def failed(self, delivery_id: int, status: int | None, error: str) -> None:
        """Give up: the delivery stays in the table with its last error, never retried."""
        await self._settle(
            delivery_id, status=FAILED, last_status=status, last_error=error, next_attempt_at=None
        )

    async def _settle(self, delivery_id: int, **values: Any) -> None:
        stmt = (
            update(WebhookDeliveryRecord)
            .where(WebhookDeliveryRecord.id == delivery_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        await self._session.execute(stmt)

    async def get(self, topic: str, message_id: str) -> WebhookDelivery | None:
        w = WebhookDeliveryRecord
        stmt = select(w).where(w.topic == topic, w.message_id == message_id)
        record = await self._session.scalar(stmt)
        return _delivery(record) if record is not None else None

    async def all(self, status: str | None = None) -> builtins.list[WebhookDelivery]:
        """Every delivery (optionally of one status), oldest first — for ops and tests."""
        w = WebhookDeliveryRecord
        stmt = select(w).order_by(w.id)
        if status is not None:
            stmt = stmt.where(w.status == status)
        return [_delivery(r) for r in (await self._session.scalars(stmt)).all()]

    async def counts(self) -> dict[str, int]:
        """Deliveries by status."""
        w = WebhookDeliveryRecord
        stmt = select(w.status, func.count()).group_by(w.status)
        return {status: count for status, count in (await self._session.execute(stmt)).all()}
