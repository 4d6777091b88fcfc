"""The ingest shell: ``analytics.events`` batches in, facts stored, ``onboarding.facts`` out.

Per batch: decode every record (bad ones become dead letters) → one transaction that stores
the good ones → commit → publish dead letters and fact notices → commit the offsets. A crash
anywhere replays the batch; event ids make the replay a no-op apart from its notices.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.dlq import DeadLetter, publish_dead_letters
from services.ingest.store import Stored, store_events
from shared.analytics.event import fits_every_limit
from shared.analytics.normalize import (
    InvalidMessage,
    NormalizedEvent,
    normalize_record,
    split_segment_batch,
)
from shared.analytics.registration import contract_terms, is_contract_signed
from shared.bus import topics
from shared.bus.bus import Batch, Bus, Message, Subscription
from shared.bus.messages import FactsNotice
from shared.bus.retry import consume_with_retries
from shared.config import Settings
from shared.domain.plans import Plan
from shared.observability.metrics import record_decoded, record_stored

T = TypeVar("T")
R = TypeVar("R")
STORAGE_ERRORS = (IntegrityError, DataError)  # the database refused the data, not the link
log = logging.getLogger(__name__)
BATCH_RECORDS = 5000  # records per batch: larger batches amortise each transaction's trips
GC_YOUNG_THRESHOLD = 50_000  # allocations between young-generation collections, consuming
PIPELINE_DEPTH = 2  # batches stored or being announced while the next one is decoded


@dataclass(frozen=True)
class IngestOptions:
    plan_keys: frozenset[str]
    account_property: str = "account_id"
    max_clock_skew_days: float = 7.0
    mixpanel_group_key: str = "company_id"

    @classmethod
    def from_settings(cls, settings: Settings, plans: Mapping[str, Plan]) -> IngestOptions:
        return cls(
            plan_keys=frozenset(plans),
            account_property=settings.account_property,
            max_clock_skew_days=settings.max_clock_skew_days,
            mixpanel_group_key=settings.mixpanel_group_key,
        )


@dataclass(frozen=True)
class Rejected:
    """A message (or batch item) that was not ingested, and why."""

    index: int
    reason: str
    error: str
    original: bytes | None = None  # a batch item's own bytes; None = the whole message


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    pending: int = 0
    registered: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    facts: dict[str, list[str]] = field(default_factory=dict)

    def notices(self) -> list[FactsNotice]:
        """One ``onboarding.facts`` notice per account the messages touched."""
        return [FactsNotice(account, tuple(ids)) for account, ids in self.facts.items()]

    def add(self, stored: Stored | IngestResult) -> None:
        """Count what a stored batch (or another result) changed, and its fact ids."""
        self.accepted += stored.accepted
        self.duplicates += stored.duplicates
        self.pending += stored.pending
        self.registered += stored.registered
        for account, ids in stored.facts.items():
            self.facts.setdefault(account, []).extend(ids)


def decode(
    raw: Mapping[str, Any] | bytes, received_at: datetime, options: IngestOptions
) -> list[NormalizedEvent | Rejected]:
    """One record (a Segment message, or a ``{"batch": [...]}`` envelope) → its events."""
    if isinstance(raw, bytes | bytearray):
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            return [Rejected(0, "invalid_json", str(error))]
        within_limits = fits_every_limit(raw)
    else:
        data, within_limits = raw, False
    if isinstance(data, dict) and "batch" in data:
        try:
            items = split_segment_batch(data, received_at)
        except InvalidMessage as error:
            return [Rejected(0, error.reason, str(error))]
        return [_decode_one(item, received_at, options, item_bytes=True) for item in items]
    return [_decode_one(data, received_at, options, item_bytes=False, within_limits=within_limits)]


def _decode_one(
    message: Any,
    received_at: datetime,
    options: IngestOptions,
    *,
    item_bytes: bool,
    within_limits: bool = False,
) -> NormalizedEvent | Rejected:
    try:
        event = normalize_record(
            message,
            received_at=received_at,
            max_clock_skew_days=options.max_clock_skew_days,
            mixpanel_group_key=options.mixpanel_group_key,
            within_limits=within_limits,
        )
        if is_contract_signed(event):
            contract_terms(event.properties, options.plan_keys)
        return event
    except InvalidMessage as error:
        original = orjson.dumps(message) if item_bytes else None
        return Rejected(0, error.reason, str(error), original)


async def _store(
    session: AsyncSession, events: Sequence[NormalizedEvent], options: IngestOptions, now: datetime
) -> Stored:
    return await store_events(
        session,
        events,
        plan_keys=options.plan_keys,
        account_property=options.account_property,
        recorded_at=now,
    )


async def ingest_messages(
    session: AsyncSession,
    messages: Sequence[Mapping[str, Any] | bytes],
    options: IngestOptions,
    *,
    received_at: datetime,
) -> IngestResult:
    """Normalise and store raw Segment messages in the caller's transaction (backfill, demo
    data); rejected ones are reported by index, not stored."""
    result = IngestResult()
    events: list[NormalizedEvent] = []
    for index, message in enumerate(messages):
        for outcome in decode(message, received_at, options):
            if isinstance(outcome, Rejected):
                result.rejected.append(
                    Rejected(index, outcome.reason, outcome.error, outcome.original)
                )
            else:
                events.append(outcome)
    result.add(await _store(session, events, options, received_at))
    return result


@dataclass
class DecodedBatch:
    """A bus batch after the CPU-only step: each record's good events, and dead letters."""

    batch: Batch
    good: list[tuple[Message, list[NormalizedEvent]]]
    dead: list[DeadLetter]


