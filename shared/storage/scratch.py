"""Scratch databases: a whole PostgreSQL database made for one test or bench run and dropped
after it, the same way for every caller.

The drop is ``DROP DATABASE … WITH (FORCE)``, retried while a backend the role may not end
(an autovacuum worker after a bulk load, the superuser's) is still in the database: those
end by themselves.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

DROP_ATTEMPTS = 20
DROP_RETRY_SECONDS = 0.5


def asyncpg_dsn(url: str) -> str:
    """The plain ``postgresql://`` form of a SQLAlchemy URL (any driver), for asyncpg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@asynccontextmanager
async def scratch_database(
    server_url: str, prefix: str, *, settings: Mapping[str, str] | None = None
) -> AsyncIterator[str]:
    """``server_url`` (any database on the server) pointed at a new, empty database named
    ``prefix_<random>``, with ``settings`` as its own defaults (``ALTER DATABASE … SET``);
    dropped on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        for key, value in (settings or {}).items():
            await admin.execute(f'ALTER DATABASE "{name}" SET {key} = {value}')
    finally:
        await admin.close()
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await _drop(server_url, name)


async def _drop(server_url: str, name: str) -> None:
    for attempt in range(1, DROP_ATTEMPTS + 1):
        admin = await asyncpg.connect(asyncpg_dsn(server_url))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except asyncpg.InsufficientPrivilegeError:
            if attempt == DROP_ATTEMPTS:
                raise
        finally:
            await admin.close()
        await asyncio.sleep(DROP_RETRY_SECONDS)
