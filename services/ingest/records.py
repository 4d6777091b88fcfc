"""The one rule every ingest path follows (bus consumer, backfill, demo data): a record that
cannot be decoded, normalised or stored becomes a dead letter with its reason — never a
crash, never an endless retry. Only an infrastructure failure (the database unreachable)
propagates, for the caller's retry policy.

Decoding is CPU only (the consumer overlaps it with the previous batch's transaction).
Storing runs in the caller's transaction, under a savepoint: when the database refuses the
batch, the savepoint is rolled back and the batch is halved until the refused events stand
alone, each then dead-lettered while the rest are stored — a poison record costs about
``2·log2(n)`` savepoints, not a transaction per record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.exc import DBAPIError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession

from services.ingest.outcome import DeadLetter, IngestResult
from services.ingest.store import store_events
from shared.analytics.event import fits_every_limit
from shared.analytics.normalize import (
    SEGMENT,
    InvalidMessage,
    NormalizedEvent,
    detect_source,
    normalize_record,
    split_segment_batch,
)
from shared.analytics.registration import contract_terms, is_contract_signed
from shared.analytics.segment import well_formed
from shared.bus.outages import is_outage
from shared.config import Settings
from shared.domain.plans import Plan

log = logging.getLogger(__name__)
Record = Mapping[str, Any] | bytes  # a record's bytes, or its decoded JSON object


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


def is_infrastructure_failure(error: BaseException) -> bool:
    """Whether ``error`` says the database (or the network) failed rather than the data: an
    outage (waited out by the retry policy) or a schema that does not match the code (a
    deployment fault, ``ProgrammingError``). Either way the batch is retried as a whole."""
    return is_outage(error) or isinstance(error, ProgrammingError)


def refusal(error: Exception) -> tuple[str, str]:
    """(reason, error text) of a dead letter for an exception a record raised."""
    if isinstance(error, InvalidMessage):
        return error.reason, str(error)
    if isinstance(error, OverflowError):
        return "out_of_range", str(error)
    if isinstance(error, RecursionError):
        return "too_deep", str(error)
    if isinstance(error, DBAPIError):
        return "storage_error", str(error.orig or error).splitlines()[0][:500]
    return "unprocessable", f"{type(error).__name__}: {error}"[:500]


def decode(raw: Record, received_at: datetime, options: IngestOptions) -> list[Any]:
    """One record (a Segment message, a Mixpanel event, or a ``{"batch": [...]}`` envelope)
    → its events, in order, each a ``NormalizedEvent`` or a ``DeadLetter`` (index 0)."""
    try:
        if isinstance(raw, bytes | bytearray):
            data = orjson.loads(raw)
            within_limits = fits_every_limit(raw)
        else:
            data, within_limits = raw, False
        if isinstance(data, dict) and "batch" in data:
            items = split_segment_batch(data, received_at)
            return [_decode_one(item, received_at, options, batch_item=True) for item in items]
    except orjson.JSONDecodeError as error:
        return [DeadLetter(0, "invalid_json", str(error))]
    except Exception as error:
        return [DeadLetter(0, *refusal(error))]
    return [_decode_one(data, received_at, options, within_limits=within_limits)]


def _decode_one(
    message: Any,
    received_at: datetime,
    options: IngestOptions,
    *,
    batch_item: bool = False,
    within_limits: bool = False,
) -> NormalizedEvent | DeadLetter:
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
    except Exception as error:
        return DeadLetter(0, *refusal(error), _item_bytes(message) if batch_item else None)


def _item_bytes(item: Any) -> bytes:
    try:
        return orjson.dumps(item)
    except (orjson.JSONEncodeError, RecursionError):
        return repr(item).encode(errors="replace")


@dataclass
class Decoded:
    """Records after the CPU-only step: their events in order (``origins``: for each, its
    record's index and its position in that record) and the dead letters so far."""

    records: Sequence[tuple[Record, datetime]]
    events: list[NormalizedEvent] = field(default_factory=list)
    origins: list[tuple[int, int]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)

    def item_bytes(self, index: int, position: int) -> bytes | None:
        """The bytes of one item of a batch record (None for a record of one event)."""
        raw, received_at = self.records[index]
        data = orjson.loads(raw) if isinstance(raw, bytes | bytearray) else raw
        if not (isinstance(data, dict) and "batch" in data):
            return None
        return _item_bytes(split_segment_batch(data, received_at)[position])


def decode_records(records: Sequence[tuple[Record, datetime]], options: IngestOptions) -> Decoded:
    """Decode each ``(record, received_at)``; no I/O. Gives what ``decode`` gives record by
    record: a common record is read in one pass (``_common``), any other through ``decode``."""
    decoded = Decoded(records)
    events, origins, dead = decoded.events, decoded.origins, decoded.dead
    for index, (raw, received_at) in enumerate(records):
        if (event := _common(raw, received_at, options)) is not None:
            events.append(event)
            origins.append((index, 0))
            continue
        for position, outcome in enumerate(decode(raw, received_at, options)):
            if outcome.__class__ is DeadLetter:
                dead.append(DeadLetter(index, outcome.reason, outcome.error, outcome.original))
            else:
                events.append(outcome)
                origins.append((index, position))
    return decoded


def _common(raw: Record, received_at: datetime, options: IngestOptions) -> NormalizedEvent | None:
    """The event of a common record — the bytes of one Segment message within every limit,
    of the shape ``well_formed`` reads — without ``decode``'s layers (a third of the
    consumer's decoding time); None for any other record, or one that is refused, which
    ``decode`` then reads (again) and reports exactly."""
    if raw.__class__ is not bytes or not fits_every_limit(raw):
        return None
    try:
        message = orjson.loads(raw)
        if message.__class__ is not dict or "batch" in message or detect_source(message) != SEGMENT:
            return None
        event = well_formed(message, received_at, options.max_clock_skew_days)
        if event is not None and is_contract_signed(event):
            contract_terms(event.properties, options.plan_keys)
    except Exception:  # refused: ``decode`` gives the dead letter
        return None
    return event


async def store_decoded(
    session: AsyncSession, decoded: Decoded, options: IngestOptions, *, now: datetime
) -> IngestResult:
    """Store the decoded events in the caller's transaction (only flushes); events the
    database refuses become dead letters beside the decoding ones."""
    result = IngestResult(rejected=list(decoded.dead))
    await _store_isolating(session, decoded, 0, len(decoded.events), options, now, result)
    result.rejected.sort(key=_position)
    return result


def _position(letter: DeadLetter) -> int:
    return letter.index


async def _store_isolating(
    session: AsyncSession,
    decoded: Decoded,
    start: int,
    end: int,
    options: IngestOptions,
    now: datetime,
    result: IngestResult,
) -> None:
    """Events ``start:end`` under a savepoint; if refused, each half alone, down to the
    single events, which are dead-lettered."""
    if start == end:
        return
    try:
        async with session.begin_nested():
            stored = await store_events(
                session,
                decoded.events[start:end] if start or end < len(decoded.events) else decoded.events,
                plan_keys=options.plan_keys,
                account_property=options.account_property,
                recorded_at=now,
            )
    except Exception as error:
        if is_infrastructure_failure(error):
            raise
        if end - start == 1:
            index, position = decoded.origins[start]
            log.warning("record %d refused by the database: %s", index, error)
            reason, text = refusal(error)
            if reason == "unprocessable":
                reason = "storage_error"
            result.rejected.append(
                DeadLetter(index, reason, text, decoded.item_bytes(index, position))
            )
            return
        middle = (start + end) // 2
        await _store_isolating(session, decoded, start, middle, options, now, result)
        await _store_isolating(session, decoded, middle, end, options, now, result)
        return
    result.add(stored)


async def ingest_messages(
    session: AsyncSession,
    messages: Iterable[Record],
    options: IngestOptions,
    *,
    received_at: datetime,
) -> IngestResult:
    """Decode and store raw records in the caller's transaction (backfill, demo data): the
    consumer's rule without the bus. Dead letters are reported by the record's index."""
    decoded = decode_records([(message, received_at) for message in messages], options)
    return await store_decoded(session, decoded, options, now=received_at)
