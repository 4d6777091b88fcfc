"""Integration fixtures: every test runs against SQLite (a temporary file) and PostgreSQL.

PostgreSQL comes from ``FIRSTVALUE_TEST_DATABASE_URL`` (``make test`` starts a server and
sets it). Each test gets a fresh database created for it and dropped afterwards. Without
the variable the PostgreSQL half is skipped locally, and fails under ``CI=true``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.config import sqlite_dsn
from shared.storage import create_engine, create_sessionmaker, migrate
from shared.storage.scratch import scratch_database

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


@asynccontextmanager
async def fresh_postgres_database(base_url: str) -> AsyncIterator[str]:
    """A new, empty database on the test server, dropped afterwards."""
    async with scratch_database(base_url, "fv_test") as url:
        yield url


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
