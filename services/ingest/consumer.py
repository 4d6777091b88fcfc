"""The ingest shell: ``analytics.events`` batches in, facts stored, ``onboarding.facts`` out.

Per batch: decode every record (bad ones become dead letters) → one transaction that stores
the good ones → commit → publish dead letters and fact notices → commit the offsets. A crash
anywhere replays the batch; event ids make the replay a no-op apart from its notices.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.dlq import DeadLetter, publish_dead_letters
from services.ingest.normalize import (
    InvalidMessage,
    NormalizedEvent,
    normalize_segment,
    split_segment_batch,
)
from services.ingest.registration import contract_terms, is_contract_signed
from services.ingest.store import Stored, store_events
from shared.bus import topics
from shared.bus.bus import Batch, Bus, Message
from shared.bus.messages import FactsNotice
from shared.config import Settings
from shared.domain.plans import Plan

log = logging.getLogger(__name__)
MAX_CONSECUTIVE_FAILURES = 5


@dataclass(frozen=True)
class IngestOptions:
    plan_keys: frozenset[str]
    account_property: str = "account_id"
    max_clock_skew_days: float = 7.0

    @classmethod
    def from_settings(cls, settings: Settings, plans: Mapping[str, Plan]) -> IngestOptions:
        return cls(
            plan_keys=frozenset(plans),
            account_property=settings.account_property,
            max_clock_skew_days=settings.max_clock_skew_days,
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

    def add(self, stored: Stored) -> None:
        self.accepted += stored.accepted
        self.duplicates += stored.duplicates
        self.pending += stored.pending
        self.registered += stored.registered
        for account, ids in stored.touched.items():
            self.facts.setdefault(account, []).extend(ids)


def decode(
    raw: Mapping[str, Any] | bytes, received_at: datetime, options: IngestOptions
) -> list[NormalizedEvent | Rejected]:
    """One record (a Segment message, or a ``{"batch": [...]}`` envelope) → its events."""
    try:
        data = orjson.loads(raw) if isinstance(raw, bytes | bytearray) else raw
    except orjson.JSONDecodeError as error:
        return [Rejected(0, "invalid_json", str(error))]
    if isinstance(data, dict) and "batch" in data:
        try:
            items = split_segment_batch(data, received_at)
        except InvalidMessage as error:
            return [Rejected(0, error.reason, str(error))]
        return [_decode_one(item, received_at, options, item_bytes=True) for item in items]
    return [_decode_one(data, received_at, options, item_bytes=False)]


def _decode_one(
    message: Any, received_at: datetime, options: IngestOptions, *, item_bytes: bool
) -> NormalizedEvent | Rejected:
    try:
        event = normalize_segment(
            message, received_at=received_at, max_clock_skew_days=options.max_clock_skew_days
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


async def handle_batch(
    batch: Batch,
    bus: Bus,
    sessionmaker: async_sessionmaker[AsyncSession],
    options: IngestOptions,
    *,
    now: datetime | None = None,
) -> IngestResult:
    """Process one ``analytics.events`` batch end to end, offsets last."""
    now = now or datetime.now(UTC)
    result = IngestResult()
    good: list[tuple[Message, list[NormalizedEvent]]] = []
    dead: list[DeadLetter] = []
    for message in batch.messages:
        events = []
        for outcome in decode(message.value, message.timestamp, options):
            if isinstance(outcome, Rejected):
                dead.append((message, outcome.reason, outcome.error, outcome.original))
                result.rejected.append(
                    Rejected(message.offset, outcome.reason, outcome.error, outcome.original)
                )
            else:
                events.append(outcome)
        good.append((message, events))
    try:
        async with sessionmaker() as session, session.begin():
            result.add(await _store(session, [e for _, es in good for e in es], options, now))
    except (IntegrityError, DataError):
        log.exception("batch failed to store; retrying its records one by one")
        await _store_one_by_one(good, sessionmaker, options, now, result, dead)
    await publish_dead_letters(bus, dead)
    notices = result.notices()
    if notices:
        await bus.publish_many(topics.FACTS, [(n.account_id, n.encode()) for n in notices])
    await batch.commit()
    return result


async def _store_one_by_one(
    good: Sequence[tuple[Message, Sequence[NormalizedEvent]]],
    sessionmaker: async_sessionmaker[AsyncSession],
    options: IngestOptions,
    now: datetime,
    result: IngestResult,
    dead: list[DeadLetter],
) -> None:
    """Isolate the record the database refuses (a poison message) instead of stalling."""
    failures: list[tuple[Message, Exception]] = []
    for message, events in good:
        try:
            async with sessionmaker() as session, session.begin():
                result.add(await _store(session, events, options, now))
        except (IntegrityError, DataError) as error:
            failures.append((message, error))
    if failures and len(failures) == len(good):
        raise failures[0][1]  # every record fails: not a poison message, a broken database
    for message, failure in failures:
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
) -> None:
    """Consume ``analytics.events`` until cancelled or the bus stops.

    A failing batch is not committed: the consumer leaves the group (so the batch is
    redelivered), backs off and rejoins; after repeated failures it raises.
    """
    failures = 0
    while True:
        try:
            async with bus.subscribe(topics.EVENTS, group) as subscription:
                async for batch in subscription:
                    result = await handle_batch(batch, bus, sessionmaker, options, now=clock())
                    failures = 0
                    if on_batch is not None:
                        on_batch(result)
            return
        except Exception:
            failures += 1
            if failures >= MAX_CONSECUTIVE_FAILURES:
                raise
            log.exception("ingest batch failed (%d in a row); retrying", failures)
            await asyncio.sleep(min(2.0 ** (failures - 1), 30.0))
