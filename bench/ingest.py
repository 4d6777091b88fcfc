"""Ingest throughput on the real broker and PostgreSQL, measured in one run.

  deploy/local/with-servers.sh .venv/bin/python bench/ingest.py [--events N]   (or: make bench)

1. Produces N demo events (Segment messages, keyed by account) to a fresh topic.
2. (a) raw aiokafka: one consumer reads the topic with ``getmany``, no processing — the
   ceiling for anything that consumes it in Python on this machine.
   (b) end to end: firstvalue's ingest consumer (``run_ingest`` on the Kafka bus) from that
   topic into a fresh PostgreSQL database; the clock stops when the last offset is
   committed, which the consumer does only after the batch's facts are committed.
   The raw clock starts with the fetching (no group to join); the end-to-end one when the
   first batch is in hand (the group join left out).
   (b') scale-out, reported apart from (b): ``--processes`` (default 2) ingest processes
   in one consumer group, from the same topic into another fresh database; the clock runs
   from the first batch in hand in any of them to the commit that completed the workload.
3. (c) HTTP: ``firstvalue api`` in a subprocess (uvicorn, producing to Kafka), fed by an
   httpx client over a few connections posting Segment ``/v1/batch`` bodies of 100 events.
   (d) the floor: what any consumer must do at the least to keep these events in
   PostgreSQL (getmany, orjson.loads, a few field reads, one insert per batch; no
   validation, identities, notices or offsets), with ON CONFLICT dedupe and with COPY. If
   the floor is under the target, no implementation of the design reaches it here.
4. References: firstvalue's decoding alone (no I/O, one core), and on the same PostgreSQL
   server ``executemany`` with ``ON CONFLICT DO NOTHING`` and ``COPY`` of the same rows into
   a table shaped like ``events``. The load average is printed too: the machine is shared.
Prints each rate and the ratio end-to-end / raw (target ≥ 0.30). Results: bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.context import BaseContext
from typing import Any, Self

import asyncpg  # type: ignore[import-untyped]
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from lab.machine import describe, load_average
from lab.postgres import asyncpg_dsn, fresh_database, server_version
from lab.servers import env, free_port
from lab.workload import demo_events

from services.ingest.consumer import BATCH_RECORDS, IngestOptions, decode, run_ingest
from shared.analytics.normalize import partition_key
from shared.bus import topics
from shared.bus.bus import Batch, LeavesOnExit
from shared.bus.kafka import KafkaBus, KafkaSubscription
from shared.plan_files import default_plans
from shared.storage.engine import create_engine, create_sessionmaker

PARTITIONS = 6  # as analytics.events in deploy/local/kafka.sh
PRODUCE_CHUNK = 10_000
HTTP_BATCH = 100
DEADLINE = 900.0  # seconds for any one stage
TARGET_RATIO = 0.30
FLOOR_SLICE = 500  # records the floor reads between handing the loop to its insert


@dataclass
class Rates:
    events: int
    produced: float = 0.0
    raw: float = 0.0
    end_to_end: float = 0.0
    stored: int = 0
    scale_out: float = 0.0  # several ingest processes in one group: reported on its own
    processes: int = 0
    http: float = 0.0
    http_events: int = 0
    executemany: float = 0.0
    copy: float = 0.0
    decode: float = 0.0
    floor: float = 0.0  # the least any consumer must do, with the design's dedupe
    floor_copy: float = 0.0  # the same storing by COPY (no dedupe)


async def create_topics(servers: str, prefix: str) -> None:
    """The bench's namespace: the topics ingest reads and writes, made before they are used."""
    admin = AIOKafkaAdminClient(bootstrap_servers=servers, client_id="bench-admin")
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(prefix + t, PARTITIONS, 1) for t in (topics.EVENTS, topics.FACTS)]
            + [NewTopic(prefix + topics.EVENTS_DLQ, 1, 1)]
        )
    finally:
        await admin.close()


async def produce(bus: KafkaBus, records: Sequence[tuple[str | None, bytes]]) -> float:
    """Events/s through ``KafkaBus.publish_many`` (acks=all, idempotent producer)."""
    started = time.perf_counter()
    for start in range(0, len(records), PRODUCE_CHUNK):
        await bus.publish_many(topics.EVENTS, records[start : start + PRODUCE_CHUNK])
    return len(records) / (time.perf_counter() - started)


