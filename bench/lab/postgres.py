"""A fresh, migrated database on the bench's PostgreSQL server, dropped afterwards."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

from shared.storage import migrate


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@asynccontextmanager
async def fresh_database(server_url: str) -> AsyncIterator[str]:
    name = f"fv_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        await migrate(url)
        yield url
    finally:
        await _drop(server_url, name)


async def _drop(server_url: str, name: str, attempts: int = 20) -> None:
    """``DROP DATABASE … WITH (FORCE)``, again while a backend this role may not end (an
    autovacuum worker after a bulk load) is still in it: those end by themselves."""
    for attempt in range(1, attempts + 1):
        admin = await asyncpg.connect(asyncpg_dsn(server_url))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except asyncpg.InsufficientPrivilegeError:
            if attempt == attempts:
                raise
        finally:
            await admin.close()
        await asyncio.sleep(0.5)


async def server_version(url: str) -> str:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return str(await conn.fetchval("SHOW server_version")).split()[0]
    finally:
        await conn.close()
