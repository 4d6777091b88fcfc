"""Kafka fixtures: a real broker (``FIRSTVALUE_TEST_KAFKA_BOOTSTRAP_SERVERS``) and a fresh
PostgreSQL database per test. Each test gets its own namespace of topics (a unique prefix),
so tests never read each other's records. Without the broker the tests are skipped locally
and fail under ``CI=true``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus.kafka import KafkaBus
from shared.storage import create_engine, create_sessionmaker, migrate

from ..conftest import fresh_postgres_database, postgres_base_url

SESSION_TIMEOUT_MS = 6000  # the broker's minimum: a killed consumer's partitions move on soon

BusFactory = Callable[[str], Awaitable[KafkaBus]]


def kafka_bootstrap_servers() -> str:
    """The test broker, or skip (locally) / fail (under CI) when there is none."""
    servers = os.environ.get("FIRSTVALUE_TEST_KAFKA_BOOTSTRAP_SERVERS")
    if servers:
        return servers
    if os.environ.get("CI") == "true":
        pytest.fail("FIRSTVALUE_TEST_KAFKA_BOOTSTRAP_SERVERS must be set when CI=true")
    pytest.skip("FIRSTVALUE_TEST_KAFKA_BOOTSTRAP_SERVERS is not set (make test sets it)")


@pytest.fixture
def bootstrap() -> str:
    return kafka_bootstrap_servers()


@pytest.fixture
def namespace(bootstrap: str) -> str:
    """This test's topic prefix: ``t<hex>.analytics.events`` and so on."""
    return f"t{uuid.uuid4().hex[:12]}."


@pytest.fixture
async def buses(bootstrap: str, namespace: str) -> AsyncIterator[BusFactory]:
    """Start KafkaBus instances in this test's namespace (each like a separate process);
    all are stopped at the end."""
    started: list[KafkaBus] = []

    async def start(client_id: str) -> KafkaBus:
        bus = KafkaBus(
            bootstrap,
            client_id=client_id,
            topic_prefix=namespace,
            session_timeout_ms=SESSION_TIMEOUT_MS,
        )
        await bus.start()
        started.append(bus)
        return bus

    yield start
    for bus in started:
        await bus.stop()


@pytest.fixture
async def pg_url(bootstrap: str) -> AsyncIterator[str]:
    """A fresh, migrated PostgreSQL database."""
    async with fresh_postgres_database(postgres_base_url()) as url:
        await migrate(url)
        yield url


@pytest.fixture
async def pg_sessions(pg_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(pg_url, application_name="firstvalue-kafka-tests")
    yield create_sessionmaker(engine)
    await engine.dispose()
