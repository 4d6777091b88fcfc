"""Poison records never stop a consumer on the real broker: hypothesis-drawn hostile records
interleaved with good ones are each stored or dead-lettered with a reason, in the same
batches; and a ``firstvalue ingest`` process (the CLI's code path) handed a poison record at
the head of a partition dead-letters it and goes on consuming that partition."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.consumer import IngestResult
from shared.bus import topics
from shared.plan_files import default_plans

from ..hostile import drawn, encode, good_message, hostile_records
from .conftest import BusFactory
from .harness import drained, eventually, ingesting, read_topic
from .test_kafka_crash import ingest_process

PLANS = default_plans()
EXAMPLES = 150


async def _ids(sessions: async_sessionmaker[AsyncSession], table: str, prefix: str) -> set[str]:
    async with sessions() as session:
        rows = await session.execute(
            text(f"SELECT id FROM {table} WHERE id LIKE :prefix"), {"prefix": f"{prefix}%"}
        )
        return set(rows.scalars())


async def test_hostile_records_on_kafka_are_stored_or_dead_lettered_and_never_stop_ingest(
    buses: BusFactory,
    pg_sessions: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = datetime.now(UTC)
    account = f"acct-{uuid.uuid4().hex[:8]}"
    hostile = drawn(hostile_records(account, now), EXAMPLES)
    good = [good_message(account, n, now) for n in range(len(hostile) // 5)]
    records = [h.raw for h in hostile]
    for n, message in enumerate(good):  # good ones interleaved, in the same batches
        records.insert(n * 6, orjson.dumps(message))
    bus = await buses("poison")
    results: list[IngestResult] = []
    with caplog.at_level(logging.ERROR):
        async with ingesting(bus, pg_sessions, PLANS, now, results=results) as task:
            await bus.publish_many(topics.EVENTS, [(account, raw) for raw in records])
            await drained(bus)
            assert not task.done()
    assert not [r for r in caplog.records if "batch failed" in r.getMessage()]  # no retry

    dead = [orjson.loads(m.value) for m in await read_topic(bus, topics.EVENTS_DLQ, at_least=1)]
    assert all(d["reason"] and d["error"] for d in dead)
    assert len({(d["partition"], d["offset"]) for d in dead}) == len(dead)
    counted = sum(r.accepted + r.duplicates + r.pending for r in results)
    assert counted + len(dead) == len(records), "a record was neither stored nor dead-lettered"
    stored = await _ids(pg_sessions, "events", "good-")
    assert stored == {m["messageId"] for m in good}
    parked = await _ids(pg_sessions, "pending_events", "h-") | await _ids(
        pg_sessions, "events", "h-"
    )
    dead_ids = {_message_id(d["original"]) for d in dead}
    for case in hostile:
        if case.message_id is not None:
            assert (case.message_id in parked) != (case.message_id in dead_ids), case.raw[:300]


def _message_id(original: str) -> object:
    try:
        value = orjson.loads(original)
    except orjson.JSONDecodeError:
        return None
    return value.get("messageId") if isinstance(value, dict) else None


def defect_records(account: str, now: datetime) -> list[bytes]:
    """The records of issue 10's first defect (each crashed the consumer)."""
    login = {"type": "track", "userId": "p", "event": "Logged In", "context": {"groupId": account}}
    contract = {
        "type": "track", "userId": "crm", "event": "Contract Signed",
        "timestamp": now.isoformat(), "properties": {"account_id": account, "plan": "smb"},
    }  # fmt: skip
    return [
        encode({**login, "messageId": "x1", "timestamp": "0001-01-01T00:00:00+01:00"}),
        encode(
            {
                **login,
                "messageId": "x2",
                "timestamp": "0001-01-01T00:00:00Z",
                "sentAt": "9999-12-31T23:59:59Z",
            }
        ),  # fmt: skip
        *(
            encode(
                {
                    **contract,
                    "messageId": f"c{n}",
                    "properties": {**contract["properties"], "licensed_seats": seats},
                }
            )
            for n, seats in enumerate((1e19, 18446744073709551615, 3_000_000_000))
        ),  # fmt: skip
    ]


async def test_a_poison_record_at_the_head_of_a_partition_is_dead_lettered_by_firstvalue_ingest(
    buses: BusFactory,
    pg_url: str,
    pg_sessions: async_sessionmaker[AsyncSession],
    bootstrap: str,
    namespace: str,
    tmp_path: Path,
) -> None:
    now = datetime.now(UTC)
    account = f"acct-{uuid.uuid4().hex[:8]}"
    poison = defect_records(account, now)
    good = [good_message(account, n, now - timedelta(minutes=1)) for n in range(3)]
    bus = await buses("poison-head")
    # one key: one partition, the poison first, then the good records behind it
    await bus.publish_many(topics.EVENTS, [(account, raw) for raw in poison])
    await bus.publish_many(topics.EVENTS, [(account, orjson.dumps(m)) for m in good])
    log = tmp_path / "ingest.log"
    with ingest_process(bootstrap, pg_url, namespace, log) as process:

        async def consumed() -> bool:
            assert process.poll() is None, log.read_text()
            return await _ids(pg_sessions, "events", "good-") == {m["messageId"] for m in good}

        await eventually(consumed, "the records behind the poison to be stored")
        await drained(bus)
        assert process.poll() is None, log.read_text()
    dead = [orjson.loads(m.value) for m in await read_topic(bus, topics.EVENTS_DLQ, at_least=5)]
    assert sorted(d["offset"] for d in dead) == [0, 1, 2, 3, 4]
    assert {d["reason"] for d in dead} == {"out_of_range"}
    assert "batch failed" not in log.read_text()