@contextlib.asynccontextmanager
async def bare_consumer(servers: str, topic: str) -> AsyncIterator[AIOKafkaConsumer]:
    """An aiokafka consumer of every partition of ``topic`` from the start, no group."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        yield consumer
    finally:
        await consumer.stop()


async def raw_consumption(servers: str, topic: str, expected: int) -> float:
    """Events/s of a bare aiokafka consumer: ``getmany`` until every record is in hand."""
    async with bare_consumer(servers, topic) as consumer:
        count = 0
        deadline = time.monotonic() + DEADLINE
        started = time.perf_counter()  # no group to join: the clock starts with the fetching
        while count < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"raw consumer read {count} of {expected} records")
            fetched = await consumer.getmany(timeout_ms=1000, max_records=BATCH_RECORDS)
            count += sum(len(records) for records in fetched.values())
        return count / (time.perf_counter() - started)


class Observed:
    """The real ``KafkaBus`` with a stopwatch: the first batch yielded, then every commit
    (which the ingest consumer makes only after the batch's database transaction)."""

    def __init__(self, bus: KafkaBus, expected: int, tally: Tally | None = None) -> None:
        self.bus = bus
        self.expected = expected
        self.committed = 0
        self.first = self.last = 0.0
        self.done = asyncio.Event()
        self.tally = tally  # the scale-out run: commits counted across the processes

    async def start(self) -> None:
        await self.bus.start()

    async def stop(self) -> None:
        await self.bus.stop()

    async def publish(self, topic: str, key: str | None, value: bytes) -> None:
        await self.bus.publish(topic, key, value)

    async def publish_many(self, topic: str, items: Iterable[tuple[str | None, bytes]]) -> None:
        await self.bus.publish_many(topic, items)

    async def lag(self, topic: str, group: str) -> int:
        return await self.bus.lag(topic, group)

    def subscribe(self, topic: str, group: str, *, max_records: int = 500) -> ObservedSubscription:
        return ObservedSubscription(self, self.bus.subscribe(topic, group, max_records=max_records))


class ObservedSubscription(LeavesOnExit):
    def __init__(self, owner: Observed, inner: KafkaSubscription) -> None:
        self._owner = owner
        self._inner = inner

    async def __aenter__(self) -> Self:
        await self._inner.__aenter__()
        return self

    async def close(self) -> None:
        await self._inner.close()

    async def __aiter__(self) -> AsyncIterator[ObservedBatch]:
        async for batch in self._inner:
            if not self._owner.first:
                self._owner.first = time.perf_counter()
                if self._owner.tally is not None:
                    self._owner.tally.started()
            yield ObservedBatch(self._owner, batch)


class ObservedBatch:
    def __init__(self, owner: Observed, inner: Batch) -> None:
        self._owner = owner
        self._inner = inner
        self.messages = inner.messages

    async def commit(self) -> None:
        await self._inner.commit()
        owner = self._owner
        if owner.tally is not None:  # the scale-out run: its clock is the tally's
            owner.tally.add(len(self.messages))
            return
        owner.committed += len(self.messages)
        if owner.committed >= owner.expected and not owner.done.is_set():
            owner.last = time.perf_counter()
            owner.done.set()


async def end_to_end(servers: str, prefix: str, database_url: str, expected: int) -> float:
    """Events/s of firstvalue's ingest consumer, Kafka → facts committed in PostgreSQL."""
    plans = default_plans()
    engine = create_engine(database_url, application_name="firstvalue-bench")
    bus = Observed(KafkaBus(servers, client_id="bench-ingest", topic_prefix=prefix), expected)
    await bus.start()
    options = IngestOptions(plan_keys=frozenset(plans))
    group = f"bench-ingest-{uuid.uuid4().hex[:8]}"
    consumer = asyncio.create_task(
        run_ingest(bus, create_sessionmaker(engine), options, group=group)
    )
    try:
        done = asyncio.create_task(bus.done.wait())
        await asyncio.wait({done, consumer}, timeout=DEADLINE, return_when=asyncio.FIRST_COMPLETED)
        if consumer.done():
            consumer.result()  # a failure: raise it
        if not bus.done.is_set():
            raise TimeoutError(f"ingest committed {bus.committed} of {expected} records")
        return bus.committed / (bus.last - bus.first)
    finally:
        await bus.stop()
        await asyncio.gather(consumer, return_exceptions=True)
        await engine.dispose()


class Tally:
    """Records committed by every process of the scale-out run, and the wall-clock times
    (comparable across processes on one machine) of the first batch in hand and of the
    commit that completed the workload."""

    def __init__(self, context: BaseContext) -> None:
        self.committed = context.Value("q", 0)
        self.first = context.Value("d", 0.0)
        self.last = context.Value("d", 0.0)

    def started(self) -> None:
        with self.first.get_lock():
            now = time.time()
            if not self.first.value or now < self.first.value:
                self.first.value = now

    def add(self, records: int) -> int:
        with self.committed.get_lock():
            self.committed.value += records
            self.last.value = time.time()
            return int(self.committed.value)


def scale_out_worker(
    servers: str, prefix: str, database_url: str, group: str, expected: int, tally: Tally
) -> None:
    """One ``firstvalue ingest``-like process of the scale-out run (a spawned process)."""
    gc.freeze()
    asyncio.run(_consume_share(servers, prefix, database_url, group, expected, tally))


async def _consume_share(
    servers: str, prefix: str, database_url: str, group: str, expected: int, tally: Tally
) -> None:
    engine = create_engine(database_url, application_name="firstvalue-bench")
    bus = Observed(
        KafkaBus(servers, client_id="bench-ingest", topic_prefix=prefix), expected, tally
    )
    await bus.start()
    options = IngestOptions(plan_keys=frozenset(default_plans()))
    consumer = asyncio.create_task(
        run_ingest(bus, create_sessionmaker(engine), options, group=group)
    )
    try:
        deadline = time.monotonic() + DEADLINE
        # Only to know when to stop (the other process may commit the last batch); the
        # figure comes from the tally's commit times, not from this poll.
        while tally.committed.value < expected and not consumer.done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"scale-out ingest committed {tally.committed.value}")
            await asyncio.sleep(0.05)
        if consumer.done():
            consumer.result()
    finally:
        await bus.stop()
        await asyncio.gather(consumer, return_exceptions=True)
        await engine.dispose()


