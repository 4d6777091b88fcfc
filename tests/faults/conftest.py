"""Fault fixtures: the suite's own durable PostgreSQL and broker (started once, with the
project's scripts) and the three services on them as processes. Marked ``faults``:
``pytest -m faults`` runs the suite alone, ``-m 'not faults'`` leaves it out.

Like the integration tests, the suite runs where ``make test`` provides servers
(``FIRSTVALUE_TEST_DATABASE_URL`` set): skipped locally without them, failed under CI.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus.kafka import KafkaBus
from shared.storage import create_engine, create_sessionmaker

from .servers import FIRSTVALUE, Stack, durable_stack, service_env


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.faults)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Servers, the schema migrated, and ``firstvalue ingest|milestones|api`` running."""
    if not os.environ.get("FIRSTVALUE_TEST_DATABASE_URL"):
        if os.environ.get("CI") == "true":
            pytest.fail("the fault suite runs under make test (deploy/local/with-servers.sh)")
        pytest.skip("fault suite: run it under make test or deploy/local/with-servers.sh")
    with durable_stack(tmp_path_factory.mktemp("faults")) as running:
        env = service_env(running.database_url, running.bootstrap)
        subprocess.run([str(FIRSTVALUE), "migrate"], env=env, check=True, capture_output=True)
        running.start_services()
        try:
            yield running
        finally:
            running.stop_services()


@pytest.fixture
async def bus(stack: Stack) -> AsyncIterator[KafkaBus]:
    """A producer (``acks=all``) and lag reader on the suite's broker."""
    producer = KafkaBus(stack.bootstrap, client_id="fault-tests")
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
async def sessions(stack: Stack) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(stack.database_url, application_name="firstvalue-fault-tests")
    yield create_sessionmaker(engine)
    await engine.dispose()
