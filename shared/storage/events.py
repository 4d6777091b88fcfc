"""Usage events: append-only, deduplicated by id (messageId, $insert_id or content hash)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.domain.facts import EventObserved
from shared.storage import dialect
from shared.storage.tables import EventRecord


class EventRepository:
    """Stores ``EventObserved`` facts; a repeated id is a duplicate, never a second event."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_many(
        self, events: Sequence[EventObserved], *, source: str, recorded_at: datetime
    ) -> set[str]:
        """Insert the events that are new and return their ids (the rest were duplicates)."""
        if not events:
            return set()
        rows = [
            {
                "id": e.id,
                "account_id": e.account_id,
                "user_id": e.user_id,
                "name": e.name,
                "occurred_at": e.at,
                "properties": dict(e.properties),
                "source": source,
                "recorded_at": recorded_at,
            }
            for e in {e.id: e for e in events}.values()
        ]
        stmt = (
            dialect.insert(self._session, EventRecord)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(EventRecord.id)
        )
        result = await self._session.execute(stmt, rows)
        return set(result.scalars().all())

    async def for_account(
        self, account_id: str, *, until: datetime | None = None
    ) -> list[EventObserved]:
        """The account's events in event-time order (only ``at <= until`` when given)."""
        e = EventRecord
        stmt = select(e.id, e.user_id, e.name, e.occurred_at, e.properties).where(
            e.account_id == account_id
        )
        if until is not None:
            stmt = stmt.where(e.occurred_at <= until)
        rows = await self._session.execute(stmt.order_by(e.occurred_at, e.id))
        return [
            EventObserved(
                id=r.id,
                account_id=account_id,
                user_id=r.user_id,
                name=r.name,
                at=r.occurred_at,
                properties=r.properties,
            )
            for r in rows
        ]

    async def count(self) -> int:
        return (await self._session.scalar(select(func.count()).select_from(EventRecord))) or 0
