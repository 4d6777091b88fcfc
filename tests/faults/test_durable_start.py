"""A service refuses, in one line, a database that acknowledges commits it may lose
(``synchronous_commit=off``), and starts on it once told the database is disposable."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator

import pytest

from shared.storage.scratch import scratch_database

from .servers import (
    FIRSTVALUE,
    Service,
    Stack,
    answers_ready,
    eventually,
    free_port,
    service_env,
)


@pytest.fixture
async def lossy_database(stack: Stack) -> AsyncIterator[str]:
    """A database of the durable server whose own setting turns synchronous_commit off."""
    async with scratch_database(
        stack.database_url, "fv_lossy", settings={"synchronous_commit": "off"}
    ) as url:
        yield url


@pytest.mark.parametrize("service", ["ingest", "milestones", "api"])
def test_a_service_refuses_a_database_with_synchronous_commit_off(
    stack: Stack, lossy_database: str, service: str
) -> None:
    done = subprocess.run(
        [str(FIRSTVALUE), service],
        env=service_env(lossy_database, stack.bootstrap),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "synchronous_commit=off" in lines[0]
    assert "FIRSTVALUE_ALLOW_NON_DURABLE_DATABASE=true" in lines[0]
    assert "firstvalue:firstvalue@" not in lines[0]  # the password stays out of logs


async def test_the_override_lets_it_start_on_that_database(
    stack: Stack, lossy_database: str
) -> None:
    env = service_env(lossy_database, stack.bootstrap)
    subprocess.run([str(FIRSTVALUE), "migrate"], env=env, check=True, capture_output=True)
    port = free_port()
    env |= {"FIRSTVALUE_ALLOW_NON_DURABLE_DATABASE": "true", "FIRSTVALUE_API_PORT": str(port)}
    process = subprocess.Popen(
        [str(FIRSTVALUE), "api"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        api = Stack(stack.folder, lossy_database, stack.bootstrap)
        api.services["api"] = Service("api", process, stack.folder / "override.log", port)
        await eventually(lambda: answers_ready(api), "the API ready", deadline=30)
        assert process.poll() is None
    finally:
        process.terminate()
        process.wait(30)
