"""A fresh, migrated database on the bench's PostgreSQL server, dropped afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg  # type: ignore[import-untyped]

from shared.storage import migrate
from shared.storage.scratch import asyncpg_dsn, scratch_database

__all__ = ["asyncpg_dsn", "fresh_database", "server_version"]


@asynccontextmanager
async def fresh_database(server_url: str) -> AsyncIterator[str]:
    async with scratch_database(server_url, "fv_bench") as url:
        await migrate(url)
        yield url


async def server_version(url: str) -> str:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return str(await conn.fetchval("SHOW server_version")).split()[0]
    finally:
        await conn.close()
