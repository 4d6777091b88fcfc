"""Integration fixtures: every test runs against SQLite (a temporary file) and PostgreSQL.

PostgreSQL comes from ``FIRSTVALUE_TEST_DATABASE_URL`` (``make test`` starts a server and
sets it). Each test gets a fresh database created for it and dropped afterwards. Without
the variable the PostgreSQL half is skipped locally, and fails under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.config import sqlite_dsn
from shared.storage import create_engine, create_sessionmaker, migrate

BACKENDS = ("sqlite", "postgresql")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: needs real databases (SQLite, PostgreSQL)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)


def postgres_base_url() -> str:
    """The server to create test databases on; skip (or fail under CI) when absent."""
    url = os.environ.get("FIRSTVALUE_TEST_DATABASE_URL")
    if url:
        return url
    if os.environ.get("CI") == "true":
        pytest.fail("FIRSTVALUE_TEST_DATABASE_URL must be set when CI=true")
    pytest.skip("FIRSTVALUE_TEST_DATABASE_URL is not set (make test sets it)")


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@asynccontextmanager
async def fresh_postgres_database(base_url: str) -> AsyncIterator[str]:
    """A new, empty database on the test server, dropped afterwards."""
    name = f"fv_test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(_asyncpg_dsn(base_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield make_url(base_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await _drop_database(base_url, name)


async def _drop_database(base_url: str, name: str, attempts: int = 10) -> None:
    """``DROP DATABASE … WITH (FORCE)``, again while a backend this role may not end (an
    autovacuum worker, the superuser's) is still in it: those end by themselves."""
    for attempt in range(1, attempts + 1):
        admin = await asyncpg.connect(_asyncpg_dsn(base_url))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except asyncpg.InsufficientPrivilegeError:
            if attempt == attempts:
                raise
        finally:
            await admin.close()
        await asyncio.sleep(0.5)


@pytest.fixture(params=BACKENDS)
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of each backend (not migrated)."""
    if request.param == "sqlite":
        yield sqlite_dsn(tmp_path / "firstvalue-test.db")
        return
    async with fresh_postgres_database(postgres_base_url()) as url:
        yield url


@pytest.fixture
async def database_url(empty_database_url: str) -> str:
    """A migrated database of each backend."""
    await migrate(empty_database_url)
    return empty_database_url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, application_name="firstvalue-tests")
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)
