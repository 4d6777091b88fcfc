"""The outbox: messages written in the same transaction as the state change that caused
them, published afterwards. A crash between commit and publish loses nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.storage import dialect
from shared.storage.tables import OutboxRecord

RELAY_LOCK = 0x6676_6F75_7462  # "fvoutb": the advisory lock relays take turns on


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    topic: str
    key: str | None
    message_id: str
    payload: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class QueuedMessage:
    """A message to queue with ``OutboxRepository.add_many``."""

    topic: str
    key: str | None
    message_id: str
    payload: dict[str, Any]


class OutboxRepository:
    """Adds messages to publish and claims unsent ones for a publisher."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(
        self,
        topic: str,
        key: str | None,
        message_id: str,
        payload: dict[str, Any],
        created_at: datetime,
    ) -> bool:
        """Queue a message; False if this (topic, message id) was queued before."""
        stmt = (
            dialect.insert(self._session, OutboxRecord)
            .values(
                topic=topic,
                key=key,
                message_id=message_id,
                payload=payload,
                created_at=created_at,
            )
            .on_conflict_do_nothing(index_elements=["topic", "message_id"])
            .returning(OutboxRecord.id)
        )
        return (await self._session.scalar(stmt)) is not None

    async def add_many(self, messages: Sequence[QueuedMessage], created_at: datetime) -> None:
        """Queue ``messages`` in one statement (a cold replay queues a dozen transitions per
        onboarding; ``add`` is a round trip each), in order: ids follow list order, so the
        relay publishes them in the order given. Repeats, within the list or queued before,
        are dropped as in ``add``."""
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
            stmt = dialect.insert(self._session, OutboxRecord.__table__).on_conflict_do_nothing(
                index_elements=["topic", "message_id"]
            )
            await self._session.execute(stmt, rows)  # executemany: multi-row VALUES, in order

    async def claim_unsent(self, limit: int, now: datetime) -> list[OutboxMessage]:
        """Mark up to ``limit`` unsent messages sent, in this transaction, and return them.

        Publish them, then commit; roll back if publishing fails and they stay unsent.
        Claimers take turns (a transaction-scoped advisory lock on PostgreSQL; SQLite
        serialises writers), so however many service instances relay, each account's
        messages reach the bus in the order their transactions committed.
        """
        if dialect.is_postgresql(self._session):
            await self._session.execute(select(func.pg_advisory_xact_lock(RELAY_LOCK)))
        o = OutboxRecord
        oldest = (
            select(o.id)
            .where(o.sent_at.is_(None))
            .order_by(o.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        stmt = (
            update(o)
            .where(o.sent_at.is_(None), o.id.in_(oldest.scalar_subquery()))
            .values(sent_at=now)
            .returning(o.id, o.topic, o.key, o.message_id, o.payload, o.created_at)
            .execution_options(synchronize_session=False)
        )
        rows = (await self._session.execute(stmt)).all()
        messages = [
            OutboxMessage(
                id=r.id,
                topic=r.topic,
                key=r.key,
                message_id=r.message_id,
                payload=r.payload,
                created_at=r.created_at,
            )
            for r in rows
        ]
        return sorted(messages, key=lambda m: m.id)

    async def unsent_count(self) -> int:
        stmt = select(func.count()).select_from(OutboxRecord).where(OutboxRecord.sent_at.is_(None))
        return (await self._session.scalar(stmt)) or 0