async def scale_out(
    servers: str, prefix: str, database_url: str, expected: int, processes: int
) -> float:
    """Events/s of ``processes`` ingest processes in one consumer group (the design's
    scale-out), Kafka → facts committed in PostgreSQL: from the first batch in hand in any
    of them to the commit that completed the workload (the group's join rebalance
    included)."""
    context = multiprocessing.get_context("spawn")
    tally = Tally(context)
    group = f"bench-scale-out-{uuid.uuid4().hex[:8]}"
    workers = [
        context.Process(
            target=scale_out_worker,
            args=(servers, prefix, database_url, group, expected, tally),
        )
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        await asyncio.to_thread(worker.join, DEADLINE)
    if any(worker.exitcode != 0 for worker in workers):
        raise RuntimeError(f"scale-out worker exit codes {[w.exitcode for w in workers]}")
    if tally.committed.value < expected:
        raise AssertionError(f"scale-out committed {tally.committed.value} of {expected}")
    return float(tally.committed.value / (tally.last.value - tally.first.value))


class EndOffsets:
    """Records on a topic so far (a consumer kept open: one started and stopped at once trips
    over aiokafka's own start-up tasks)."""

    def __init__(self, servers: str, topic: str) -> None:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=servers, group_id=None)
        self._partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]

    async def __aenter__(self) -> Self:
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def total(self) -> int:
        return sum((await self._consumer.end_offsets(self._partitions)).values())


async def _wait_ready(client: httpx.AsyncClient, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"firstvalue api exited with {process.returncode}")
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)  # readiness poll, bounded by the deadline
    raise TimeoutError("firstvalue api did not become ready")


