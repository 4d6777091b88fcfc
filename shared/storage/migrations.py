"""Apply the Alembic migrations (``migrations/`` at the repository root) programmatically.

``firstvalue migrate``, the embedded runner and the tests call ``migrate(url)``; the
``alembic`` command line works too, from the repository root, with the same ``env.py``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection

from shared.config import async_database_url
from shared.storage.engine import create_engine

ROOT = Path(__file__).resolve().parents[2]
SCRIPT_LOCATION = ROOT / "migrations"
INI_FILE = ROOT / "alembic.ini"
_LOCK_ID = 0x6669_7273  # "firs": one migrator at a time per PostgreSQL database


def alembic_config(url: str) -> Config:
    """The Alembic configuration for ``url``, independent of the working directory."""
    if not (SCRIPT_LOCATION / "env.py").is_file():
        raise RuntimeError(f"Alembic migrations not found at {SCRIPT_LOCATION}")
    config = Config(str(INI_FILE)) if INI_FILE.is_file() else Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.attributes["database_url"] = async_database_url(url)
    config.attributes["configure_logger"] = False  # leave the host process's logging alone
    return config


def _upgrade(connection: Connection, config: Config, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def migrate(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (default: the latest)."""
    config = alembic_config(url)
    engine = create_engine(url, application_name="firstvalue-migrate")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade, config, revision)
    finally:
        await engine.dispose()


def migrate_sync(url: str, revision: str = "head") -> None:
    """``migrate`` for synchronous callers (not from inside a running event loop)."""
    asyncio.run(migrate(url, revision))
