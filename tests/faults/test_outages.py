"""Outages of a durable PostgreSQL and of the broker, with ``firstvalue ingest``,
``milestones`` and ``api`` running as processes: they ride each one out, without a restart,
and nothing acknowledged is lost or stored twice.

The outages last as long as the issue asks (60 s, 30 s); everything else is polled with
deadlines.
"""

from __future__ import annotations

import asyncio
import time

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus import topics
from shared.bus.kafka import KafkaBus

from .servers import Events, Stack, answers_ready, dependency_up, eventually, gauge_at, readyz

DATABASE_OUTAGE_SECONDS = 60.0
BROKER_OUTAGE_SECONDS = 30.0
READY_WITHIN_SECONDS = 1.0
RECOVERY_DEADLINE = 90.0
QUIET_LINES = 10  # log lines a service may write for a broker outage of half a minute


async def caught_up(
    stack: Stack, bus: KafkaBus, sessions: async_sessionmaker[AsyncSession], events: Events
) -> None:
    """Every produced event stored once, and both consumer groups with nothing left."""

    async def done() -> bool:
        rows, distinct = await events.stored(sessions)
        assert rows == distinct  # never twice
        assert rows <= events.produced
        return (
            rows == events.produced
            and await bus.lag(topics.EVENTS, "ingest") == 0
            and await bus.lag(topics.FACTS, "milestones") == 0
        )

    await eventually(
        done, f"{events.produced} events stored and no lag", deadline=RECOVERY_DEADLINE
    )
    stack.assert_running()


async def test_an_immediate_restart_while_streaming_stores_every_acknowledged_event_once(
    stack: Stack, bus: KafkaBus, sessions: async_sessionmaker[AsyncSession]
) -> None:
    events = Events(bus)
    await events.sign()

    async def stream() -> None:  # ~150 events a second for 6 s
        for _ in range(60):
            await events.use(15)
            await asyncio.sleep(0.1)

    streaming = asyncio.create_task(stream())

    async def some_stored() -> bool:
        return (await events.stored(sessions))[0] > 0

    await eventually(some_stored, "the first events stored", deadline=30)
    await asyncio.to_thread(stack.postgres, "restart", "immediate")  # a crash, then recovery
    await streaming
    await caught_up(stack, bus, sessions, events)


async def test_a_database_down_for_a_minute_is_waited_out(
    stack: Stack, bus: KafkaBus, sessions: async_sessionmaker[AsyncSession]
) -> None:
    events = Events(bus)
    await events.sign()
    await events.use(200)
    await caught_up(stack, bus, sessions, events)

    await asyncio.to_thread(stack.postgres, "halt")
    stopped = time.monotonic()
    status, body, _ = await readyz(stack)
    assert status == 503, body
    print(f"database halted: /readyz 503 after {time.monotonic() - stopped:.3f} s")
    assert time.monotonic() - stopped <= READY_WITHIN_SECONDS
    assert body["checks"]["database"]["status"] == "down"
    assert "database" in body["error"]["message"]

    await events.use(300)  # acknowledged by the broker while the database is away
    for name in ("ingest", "milestones"):
        gauge = gauge_at(stack.services[name], "database", 0)
        await eventually(gauge, f"{name}'s database gauge at 0", deadline=30)
        async with httpx.AsyncClient(timeout=5) as client:  # its own probe endpoint
            probe = await client.get(f"http://127.0.0.1:{stack.services[name].port}/readyz")
        assert probe.status_code == 503 and "database down" in probe.text
    while time.monotonic() - stopped < DATABASE_OUTAGE_SECONDS:  # the outage itself
        assert (await readyz(stack))[0] == 503
        stack.assert_running()
        await asyncio.sleep(1)

    await asyncio.to_thread(stack.postgres, "resume")
    await eventually(lambda: answers_ready(stack), "/readyz 200 again", deadline=20)
    await caught_up(stack, bus, sessions, events)
    assert await dependency_up(stack.services["ingest"], "database") == 1


async def test_a_stalled_database_makes_readyz_answer_503_within_a_second(
    stack: Stack, bus: KafkaBus, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await eventually(lambda: answers_ready(stack), "/readyz 200", deadline=10)
    await asyncio.to_thread(stack.postgres, "signal", "STOP")
    try:
        stalled = time.monotonic()
        for _ in range(3):
            status, body, took = await readyz(stack)
            assert status == 503, body
            print(f"database stalled: /readyz 503 in {took:.3f} s")
            assert took <= READY_WITHIN_SECONDS
            assert body["checks"]["database"]["status"] == "down"
        assert time.monotonic() - stalled <= 3 * READY_WITHIN_SECONDS
    finally:
        await asyncio.to_thread(stack.postgres, "signal", "CONT")
    await eventually(lambda: answers_ready(stack), "/readyz 200 after the stall", deadline=15)
    events = Events(bus)
    await events.sign()
    await events.use(100)
    await caught_up(stack, bus, sessions, events)


async def test_a_broker_down_for_half_a_minute_is_waited_out_quietly(
    stack: Stack, bus: KafkaBus, sessions: async_sessionmaker[AsyncSession]
) -> None:
    events = Events(bus)
    await events.sign()
    await events.use(100)
    await caught_up(stack, bus, sessions, events)
    marks = {name: len(service.lines()) for name, service in stack.services.items()}
    pids = {name: service.process.pid for name, service in stack.services.items()}

    await asyncio.to_thread(stack.kafka, "stop")
    stopped = time.monotonic()

    async def kafka_named() -> bool:
        status, body, _ = await readyz(stack)
        return status == 503 and body["checks"]["kafka"]["status"] == "down"

    await eventually(kafka_named, "/readyz naming kafka down", deadline=10)
    gauge = gauge_at(stack.services["ingest"], "kafka", 0)
    await eventually(gauge, "ingest's kafka gauge at 0", deadline=30)
    while time.monotonic() - stopped < BROKER_OUTAGE_SECONDS:  # the outage itself
        stack.assert_running()
        await asyncio.sleep(1)

    await asyncio.to_thread(stack.kafka, "resume")
    await events.use(100)
    await caught_up(stack, bus, sessions, events)
    await eventually(lambda: answers_ready(stack), "/readyz 200 again", deadline=30)
    assert {name: s.process.pid for name, s in stack.services.items()} == pids  # no restart
    for name, service in stack.services.items():
        written = service.lines()[marks[name] :]
        print(f"broker outage: {name} wrote {len(written)} log lines")
        assert len(written) <= QUIET_LINES, f"{name} wrote {len(written)} lines:\n" + "\n".join(
            written
        )
