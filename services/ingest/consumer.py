"""The ingest shell: ``analytics.events`` batches in, facts stored, ``onboarding.facts`` out.

Per batch: decode every record → one transaction that stores the good ones → commit →
publish dead letters and fact notices → commit the offsets. What becomes a dead letter is
decided once, in ``services.ingest.records``; only an infrastructure failure fails a batch,
which is then redelivered. A crash anywhere replays the batch; event ids make the replay a
no-op apart from its notices.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.dlq import publish_dead_letters
from services.ingest.outcome import DeadLetter, IngestResult
from services.ingest.records import (
    Decoded,
    IngestOptions,
    decode,
    decode_records,
    ingest_messages,
    store_decoded,
)
from shared.bus import topics
from shared.bus.bus import Batch, Bus, Subscription
from shared.bus.retry import consume_with_retries
from shared.domain.watermark import PartitionWatermarks
from shared.observability.metrics import record_decoded, record_stored, record_watermark_lag

__all__ = [
    "BATCH_RECORDS",
    "DeadLetter",
    "IngestOptions",
    "IngestResult",
    "decode",
    "ingest_messages",
    "run_ingest",
]

BATCH_RECORDS = 5000  # records per batch: larger batches amortise each transaction's trips
GC_YOUNG_THRESHOLD = 50_000  # allocations between young-generation collections, consuming
PIPELINE_DEPTH = 2  # batches stored or being announced while the next one is decoded


@dataclass
class DecodedBatch:
    """A bus batch after the CPU-only step."""

    batch: Batch
    decoded: Decoded
    watermark: datetime | None = None  # of the partitions read, once this batch is read


def watermark_after(decoded: DecodedBatch, marks: PartitionWatermarks, now: datetime) -> None:
    """Advance the partitions' event-time progress by a decoded batch's events and note the
    watermark its notices carry (docs/watermark.md). Done as the batch is decoded, so a
    batch's watermark never counts a later batch's events."""
    messages, events = decoded.batch.messages, decoded.decoded.events
    times: dict[int, list[datetime]] = {}
    for event, (index, _) in zip(events, decoded.decoded.origins, strict=True):
        times.setdefault(messages[index].partition, []).append(event.at)
    for partition, moments in times.items():
        marks.observe(partition, moments)
    decoded.watermark = marks.watermark({m.partition for m in messages}, now)
    if decoded.watermark is not None:
        record_watermark_lag((now - decoded.watermark).total_seconds())


def decode_batch(batch: Batch, options: IngestOptions) -> DecodedBatch:
    """Normalise every record of a batch (no I/O, so it can overlap the previous batch's)."""
    messages = batch.messages
    decoded = decode_records([(m.value, m.timestamp) for m in messages], options)
    record_decoded(
        [event.source for event in decoded.events],
        [d.original or messages[d.index].value for d in decoded.dead],
    )
    return DecodedBatch(batch, decoded)


async def store_batch(
    decoded: DecodedBatch,
    sessionmaker: async_sessionmaker[AsyncSession],
    options: IngestOptions,
    *,
    now: datetime,
) -> IngestResult:
    """Store a decoded batch in one transaction and commit it."""
    async with sessionmaker() as session, session.begin():
        return await store_decoded(session, decoded.decoded, options, now=now)


async def announce_batch(
    decoded: DecodedBatch,
    result: IngestResult,
    bus: Bus,
    reported: Callable[[IngestResult], None] | None = None,
) -> None:
    """After the transaction: dead letters and fact notices acknowledged by the bus, the
    batch ``reported`` (metrics, callers), then its offsets committed — so whoever sees the
    offsets committed sees the report too (a redelivery after a failed offset commit is
    reported again, its events as duplicates, which they then are)."""
    notices = [replace(n, watermark=decoded.watermark) for n in result.notices()]
    await asyncio.gather(
        publish_dead_letters(bus, decoded.batch.messages, result.rejected),
        bus.publish_many(topics.FACTS, [(n.account_id, n.encode()) for n in notices]),
    )
    if reported is not None:
        reported(result)
    await decoded.batch.commit()


async def run_ingest(
    bus: Bus,
    sessionmaker: async_sessionmaker[AsyncSession],
    options: IngestOptions,
    *,
    group: str = "ingest",
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    on_batch: Callable[[IngestResult], None] | None = None,
    max_records: int = BATCH_RECORDS,
    lateness: timedelta | None = None,
) -> None:
    """Consume ``analytics.events`` until cancelled or the bus stops. With ``lateness``
    (``FIRSTVALUE_ALLOWED_LATENESS_SECONDS``) each facts notice carries the watermark of the
    partitions read; without, none (complete up to the clock, as for HTTP ingest).

    Two batches are in hand at a time: while one is in the database, the next one is
    decoded. Batches are stored and committed strictly in order. A record that cannot be
    ingested is a dead letter, never a failure; a batch fails only when the database or
    the broker does, and is then not committed: the consumer leaves the group (so the batch
    is redelivered), backs off and rejoins; after repeated failures it raises.
    """
    thresholds = gc.get_threshold()
    # A batch allocates tens of thousands of containers (decoded JSON) that live until it is
    # committed: with the default young-generation threshold (700) the collector ran dozens
    # of passes per batch, promoting them all, then rescanned them in full passes (measured:
    # ~17 % of the consumer's CPU). It is not cyclic garbage; collect less often meanwhile.
    gc.set_threshold(max(thresholds[0], GC_YOUNG_THRESHOLD), *thresholds[1:])

    async def consume(subscription: Subscription, succeeded: Callable[[], None]) -> None:
        def reported(result: IngestResult) -> None:
            record_stored(result)  # metrics: outcomes and dead letters of a stored batch
            if on_batch is not None:
                on_batch(result)

        marks = None if lateness is None else PartitionWatermarks(lateness)
        await _pipeline(subscription, bus, sessionmaker, options, clock, reported, succeeded, marks)

    try:
        await consume_with_retries(
            bus, topics.EVENTS, group, consume, label="ingest", max_records=max_records
        )
    finally:
        gc.set_threshold(*thresholds)


async def _pipeline(
    subscription: Subscription,
    bus: Bus,
    sessionmaker: async_sessionmaker[AsyncSession],
    options: IngestOptions,
    clock: Callable[[], datetime],
    reported: Callable[[IngestResult], None],
    succeeded: Callable[[], None],
    marks: PartitionWatermarks | None = None,
) -> None:
    """Three stages over consecutive batches: decode one while the previous one is in its
    transaction and the one before is being announced and committed. Transactions run one
    after another, offsets are committed in order, and a failure surfaces at once, even
    when no further batch arrives."""
    batches = aiter(subscription)
    fetching: asyncio.Future[Batch | None] = asyncio.ensure_future(anext(batches, None))
    stored: asyncio.Task[IngestResult] | None = None  # the latest batch's transaction
    unacked: deque[asyncio.Task[IngestResult]] = deque()  # oldest first
    try:
        while True:
            waiting: set[asyncio.Future[Any]] = {fetching}
            if unacked:
                waiting.add(unacked[0])
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if unacked and unacked[0].done():
                unacked.popleft().result()  # raises the batch's failure
                continue
            batch = fetching.result()
            if batch is None:
                break
            decoded = decode_batch(batch, options)
            if marks is not None:
                watermark_after(decoded, marks, clock())
            while len(unacked) >= PIPELINE_DEPTH:
                await unacked.popleft()
            stored = asyncio.create_task(
                _store_after(stored, decoded, sessionmaker, options, clock())
            )
            previous = unacked[-1] if unacked else None
            announcing = _announce_after(previous, stored, decoded, bus, reported, succeeded)
            unacked.append(asyncio.create_task(announcing))
            fetching = asyncio.ensure_future(anext(batches, None))
        while unacked:
            await unacked.popleft()
    finally:
        for task in (fetching, stored, *unacked):  # cut short: rolled back, redelivered
            if task is not None:  # a finished one too: its error is collected, not left
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


async def _store_after(
    previous: asyncio.Task[IngestResult] | None,
    decoded: DecodedBatch,
    sessionmaker: async_sessionmaker[AsyncSession],
    options: IngestOptions,
    now: datetime,
) -> IngestResult:
    if previous is not None:
        await previous  # one transaction at a time, in order (raises if it failed)
    return await store_batch(decoded, sessionmaker, options, now=now)


async def _announce_after(
    previous: asyncio.Task[IngestResult] | None,
    stored: asyncio.Task[IngestResult],
    decoded: DecodedBatch,
    bus: Bus,
    reported: Callable[[IngestResult], None],
    succeeded: Callable[[], None],
) -> IngestResult:
    """Announce, report and commit a stored batch (``announce_batch``), then count it as a
    success for the retry policy."""
    result = await stored
    if previous is not None:
        await previous  # offsets are committed in order
    await announce_batch(decoded, result, bus, reported)
    succeeded()
    return result
