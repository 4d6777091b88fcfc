"""The dialect-specific ``INSERT`` that repositories need for ``ON CONFLICT`` clauses.

SQLite and PostgreSQL spell ``INSERT ... ON CONFLICT ... RETURNING`` the same way, but
SQLAlchemy exposes it per dialect; repositories ask for the one their session speaks.
"""

from __future__ import annotations

from typing import Any

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
