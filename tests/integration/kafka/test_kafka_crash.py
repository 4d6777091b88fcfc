"""A ``firstvalue ingest`` process (the CLI's code path, ``ingest_process.py``) killed with
SIGKILL while it works through a backlog, then started again, loses nothing and doubles
nothing: the stored facts equal one in-order ingestion, and every stored fact was announced
on ``onboarding.facts``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus import topics
from shared.plan_files import default_plans

from .conftest import BusFactory
from .harness import count, drained, eventually, produce, read_topic, snapshot, stored_ids
from .scenario import NOW, demo_messages, reference_snapshot

PLANS = default_plans()
PROCESS = Path(__file__).with_name("ingest_process.py")
REPO = Path(__file__).parents[3]


@contextmanager
def ingest_process(
    bootstrap: str, database_url: str, namespace: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``firstvalue ingest`` in a process of its own; SIGTERM (graceful) on exit if alive."""
    env = {
        **os.environ,
        "FIRSTVALUE_DATABASE_URL": database_url,
        "FIRSTVALUE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "FIRSTVALUE_INGEST_METRICS_PORT": "0",
        "PYTHONPATH": str(REPO),
    }
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, str(PROCESS), namespace], env=env, cwd=REPO, stdout=out, stderr=out
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def test_an_ingest_process_killed_mid_batch_and_restarted_loses_and_doubles_nothing(
    buses: BusFactory,
    pg_url: str,
    pg_sessions: async_sessionmaker[AsyncSession],
    bootstrap: str,
    namespace: str,
    tmp_path: Path,
) -> None:
    messages = demo_messages(PLANS, accounts=80)
    bus = await buses("crash-test")
    await produce(bus, messages)  # a backlog: the process works through it batch after batch
    log = tmp_path / "ingest.log"

    with ingest_process(bootstrap, pg_url, namespace, log) as first:

        async def storing() -> bool:
            assert first.poll() is None, log.read_text()
            return await count(pg_sessions, "events") > 0

        await eventually(storing, "the first process to commit a batch")
        first.send_signal(signal.SIGKILL)
        first.wait()
    stored_at_kill = await count(pg_sessions, "events")
    uncommitted_at_kill = await bus.lag(topics.EVENTS, "ingest")
    assert uncommitted_at_kill > 0, "the process finished before the kill: nothing was tested"

    with ingest_process(bootstrap, pg_url, namespace, log) as second:
        await drained(bus)
        assert second.poll() is None, log.read_text()

    expected = await reference_snapshot(messages, PLANS)
    assert await snapshot(pg_sessions, PLANS, NOW) == expected
    ids = await stored_ids(pg_sessions)
    assert stored_at_kill < len(ids) == len(expected["events"])
    notices = await read_topic(bus, topics.FACTS, at_least=1)
    announced = {i for m in notices for i in orjson.loads(m.value)["fact_ids"]}
    assert set(ids) <= announced  # a batch stored before the kill was announced after it
    assert await bus.lag(topics.EVENTS_DLQ, "nobody") == 0  # nothing was dead-lettered