def decode_batch(batch: Batch, options: IngestOptions) -> DecodedBatch:
    """Normalise every record of a batch (no I/O, so it can overlap the previous batch's)."""
    decoded = DecodedBatch(batch, [], [])
    for message in batch.messages:
        events = []
        for outcome in decode(message.value, message.timestamp, options):
            if isinstance(outcome, Rejected):
                decoded.dead.append((message, outcome.reason, outcome.error, outcome.original))
            else:
                events.append(outcome)
        decoded.good.append((message, events))
    sources = [event.source for _, events in decoded.good for event in events]
    record_decoded(sources, [original or m.value for m, _, _, original in decoded.dead])
    return decoded


async def store_batch(
    decoded: DecodedBatch,
    sessionmaker: async_sessionmaker[AsyncSession],
    options: IngestOptions,
    *,
    now: datetime,
) -> IngestResult:
    """Store a decoded batch in one transaction and commit it. A record the database
    refuses is isolated and joins the batch's dead letters."""
    result = IngestResult(
        rejected=[Rejected(m.offset, why, error, item) for m, why, error, item in decoded.dead]
    )
    events = [e for _, es in decoded.good for e in es]
    try:
        async with sessionmaker() as session, session.begin():
            result.add(await _store(session, events, options, now))
    except STORAGE_ERRORS:
        log.exception("batch failed to store; retrying its records one by one")
        await _store_one_by_one(decoded.good, sessionmaker, options, now, result, decoded.dead)
    return result


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
    notices = result.notices()
    await asyncio.gather(
        publish_dead_letters(bus, decoded.dead),
        bus.publish_many(topics.FACTS, [(n.account_id, n.encode()) for n in notices]),
    )
    if reported is not None:
        reported(result)
    await decoded.batch.commit()


async def apply_batch(
    decoded: DecodedBatch,
    bus: Bus,
    sessionmaker: async_sessionmaker[AsyncSession],
    options: IngestOptions,
    *,
    now: datetime,
) -> IngestResult:
    """Store, then announce: transaction → commit → DLQ + notices → offsets. A crash
    anywhere replays the batch."""
    result = await store_batch(decoded, sessionmaker, options, now=now)
    await announce_batch(decoded, result, bus)
    return result


async def handle_batch(
    batch: Batch,
    bus: Bus,
    sessionmaker: async_sessionmaker[AsyncSession],
    options: IngestOptions,
    *,
    now: datetime | None = None,
) -> IngestResult:
    """Process one ``analytics.events`` batch end to end, offsets last."""
    decoded = decode_batch(batch, options)
    return await apply_batch(decoded, bus, sessionmaker, options, now=now or datetime.now(UTC))


async def one_by_one(
    units: Sequence[T], store: Callable[[T], Awaitable[R]]
) -> tuple[list[tuple[int, R]], list[tuple[int, Exception]]]:
    """After a batch's transaction was refused, each unit in a transaction of its own, so the
    one the database refuses (a poison record) is isolated instead of stalling the batch.
    Returns the stored units' results and the refused units' errors, by index; raises the
    first error when every unit is refused (a broken database, not a poison record)."""
    stored: list[tuple[int, R]] = []
    refused: list[tuple[int, Exception]] = []
    for index, unit in enumerate(units):
        try:
            stored.append((index, await store(unit)))
        except STORAGE_ERRORS as error:
            refused.append((index, error))
    if refused and len(refused) == len(units):
        raise refused[0][1]
    return stored, refused


async def _store_one_by_one(
    good: Sequence[tuple[Message, Sequence[NormalizedEvent]]],
    sessionmaker: async_sessionmaker[AsyncSession],
    options: IngestOptions,
    now: datetime,
    result: IngestResult,
    dead: list[DeadLetter],
) -> None:
    async def store_alone(record: tuple[Message, Sequence[NormalizedEvent]]) -> Stored:
        async with sessionmaker() as session, session.begin():
            return await _store(session, record[1], options, now)

    stored, refused = await one_by_one(good, store_alone)
    for _, one in stored:
        result.add(one)
    for index, failure in refused:
        message = good[index][0]
        dead.append((message, "storage_error", str(failure), None))
        result.rejected.append(Rejected(message.offset, "storage_error", str(failure)))


async def run_ingest(
    bus: Bus,
    sessionmaker: async_sessionmaker[AsyncSession],
    options: IngestOptions,
    *,
    group: str = "ingest",
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    on_batch: Callable[[IngestResult], None] | None = None,
    max_records: int = BATCH_RECORDS,
) -> None:
    """Consume ``analytics.events`` until cancelled or the bus stops.

    Two batches are in hand at a time: while one is in the database, the next one is
    decoded. Batches are stored and committed strictly in order. A failing batch is not
    committed: the consumer leaves the group (so the batch is redelivered), backs off and
    rejoins; after repeated failures it raises.
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

        await _pipeline(subscription, bus, sessionmaker, options, clock, reported, succeeded)

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
