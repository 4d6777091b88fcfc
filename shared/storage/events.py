"""Usage events: append-only, deduplicated by id (messageId, $insert_id or content hash).

The insert is the ingest hot path. On PostgreSQL a batch goes in as one statement with a
single parameter, the batch as one JSON array of row arrays (orjson encodes it in C;
per-column arrays cost the driver a Python-level type check per element), expanded by the
server with ``jsonb_array_elements``. SQLite takes the portable multi-row
``INSERT ... ON CONFLICT DO NOTHING RETURNING``.

The same insert numbers the batch in each account's insert sequence (``account_sequences``,
whose row lock orders the accounts' inserts by commit). The accounts' daily activity
summaries (``activity_days``) are folded from the numbered events when first read on
PostgreSQL (``activity_days.catch_up``: measured, the summary upsert was a fifth of the
ingest machine's CPU per event), by the insert on SQLite, from the rows it newly inserted,
so a duplicate never counts twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.domain.facts import EventObserved
from shared.storage import activity_days, dialect
from shared.storage.account_events import events_by_account
from shared.storage.tables import EventRecord

EventRow = tuple[str, str, str | None, str, datetime, Mapping[str, Any]]


class EventRepository:
    """Stores ``EventObserved`` facts; a repeated id is a duplicate, never a second event."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_many(
        self, events: Sequence[EventObserved], *, source: str, recorded_at: datetime
    ) -> set[str]:
        """Insert the events that are new and return their ids (the rest were duplicates)."""
        rows = [(e.id, e.account_id, e.user_id, e.name, e.at, e.properties) for e in events]
        return await self._insert(rows, source, recorded_at, _JSON_INSERT)

    async def add_rows(
        self, rows: Sequence[EventRow], *, source: str, recorded_at: datetime
    ) -> int:
        """``add_many`` for plain rows ``(id, account, user, name, at, properties)``, as the
        ingest path builds them (no fact object per event); returns how many were new."""
        if dialect.is_postgresql(self._session):
            return await self._insert(rows, source, recorded_at, _JSON_INSERT_COUNT)
        return len(await self._insert(rows, source, recorded_at, _JSON_INSERT))

    async def _insert(
        self, rows: Sequence[EventRow], source: str, recorded_at: datetime, statement: Any
    ) -> Any:
        """The new rows' ids (``statement`` returning ids), or their number."""
        if not rows:
            return set() if statement is _JSON_INSERT else 0
        unique = sorted({r[0]: r for r in rows}.values(), key=_row_id)  # lock order
        if dialect.is_postgresql(self._session):
            result = await self._session.execute(
                statement,
                {"rows": dialect.json_rows(unique), "source": source, "recorded_at": recorded_at},
            )
            return set(result.scalars().all()) if statement is _JSON_INSERT else result.scalar()
        seqs = await activity_days.next_sequences(self._session, {r[1] for r in unique})
        values = [
            {
                "id": r[0],
                "account_id": r[1],
                "user_id": r[2],
                "name": r[3],
                "occurred_at": r[4],
                "properties": dict(r[5]),
                "source": source,
                "recorded_at": recorded_at,
                "seq": seqs[r[1]],
            }
            for r in unique
        ]
        stmt = (
            dialect.insert(self._session, EventRecord)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(EventRecord.id)
        )
        new = set((await self._session.execute(stmt, values)).scalars().all())
        await activity_days.add(self._session, [r for r in unique if r[0] in new])
        return new

    async def for_account(
        self, account_id: str, *, until: datetime | None = None
    ) -> list[EventObserved]:
        """The account's events in event-time order (only ``at <= until`` when given)."""
        return (await events_by_account(self._session, [account_id], until=until))[account_id]

    async def count(self) -> int:
        return (await self._session.scalar(select(func.count()).select_from(EventRecord))) or 0


def _row_id(row: EventRow) -> str:
    return row[0]


# Rows arrive as one JSON text: [[id, account, user, name, at, properties], ...], parsed once
# as jsonb (measured on PostgreSQL 15: about the server CPU per row of ``unnest`` over
# per-column arrays, a quarter of its client CPU; ``json`` re-parses each element).
# The accounts' sequence numbers are taken in account order, so two concurrent inserts lock
# rows in the same order.
_JSON_INSERT_SQL = """
    WITH batch AS (
        SELECT row->>0 AS id, row->>1 AS account_id, row->>2 AS user_id, row->>3 AS name,
               CAST(row->>4 AS timestamptz) AS occurred_at, row->5 AS properties
        FROM jsonb_array_elements(CAST(CAST(:rows AS text) AS jsonb)) AS batch(row)
    ), numbered AS (
        INSERT INTO account_sequences (account_id, seq)
        SELECT account_id, 1 FROM (SELECT DISTINCT account_id FROM batch) AS a
        ORDER BY account_id
        ON CONFLICT (account_id) DO UPDATE SET seq = account_sequences.seq + 1
        RETURNING account_id, seq
    ), new AS (
        INSERT INTO events (id, account_id, user_id, name, occurred_at, properties, source,
                            recorded_at, seq)
        SELECT b.id, b.account_id, b.user_id, b.name, b.occurred_at, b.properties,
               CAST(:source AS varchar), CAST(:recorded_at AS timestamptz), n.seq
        FROM batch AS b JOIN numbered AS n ON n.account_id = b.account_id
        ON CONFLICT (id) DO NOTHING
        RETURNING id
    )
"""
_JSON_INSERT = text(f"{_JSON_INSERT_SQL} SELECT id FROM new")
_JSON_INSERT_COUNT = text(f"{_JSON_INSERT_SQL} SELECT count(*) FROM new")
