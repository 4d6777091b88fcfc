"""Usage events: append-only, deduplicated by id (messageId, $insert_id or content hash).

The insert is the ingest hot path. On PostgreSQL a batch goes in as one statement whose
rows come from ``unnest`` over one array per column: a handful of parameters however large
the batch, so the driver encodes arrays in C and the server plans once. SQLite takes the
portable multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import orjson
from sqlalchemy import func, select, text
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
        unique = sorted({e.id: e for e in events}.values(), key=lambda e: e.id)  # lock order
        if self._session.get_bind().dialect.name == "postgresql":
            return await self._add_unnested(unique, source, recorded_at)
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
            for e in unique
        ]
        stmt = (
            dialect.insert(self._session, EventRecord)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(EventRecord.id)
        )
        result = await self._session.execute(stmt, rows)
        return set(result.scalars().all())

    async def _add_unnested(
        self, events: Sequence[EventObserved], source: str, recorded_at: datetime
    ) -> set[str]:
        result = await self._session.execute(
            _UNNEST_INSERT,
            {
                "ids": [e.id for e in events],
                "accounts": [e.account_id for e in events],
                "users": [e.user_id for e in events],
                "names": [e.name for e in events],
                "times": [e.at for e in events],
                "properties": [_json(e.properties) for e in events],
                "source": source,
                "recorded_at": recorded_at,
            },
        )
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


def _json(properties: object) -> str:
    return orjson.dumps(properties, option=orjson.OPT_NON_STR_KEYS).decode()


_UNNEST_INSERT = text(
    """
    INSERT INTO events (id, account_id, user_id, name, occurred_at, properties, source,
                        recorded_at)
    SELECT id, account_id, user_id, name, occurred_at, properties::jsonb,
           CAST(:source AS varchar), CAST(:recorded_at AS timestamptz)
    FROM unnest(CAST(:ids AS varchar[]), CAST(:accounts AS varchar[]),
                CAST(:users AS varchar[]), CAST(:names AS varchar[]),
                CAST(:times AS timestamptz[]), CAST(:properties AS text[]))
         AS batch(id, account_id, user_id, name, occurred_at, properties)
    ON CONFLICT (id) DO NOTHING
    RETURNING id
    """
)