async def http_ingest(
    servers: str, database_url: str, events: Sequence[dict[str, Any]], connections: int
) -> float:
    """Events/s accepted (200) by ``POST /v1/batch`` of a real ``firstvalue api`` process."""
    port = free_port()
    settings = {
        "FIRSTVALUE_DATABASE_URL": database_url,
        "FIRSTVALUE_KAFKA_BOOTSTRAP_SERVERS": servers,
        "FIRSTVALUE_API_PORT": str(port),
        "FIRSTVALUE_INGEST_AUTH": "open",  # the bench's batches carry no write key
    }
    sent_at = datetime.now(UTC).isoformat()
    bodies = [
        orjson.dumps({"batch": list(events[i : i + HTTP_BATCH]), "sentAt": sent_at})
        for i in range(0, len(events), HTTP_BATCH)
    ]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "firstvalue", "api"],
            env={**os.environ, **settings},
            stdout=log,
            stderr=log,
        )
        try:
            limits = httpx.Limits(max_connections=connections)
            async with (
                EndOffsets(servers, topics.EVENTS) as offsets,
                httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60
                ) as client,
            ):
                await _wait_ready(client, process)
                await _post(client, orjson.dumps({"batch": [events[0]]}))  # warm-up
                before = await offsets.total()
                queue = iter(bodies)

                async def worker() -> None:
                    for body in queue:
                        await _post(client, body)

                started = time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(connections)))
                elapsed = time.perf_counter() - started
                produced = await offsets.total() - before
            if produced != len(events):
                raise AssertionError(f"{len(events)} events accepted, {produced} on the topic")
            return len(events) / elapsed
        finally:
            process.terminate()
            process.wait(timeout=30)


