"""``firstvalue backfill``: months of history from NDJSON exports (Segment or Mixpanel, gzip
too) into facts, resumable, ending in the same state as live ingestion of the same events.

Each batch of lines goes through ``ingest_messages`` — the live consumer's own normalise,
attribute, dedupe and store code, and its dead-letter rule — in one transaction, then the
checkpoint is saved. Events
are stored directly instead of being published to ``analytics.events``: same code, same
event ids, same facts, but no broker needed, no consumer to wait for, and the file offset
is the only cursor to keep. A crash between a commit and its checkpoint makes the rerun
read that batch again, which the event ids turn into duplicates, never doubles.

Projection waits until every file is in. An export is in time order, so projecting after
each batch would evaluate every onboarding on part of its history — once per batch for busy
accounts — and announce escalations that its later events resolve. At the end each touched
onboarding is projected once, as of now (transactions of 50 accounts, the pending ones kept
in the checkpoint); its transitions are relayed to the bus when there is one, else they
stay in the outbox for the running milestones service to relay.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.backfill_checkpoint import Checkpoint, CheckpointError, Counts, FileState
from services.ingest.ndjson import MAX_LINE_BYTES, ExportFile, Line, fingerprint
from services.ingest.outcome import IngestResult
from services.ingest.records import IngestOptions, ingest_messages
from shared.analytics.event import SOURCE_MARKER
from shared.bus.bus import Bus
from shared.bus.factory import create_bus
from shared.config import Settings
from shared.domain.plans import Plan
from shared.plan_files import configured_plans
from shared.projection.projector import project_accounts
from shared.projection.publisher import relay_outbox
from shared.storage.engine import create_engine, create_sessionmaker
from shared.storage.identities import IdentityRepository

__all__ = [
    "FORMATS",
    "BackfillError",
    "Counts",
    "Observer",
    "RejectedLine",
    "Summary",
    "backfill",
    "checkpoint_path",
    "rejected_path",
    "run",
]

FORMATS = ("auto", "segment", "mixpanel")
DEFAULT_BATCH_SIZE = 1000
PROJECT_CHUNK = 50  # accounts per projection transaction, as in the milestones consumer
SAMPLES = 20  # rejected lines kept for the summary; all of them go to the rejected file


class BackfillError(Exception):
    """A backfill that cannot start or go on; the message says what to do."""


@dataclass(frozen=True)
class RejectedLine:
    path: Path
    line: int
    reason: str
    error: str


class Observer:
    """Progress callbacks (the CLI's progress bar); each is called after the fact."""

    def file_started(self, path: Path, size: int, state: FileState) -> None: ...

    def batch_stored(self, path: Path, position: int, counts: Counts) -> None: ...

    def projecting(self, accounts: int) -> None: ...

    def projected(self, accounts: int) -> None: ...


@dataclass
class Summary:
    """Counts per file (across interrupted runs), and what this run did."""

    files: dict[Path, Counts] = field(default_factory=dict)
    resumed: dict[Path, int] = field(default_factory=dict)  # file → line it resumed after
    samples: list[RejectedLine] = field(default_factory=list)
    lines_read: int = 0  # by this run
    projected: int = 0
    still_pending: int = 0  # events in the database still waiting for their account
    elapsed: float = 0.0

    @property
    def totals(self) -> Counts:
        total = Counts()
        for counts in self.files.values():
            total.add(counts)
        return total

    @property
    def rejected_files(self) -> list[Path]:
        """``FILE.rejected.ndjson`` of each file with rejected lines (this run or before)."""
        return [rejected_path(path) for path, counts in self.files.items() if counts.rejected]

    @property
    def events_per_second(self) -> float:
        return self.lines_read / self.elapsed if self.elapsed > 0 else 0.0


def checkpoint_path(paths: Sequence[Path], given: Path | None = None) -> Path:
    """``--checkpoint``, else ``FILE.checkpoint.json`` beside the first file."""
    return given or paths[0].with_name(paths[0].name + ".checkpoint.json")


def rejected_path(path: Path) -> Path:
    return path.with_name(path.name + ".rejected.ndjson")


async def run(
    settings: Settings,
    paths: Sequence[Path],
    *,
    fmt: str = "auto",
    batch_size: int = DEFAULT_BATCH_SIZE,
    checkpoint: Path | None = None,
    restart: bool = False,
    observer: Observer | None = None,
) -> Summary:
    """The CLI's entry: engine (and the bus, when Kafka is configured) made and released here."""
    plans = configured_plans(settings)
    engine = create_engine(settings.database_url, application_name="firstvalue-backfill")
    async with AsyncExitStack() as stack:
        stack.push_async_callback(engine.dispose)
        bus: Bus | None = None
        if settings.kafka_bootstrap_servers:
            bus = create_bus(settings)
            await bus.start()
            stack.push_async_callback(bus.stop)
        return await backfill(
            paths,
            create_sessionmaker(engine),
            plans,
            IngestOptions.from_settings(settings, plans),
            fmt=fmt,
            batch_size=batch_size,
            checkpoint=checkpoint,
            restart=restart,
            bus=bus,
            observer=observer,
        )
    raise AssertionError("unreachable")  # pragma: no cover (mypy: the with block returns)


async def backfill(
    paths: Sequence[Path],
    sessionmaker: async_sessionmaker[AsyncSession],
    plans: Mapping[str, Plan],
    options: IngestOptions,
    *,
    fmt: str = "auto",
    batch_size: int = DEFAULT_BATCH_SIZE,
    checkpoint: Path | None = None,
    restart: bool = False,
    bus: Bus | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    observer: Observer | None = None,
) -> Summary:
    """Ingest every line of ``paths`` (resuming from the checkpoint), then project."""
    started = time.perf_counter()
    paths = list(dict.fromkeys(paths))
    _check(paths, fmt, batch_size)
    saved = Checkpoint(checkpoint_path(paths, checkpoint))
    if restart:
        saved.remove()
    else:
        saved = Checkpoint.load(saved.path)
    job = _Job(sessionmaker, options, fmt, batch_size, saved, clock, observer or Observer())
    for path in paths:
        await job.file(path)
    job.summary.projected = await job.project(plans)
    if bus is not None:
        await relay_outbox(sessionmaker, bus)
    async with sessionmaker() as session:
        job.summary.still_pending = await IdentityRepository(session).pending_count()
    saved.remove()  # done: a rerun starts afresh (and finds everything a duplicate)
    job.summary.elapsed = time.perf_counter() - started
    return job.summary


def _check(paths: Sequence[Path], fmt: str, batch_size: int) -> None:
    if not paths:
        raise BackfillError("no file to backfill")
    if fmt not in FORMATS:
        raise BackfillError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    if batch_size < 1:
        raise BackfillError("the batch size must be at least 1")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise BackfillError(f"no such file: {', '.join(missing)}")


@dataclass
class _Job:
    sessionmaker: async_sessionmaker[AsyncSession]
    options: IngestOptions
    fmt: str
    batch_size: int
    checkpoint: Checkpoint
    clock: Callable[[], datetime]
    observer: Observer
    summary: Summary = field(default_factory=Summary)

    async def file(self, path: Path) -> None:
        state = self._state(path)
        self.summary.files[path] = state.counts
        if state.done:
            return
        with ExportFile(path, state.offset, state.line) as export:
            self.observer.file_started(path, export.size, state)
            batch: list[Line] = []
            for line in export.lines():
                batch.append(line)
                if len(batch) >= self.batch_size:
                    await self._batch(path, state, batch, export.position)
                    batch = []
            if batch:
                await self._batch(path, state, batch, export.position)
        state.done = True
        self.checkpoint.save()

    def _state(self, path: Path) -> FileState:
        key = str(path.resolve())
        current = fingerprint(path)
        state = self.checkpoint.files.get(key)
        if state is not None and state.fingerprint != current:
            raise CheckpointError(
                f"{path} changed since the checkpoint {self.checkpoint.path} was written; "
                "rerun with --restart to start over"
            )
        rejects = rejected_path(path)
        if state is None:
            state = self.checkpoint.files[key] = FileState(current)
            rejects.unlink(missing_ok=True)  # from an earlier, finished run over this file
        else:
            _truncate(rejects, state.rejected_bytes)  # drop what an unsaved batch wrote
            if state.line and not state.done:
                self.summary.resumed[path] = state.line
        return state

    async def _batch(self, path: Path, state: FileState, lines: list[Line], position: int) -> None:
        counts = Counts(lines=len(lines))
        items: list[bytes] = []
        numbers: list[int] = []
        rejects: list[tuple[int, str, str, bytes]] = []
        for line in lines:
            if line.too_long:
                rejects.append((line.number, "too_large", f"line over {MAX_LINE_BYTES} bytes", b""))
            elif line.blank:
                counts.blank += 1
            else:
                items.append(line.data)
                numbers.append(line.number)
        result = await self._ingest([_as_format(item, self.fmt) for item in items])
        for r in result.rejected:
            rejects.append((numbers[r.index], r.reason, r.error, r.original or items[r.index]))
        counts.accepted, counts.duplicates = result.accepted, result.duplicates
        counts.pending, counts.registered = result.pending, result.registered
        counts.rejected = len(rejects)
        self.checkpoint.unprojected.update(result.facts)
        if rejects:
            state.rejected_bytes = self._write_rejects(path, sorted(rejects))
        state.line, state.offset = lines[-1].number, lines[-1].end
        state.counts.add(counts)
        self.checkpoint.save()
        self.summary.lines_read += len(lines) - counts.blank
        self.observer.batch_stored(path, position, counts)

    async def _ingest(self, items: Sequence[Mapping[str, Any] | bytes]) -> IngestResult:
        """One transaction; a line that cannot be decoded or stored comes back as a dead
        letter (the consumer's rule), so a poison line never stalls the backfill."""
        now = self.clock()
        async with self.sessionmaker() as session, session.begin():
            return await ingest_messages(session, items, self.options, received_at=now)

    def _write_rejects(self, path: Path, rejects: list[tuple[int, str, str, bytes]]) -> int:
        with rejected_path(path).open("ab") as f:
            for number, reason, error, original in rejects:
                f.write(orjson.dumps(_reject_record(number, reason, error, original)) + b"\n")
                if len(self.summary.samples) < SAMPLES:
                    self.summary.samples.append(RejectedLine(path, number, reason, error))
            f.flush()
            return f.tell()

    async def project(self, plans: Mapping[str, Plan]) -> int:
        accounts = sorted(self.checkpoint.unprojected)
        self.observer.projecting(len(accounts))
        projected = 0
        for start in range(0, len(accounts), PROJECT_CHUNK):
            chunk = accounts[start : start + PROJECT_CHUNK]
            async with self.sessionmaker() as session, session.begin():
                projected += len(await project_accounts(session, plans, chunk, self.clock()))
            self.checkpoint.unprojected.difference_update(chunk)
            self.checkpoint.save()
            self.observer.projected(len(chunk))
        return projected


def _as_format(line: bytes, fmt: str) -> Mapping[str, Any] | bytes:
    """``auto``: the line as is (the ingest knows each record by its shape). A forced format
    is stamped as the source marker HTTP ingest uses, so a line is read as that vendor's."""
    if fmt == "auto":
        return line
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return line  # the ingest rejects it as invalid_json, as it would live
    if not isinstance(record, dict) or "batch" in record:
        return line  # not an object, or a Segment batch envelope (its items are Segment)
    return {**record, SOURCE_MARKER: fmt}


def _reject_record(number: int, reason: str, error: str, original: bytes) -> dict[str, object]:
    """Like a DLQ record: the line, why, and the original bytes (text, else base64)."""
    record: dict[str, object] = {"line": number, "reason": reason, "error": error}
    try:
        record["original"] = original.decode()
    except UnicodeDecodeError:
        record["original"] = base64.b64encode(original).decode()
        record["original_encoding"] = "base64"
    return record


def _truncate(path: Path, size: int) -> None:
    if path.exists() and path.stat().st_size > size:
        with path.open("r+b") as f:
            f.truncate(size)
