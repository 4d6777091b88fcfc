"""The dialect-specific ``INSERT`` that repositories need for ``ON CONFLICT`` clauses.

SQLite and PostgreSQL spell ``INSERT ... ON CONFLICT ... RETURNING`` the same way, but
SQLAlchemy exposes it per dialect; repositories ask for the one their session speaks. On
PostgreSQL the ingest path's bulk inserts take their rows as one JSON text (``json_rows``),
and the projector's wide reads go straight to asyncpg (``fetch``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def insert(session: AsyncSession, table: Any) -> Any:
    """``insert(table)`` with ``on_conflict_do_nothing``/``on_conflict_do_update``."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect {name!r}")


def is_postgresql(session: AsyncSession) -> bool:
    return bool(session.get_bind().dialect.name == "postgresql")


async def fetch(session: AsyncSession, sql: str, *args: Any) -> Sequence[Any]:
    """``sql`` on the session's asyncpg connection, in its transaction (PostgreSQL only):
    SQLAlchemy's per-row result processing costs more than the reads of thousands of rows.
    asyncpg returns ``timestamptz`` as UTC-aware datetimes (what ``UTCDateTime`` yields) and
    JSONB through the codec SQLAlchemy installed on the connection (the engine's orjson)."""
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    rows: Sequence[Any] = await driver.fetch(sql, *args)
    return rows


def json_rows(rows: Iterable[Sequence[Any]]) -> str:
    """Rows as one JSON array text, the single parameter of the PostgreSQL bulk inserts
    (expanded by ``jsonb_array_elements``): one statement compiled once whatever the batch
    size, encoded in C by orjson (per-column arrays cost the driver a Python-level check
    per element; the ORM's multi-row ``VALUES`` compiles anew for every row count)."""
    return orjson.dumps(list(rows), option=_JSON_ROW_OPTIONS).decode()


async def insert_json_rows(
    session: AsyncSession, statement: Any, rows: Iterable[Sequence[Any]], **params: Any
) -> set[str]:
    """Run a ``:rows`` bulk insert that returns the new rows' keys; returns those keys."""
    result = await session.execute(statement, {"rows": json_rows(rows), **params})
    return set(result.scalars().all())


_JSON_ROW_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_NAIVE_UTC  # naive times are UTC