async def _post(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post(
        "/v1/batch", content=body, headers={"Content-Type": "application/json"}
    )
    if response.status_code != 200:
        raise AssertionError(f"/v1/batch answered {response.status_code}: {response.text}")


# The floor's one statement per batch: the events insert's own form (one JSON array of rows,
# ON CONFLICT on the id), so the floor pays what the design's dedupe costs the database.
_FLOOR_INSERT = """
    INSERT INTO events (id, account_id, user_id, name, occurred_at, properties, source,
                        recorded_at)
    SELECT row->>0, row->>1, row->>2, row->>3, CAST(row->>4 AS timestamptz), row->5,
           'segment', now()
    FROM jsonb_array_elements(CAST($1::text AS jsonb)) AS batch(row)
    ON CONFLICT (id) DO NOTHING
"""
_FLOOR_COLUMNS = [
    "id",
    "account_id",
    "user_id",
    "name",
    "occurred_at",
    "properties",
    "source",
    "recorded_at",
]


async def floor_consumption(
    servers: str, topic: str, database_url: str, expected: int, *, dedupe: bool
) -> float:
    """Events/s of the least any consumer must do to keep these events in PostgreSQL: the
    raw consumer's ``getmany``, ``orjson.loads`` and a handful of field reads per record
    (no validation, identities, notices or offset commits), then one statement per batch
    into a fresh ``events`` table, overlapping the next fetch. ``dedupe``: the ON CONFLICT
    insert the design's at-least-once needs; else ``COPY``, which cannot skip a repeat.
    If this floor is under the target ratio, no implementation of the design reaches it
    on this machine."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        async with bare_consumer(servers, topic) as consumer:
            return await _floor(consumer, conn, expected, dedupe=dedupe)
    finally:
        await conn.close()


async def _floor(consumer: AIOKafkaConsumer, conn: Any, expected: int, *, dedupe: bool) -> float:
    """The floor's loop: fetch, read a few fields, store the previous batch meanwhile (the
    reading yields every ``FLOOR_SLICE`` records, or the insert would wait for it: measured
    0.17 of raw without, 0.19 with)."""
    count = 0
    deadline = time.monotonic() + DEADLINE
    in_flight: asyncio.Future[Any] | None = None
    started = time.perf_counter()
    while count < expected:
        if time.monotonic() > deadline:
            raise TimeoutError(f"floor consumer read {count} of {expected} records")
        fetched = await consumer.getmany(timeout_ms=1000, max_records=BATCH_RECORDS)
        rows = []
        now = datetime.now(UTC)
        for records in fetched.values():
            count += len(records)
            for n, record in enumerate(records, 1):
                if n % FLOOR_SLICE == 0:
                    await asyncio.sleep(0)  # let the insert in flight go on meanwhile
                m = orjson.loads(record.value)
                if m.get("type") != "track":
                    continue
                account = (m.get("context") or {}).get("groupId") or m["userId"]
                rows.append(
                    (
                        m["messageId"],
                        account,
                        m["userId"],
                        m["event"],
                        m["timestamp"],
                        m.get("properties") or {},
                    )
                )
        if in_flight is not None:
            await in_flight
        if dedupe:
            payload = orjson.dumps(rows).decode()
            in_flight = asyncio.ensure_future(conn.execute(_FLOOR_INSERT, payload))
        else:
            copied = [
                (i, a, u, n, datetime.fromisoformat(t), orjson.dumps(p).decode(), "segment", now)
                for i, a, u, n, t, p in rows
            ]
            in_flight = asyncio.ensure_future(
                conn.copy_records_to_table("events", records=copied, columns=_FLOOR_COLUMNS)
            )
    if in_flight is not None:
        await in_flight
    return count / (time.perf_counter() - started)


async def postgres_reference(
    database_url: str, events: Sequence[dict[str, Any]]
) -> tuple[float, float]:
    """Rows/s of asyncpg ``executemany`` (ON CONFLICT DO NOTHING) and ``COPY`` of the same
    rows into a table shaped like ``events``: what PostgreSQL alone does on this machine."""
    now = datetime.now(UTC)
    rows = [
        (
            m["messageId"],
            (m.get("context") or {}).get("groupId") or m.get("groupId") or "-",
            m["userId"],
            m.get("event") or m["type"],
            datetime.fromisoformat(m["timestamp"]),
            orjson.dumps(m.get("properties") or m.get("traits") or {}).decode(),
            "segment",
            now,
        )
        for m in events
    ]
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute(
            "CREATE TABLE bench_events (id text PRIMARY KEY, account_id text, user_id text, "
            "name text, occurred_at timestamptz, properties jsonb, source text, "
            "recorded_at timestamptz)"
        )
        started = time.perf_counter()
        async with conn.transaction():
            await conn.executemany(
                "INSERT INTO bench_events VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                "ON CONFLICT (id) DO NOTHING",
                rows,
            )
        executemany = len(rows) / (time.perf_counter() - started)
        await conn.execute("TRUNCATE bench_events")
        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table("bench_events", records=rows)
        copy = len(rows) / (time.perf_counter() - started)
        await conn.execute("DROP TABLE bench_events")
        return executemany, copy
    finally:
        await conn.close()


async def stored_events(database_url: str) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM events"))
    finally:
        await conn.close()


def decode_only(records: Sequence[tuple[str | None, bytes]]) -> float:
    """Events/s of firstvalue's decoding alone (JSON → normalised event, no I/O): the
    CPU floor of the end-to-end path, whatever the database does."""
    options = IngestOptions(plan_keys=frozenset(default_plans()))
    now = datetime.now(UTC)
    started = time.perf_counter()
    for _, value in records:
        decode(value, now, options)
    return len(records) / (time.perf_counter() - started)


async def main(args: argparse.Namespace) -> Rates:
    servers = env("FIRSTVALUE_TEST_KAFKA_BOOTSTRAP_SERVERS")
    postgres = env("FIRSTVALUE_TEST_DATABASE_URL")
    print(f"machine: {describe(await server_version(postgres))}", flush=True)
    print(f"load average at start: {load_average()} (other work on the machine skews every figure)")
    events = demo_events(args.events, datetime.now(UTC))
    records = [(partition_key(m), orjson.dumps(m)) for m in events]
    size = sum(len(v) for _, v in records) / len(records)
    print(
        f"workload: {len(events):,} demo events ({size:.0f} bytes on average, "
        f"{sum(m['type'] == 'track' for m in events):,} track calls), "
        f"{PARTITIONS} partitions",
        flush=True,
    )
    # As `firstvalue ingest` does after start-up: long-lived objects (here the workload)
    # leave the garbage collector's passes, which would otherwise rescan them per batch.
    gc.freeze()
    rates = Rates(events=len(events))
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    await create_topics(servers, prefix)
    bus = KafkaBus(servers, client_id="bench-producer", topic_prefix=prefix)
    await bus.start()
    try:
        rates.produced = await produce(bus, records)
    finally:
        await bus.stop()
    print(f"  produced          {rates.produced:>10,.0f} events/s", flush=True)
    rates.raw = await raw_consumption(servers, prefix + topics.EVENTS, len(events))
    print(f"  (a) raw aiokafka  {rates.raw:>10,.0f} events/s", flush=True)
    rates.decode = decode_only(records)
    print(f"  decode alone      {rates.decode:>10,.0f} events/s", flush=True)
    async with fresh_database(postgres) as url:
        rates.end_to_end = await end_to_end(servers, prefix, url, len(events))
        rates.stored = await stored_events(url)
        print(
            f"  (b) end to end    {rates.end_to_end:>10,.0f} events/s "
            f"({rates.stored:,} events stored)",
            flush=True,
        )
    for dedupe in (True, False):
        async with fresh_database(postgres) as bare:
            rate = await floor_consumption(
                servers, prefix + topics.EVENTS, bare, len(events), dedupe=dedupe
            )
        if dedupe:
            rates.floor = rate
        else:
            rates.floor_copy = rate
        print(
            f"  (d) floor, {'ON CONFLICT' if dedupe else 'COPY':<11} {rate:>10,.0f} events/s",
            flush=True,
        )
    async with fresh_database(postgres) as url:
        if args.processes > 1:
            async with fresh_database(postgres) as scaled:
                rates.processes = args.processes
                rates.scale_out = await scale_out(
                    servers, prefix, scaled, len(events), args.processes
                )
                print(
                    f"  (b') {args.processes} processes {rates.scale_out:>10,.0f} events/s "
                    f"({await stored_events(scaled):,} events stored)",
                    flush=True,
                )
        http_events = events[: args.http_events]
        rates.http_events = len(http_events)
        rates.http = await http_ingest(servers, url, http_events, args.connections)
        print(f"  (c) HTTP          {rates.http:>10,.0f} events/s", flush=True)
        rates.executemany, rates.copy = await postgres_reference(url, events)
    return rates


def report(rates: Rates, args: argparse.Namespace) -> None:
    ratio = rates.end_to_end / rates.raw
    verdict = "meets" if ratio >= TARGET_RATIO else "is BELOW"
    rows = [
        ("produce (KafkaBus.publish_many, acks=all)", rates.produced, "events/s"),
        ("(a) raw aiokafka getmany, no processing", rates.raw, "events/s"),
        ("(b) end to end: Kafka -> facts in PostgreSQL", rates.end_to_end, "events/s"),
        *(
            [
                (
                    f"(b') end to end, {rates.processes} ingest processes, one group",
                    rates.scale_out,
                    "events/s",
                )
            ]
            if rates.processes
            else []
        ),
        ("(d) floor: getmany, loads, ON CONFLICT insert", rates.floor, "events/s"),
        ("(d) floor with COPY instead (no dedupe)", rates.floor_copy, "events/s"),
        (
            f"(c) HTTP /v1/batch of {HTTP_BATCH}, {args.connections} connections",
            rates.http,
            f"events/s ({rates.http_events:,} events)",
        ),
        ("firstvalue decode alone (no I/O), one core", rates.decode, "events/s"),
        ("PostgreSQL executemany ON CONFLICT", rates.executemany, "rows/s"),
        ("PostgreSQL COPY", rates.copy, "rows/s"),
    ]
    print(
        f"\nfirstvalue ingest bench: {rates.events:,} events (load average now: {load_average()})"
    )
    for label, value, unit in rows:
        print(f"  {label:<46} {value:>10,.0f} {unit}")
    print(
        f"  ratio end to end / raw = {ratio:.2f}: {verdict} the target {TARGET_RATIO:.2f} "
        f"(end to end / COPY = {rates.end_to_end / rates.copy:.2f})"
    )
    print(
        f"  floor / raw = {rates.floor / rates.raw:.2f} with the dedupe the design needs, "
        f"{rates.floor_copy / rates.raw:.2f} by COPY; end to end / floor = "
        f"{rates.end_to_end / rates.floor:.2f}"
    )
    if rates.processes:
        print(
            f"  scale-out, reported apart: {rates.processes} processes / raw = "
            f"{rates.scale_out / rates.raw:.2f}"
        )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events",
        type=int,
        default=200_000,
        help="events to produce (default 200,000: about a minute)",
    )
    parser.add_argument(
        "--http-events",
        type=int,
        default=50_000,
        help="events to post to the HTTP ingest (default 50,000)",
    )
    parser.add_argument("--connections", type=int, default=4, help="HTTP client connections")
    parser.add_argument(
        "--processes",
        type=int,
        default=2,
        help="ingest processes in one group for the scale-out figure "
        "(reported apart from the single-process one; 1 skips it)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse()
    report(asyncio.run(main(arguments)), arguments)
