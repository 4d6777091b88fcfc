"""``firstvalue backfill`` end to end: a demo history backfilled from an export ends in the
same onboarding state as the same events ingested live through the bus; gzip and Mixpanel
exports; an interrupted run (an injected stop, or the CLI killed with SIGKILL) resumes from
its checkpoint and doubles nothing; bad lines are reported by number, never dropped."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from firstvalue.cli import app
from firstvalue.demo_data import DemoHistory, generate
from services.ingest.backfill import BackfillError, Counts, Observer, Summary, backfill
from services.ingest.backfill_checkpoint import Checkpoint, CheckpointError
from services.ingest.consumer import IngestOptions, run_ingest
from services.milestones.consumer import run_milestones
from shared.analytics.normalize import partition_key
from shared.bus import topics
from shared.bus.memory import MemoryBus
from shared.domain.plans import Plan
from shared.plan_files import default_plans
from shared.projection.manual import record_fact
from shared.projection.replay import replay_all
from shared.storage import migrate
from shared.storage.engine import create_engine, create_sessionmaker
from shared.storage.events import EventRepository
from shared.storage.identities import IdentityRepository
from shared.storage.onboardings import OnboardingRepository
from shared.storage.projections import ProjectionRepository

from .stack import BACKENDS, fresh_database

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # the history's end, and every evaluation's now
PLANS: dict[str, Plan] = default_plans()
OPTIONS = IngestOptions(plan_keys=frozenset(PLANS))
VOLATILE = {"as_of", "updated_at"}
DEADLINE = 60.0
KAFKA = "FIRSTVALUE_KAFKA_BOOTSTRAP_SERVERS"  # unset for the CLI: transitions stay in the outbox


@pytest.fixture(scope="module")
def history() -> DemoHistory:
    """Smaller than the demo's 320 accounts, with every scenario in it."""
    return generate(PLANS, NOW, accounts=40, seed=5)


def mixpanel(message: Mapping[str, Any]) -> dict[str, Any] | None:
    """A demo track call as a Mixpanel export line (``company_id`` names the account);
    Mixpanel has no group or identify calls, so those have no line."""
    if message["type"] != "track":
        return None
    at = datetime.fromisoformat(message["timestamp"])
    return {
        "event": message["event"],
        "properties": {
            **message["properties"],
            "distinct_id": message["userId"],
            "time": round(at.timestamp() * 1000),
            "$insert_id": message["messageId"],
            "company_id": message["context"]["groupId"],
        },
    }


def records(history: DemoHistory, fmt: str) -> list[dict[str, Any]]:
    if fmt == "segment":
        return list(history.messages)
    return [r for r in map(mixpanel, history.messages) if r is not None]


def write_export(path: Path, lines: Iterable[dict[str, Any] | bytes]) -> Path:
    data = b"".join(
        (line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines
    )
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


@dataclass
class Database:
    url: str
    sessions: async_sessionmaker[AsyncSession]


@contextlib.asynccontextmanager
async def database(backend: str, directory: Path) -> AsyncIterator[Database]:
    async with fresh_database(backend, directory) as url:
        await migrate(url)
        engine = create_engine(url, application_name="firstvalue-e2e-backfill")
        try:
            yield Database(url, create_sessionmaker(engine))
        finally:
            await engine.dispose()


async def record_manual_facts(db: Database, history: DemoHistory) -> None:
    """Sponsor confirmations, pauses, amendments: entered through the API in both runs."""
    for fact in history.facts:
        async with db.sessions() as session, session.begin():
            await record_fact(session, PLANS, fact, NOW)


async def states(db: Database) -> dict[str, dict[str, Any]]:
    """Every projected onboarding as the API serves it, minus when it was computed."""
    async with db.sessions() as session:
        ids = await OnboardingRepository(session).ids(after=None, limit=10_000)
        projections = ProjectionRepository(session)
        stored = {i: await projections.state_dict(i) for i in ids}
    return {i: {k: v for k, v in s.items() if k not in VOLATILE} for i, s in stored.items() if s}


async def live(db: Database, lines: list[dict[str, Any]]) -> None:
    """The same events produced to analytics.events keyed by account (one account's events
    together and in time order, as a keyed partition holds them), consumed by the real
    ingest and milestones consumers (clock fixed at NOW)."""
    bus = MemoryBus()
    consumers = [
        asyncio.create_task(run_ingest(bus, db.sessions, OPTIONS, clock=lambda: NOW)),
        asyncio.create_task(run_milestones(bus, db.sessions, PLANS, clock=lambda: NOW)),
    ]
    try:
        keyed = [(partition_key(r), orjson.dumps(r)) for r in lines]
        keyed.sort(key=lambda item: item[0] or "")
        await bus.publish_many(topics.EVENTS, keyed)
        deadline = time.monotonic() + DEADLINE
        while await bus.lag(topics.EVENTS, "ingest") or await bus.lag(topics.FACTS, "milestones"):
            assert time.monotonic() < deadline, "the live pipeline did not catch up in time"
            assert not any(c.done() for c in consumers), "a consumer stopped"
            await asyncio.sleep(0.02)  # polling interval, bounded by the deadline
    finally:
        await bus.stop()
        await asyncio.gather(*consumers)


_LIVE: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}


async def live_states(
    backend: str, fmt: str, history: DemoHistory, directory: Path
) -> dict[str, dict[str, Any]]:
    """Onboarding states after live ingestion and the manual facts, once per backend and
    format (the slow half of each comparison; the history is the module's)."""
    if (backend, fmt) not in _LIVE:
        async with database(backend, directory) as db:
            await live(db, records(history, fmt))
            await record_manual_facts(db, history)
            _LIVE[backend, fmt] = await states(db)
    return _LIVE[backend, fmt]


async def ingested(db: Database) -> tuple[int, int, int]:
    """(events, onboardings, events still waiting for an account)."""
    async with db.sessions() as session:
        return (
            await EventRepository(session).count(),
            len(await OnboardingRepository(session).ids(after=None, limit=10_000)),
            await IdentityRepository(session).pending_count(),
        )


def usage_events(history: DemoHistory) -> int:
    return sum(1 for m in history.messages if m["type"] == "track")


@pytest.mark.parametrize(
    ("backend", "fmt", "name"),
    [
        *((b, "segment", "events.ndjson") for b in BACKENDS),
        ("sqlite", "mixpanel", "mixpanel.ndjson.gz"),  # the vendor shape is storage-blind
    ],
)
async def test_backfill_ends_in_the_same_onboarding_state_as_live_ingestion(
    backend: str, fmt: str, name: str, history: DemoHistory, tmp_path: Path
) -> None:
    lines = records(history, fmt)
    export = write_export(tmp_path / name, lines)
    async with database(backend, tmp_path) as db:
        summary = await backfill(
            [export], db.sessions, PLANS, OPTIONS, fmt=fmt, batch_size=700, clock=lambda: NOW
        )
        await record_manual_facts(db, history)
        backfilled = await states(db)
        assert await ingested(db) == (usage_events(history), len(history.accounts), 0)
    expected = await live_states(backend, fmt, history, tmp_path)

    totals = summary.totals
    assert (totals.lines, totals.accepted, totals.rejected) == (
        len(lines),
        usage_events(history),
        0,
    )
    assert totals.registered == summary.projected == len(history.accounts)
    assert not (tmp_path / f"{name}.checkpoint.json").exists()
    assert len(backfilled) == len(history.accounts)
    assert backfilled.keys() == expected.keys()
    for onboarding_id, state in expected.items():
        assert backfilled[onboarding_id] == state, onboarding_id
    assert {s["status"] for s in backfilled.values()} >= {"onboarding", "onboarded"}
    assert any(e["resolved_at"] is None for s in backfilled.values() for e in s["escalations"])
    assert any(m["progress"] == "complete" for s in backfilled.values() for m in s["milestones"])


class StopAfter(Observer):
    """Stops the run like a Ctrl-C after ``batches`` committed batches."""

    def __init__(self, batches: int) -> None:
        self.left = batches

    def batch_stored(self, path: Path, position: int, counts: Counts) -> None:
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt


@pytest.mark.parametrize("backend", BACKENDS)
async def test_interrupted_backfill_resumes_from_its_checkpoint_and_doubles_nothing(
    backend: str, history: DemoHistory, tmp_path: Path
) -> None:
    export = write_export(tmp_path / "events.ndjson.gz", history.messages)
    checkpoint = tmp_path / "events.ndjson.gz.checkpoint.json"
    async with database(backend, tmp_path) as db:
        with pytest.raises(KeyboardInterrupt):
            await backfill(
                [export],
                db.sessions,
                PLANS,
                OPTIONS,
                batch_size=1000,
                clock=lambda: NOW,
                observer=StopAfter(3),
            )
        saved = Checkpoint.load(checkpoint).files[str(export.resolve())]
        assert (saved.line, saved.done, saved.counts.lines) == (3000, False, 3000)
        partial, _, _ = await ingested(db)

        summary = await backfill(
            [export], db.sessions, PLANS, OPTIONS, batch_size=1000, clock=lambda: NOW
        )
        await record_manual_facts(db, history)
        resumed = await states(db)
        assert await ingested(db) == (usage_events(history), len(history.accounts), 0)
    expected = await live_states(backend, "segment", history, tmp_path)

    assert 0 < partial < usage_events(history)
    assert summary.resumed == {export: 3000}
    assert summary.lines_read == len(history.messages) - 3000
    totals = summary.totals  # across both runs: every line once
    assert (totals.lines, totals.accepted, totals.duplicates) == (
        len(history.messages),
        usage_events(history),
        0,
    )
    assert not checkpoint.exists()
    assert resumed == expected


def run_cli(*args: str, env: Mapping[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "firstvalue", "backfill", *args],
        cwd=ROOT,
        env={k: v for k, v in {**os.environ, **env}.items() if k != KAFKA},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_line(checkpoint: Path, process: subprocess.Popen[str], at_least: int) -> None:
    """Poll the checkpoint (with a deadline) until it is past ``at_least`` lines."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        assert process.poll() is None, "the backfill ended before it could be killed"
        with contextlib.suppress(FileNotFoundError, CheckpointError, StopIteration):
            state = next(iter(Checkpoint.load(checkpoint).files.values()))
            if state.line >= at_least:
                return
        time.sleep(0.02)  # polling interval, bounded by the deadline
    raise AssertionError(f"no checkpoint past line {at_least} within {DEADLINE}s")


async def test_cli_killed_with_sigkill_resumes_and_ends_equal(
    history: DemoHistory, tmp_path: Path
) -> None:
    export = write_export(tmp_path / "events.ndjson.gz", history.messages)
    checkpoint = tmp_path / "run.checkpoint.json"
    args = (str(export), "--batch-size", "200", "--checkpoint", str(checkpoint))
    async with database("sqlite", tmp_path) as db:  # killed mid-write: the WAL rolls back
        env = {"FIRSTVALUE_DATABASE_URL": db.url}
        first = run_cli(*args, env=env)
        try:
            wait_for_line(checkpoint, first, 1000)
        finally:
            first.send_signal(signal.SIGKILL)
            first.communicate()
        assert first.returncode == -signal.SIGKILL
        killed_at = next(iter(Checkpoint.load(checkpoint).files.values())).line

        second = run_cli(*args, env=env)
        output, _ = second.communicate(timeout=DEADLINE)
        assert second.returncode == 0, output
        assert f"after line {killed_at:,}" in output
        assert await ingested(db) == (usage_events(history), len(history.accounts), 0)
        async with db.sessions() as session:  # every event stored once, under its own id
            ids = set((await session.execute(text("SELECT id FROM events"))).scalars())
        assert ids == {m["messageId"] for m in history.messages if m["type"] == "track"}
        await record_manual_facts(db, history)
        await replay_all(db.sessions, PLANS, NOW)  # the CLI projected as of the real now
        backfilled = await states(db)
    expected = await live_states("sqlite", "segment", history, tmp_path)
    assert not checkpoint.exists()
    assert backfilled == expected


BAD_LINES: list[tuple[bytes, str]] = [
    (b'{"type": "track", "userId": "u1", "event": "Logged In"', "invalid_json"),
    (b'{"type": "track", "event": "Logged In", "messageId": "m-nouser"}', "missing_user"),
    (b'{"hello": "world"}', "unknown_source"),
    (b"[1, 2, 3]", "not_an_object"),
    (
        b'{"type": "track", "userId": "u1", "event": "Logged In", "timestamp": "yesterday"}',
        "invalid_timestamp",
    ),
    (
        b'{"type": "track", "userId": "u1", "event": "Contract Signed", '
        b'"context": {"groupId": "acct_x"}, "properties": {"plan": "no_such_plan"}}',
        "unknown_plan",
    ),
]


def test_bad_lines_are_reported_by_number_kept_beside_the_file_and_exit_1(
    history: DemoHistory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = [orjson.dumps(m) for m in history.messages[:300]]
    lines = good[:100] + [b"", *(bad for bad, _ in BAD_LINES)] + good[100:]
    export = write_export(tmp_path / "export.ndjson", lines)
    bad_numbers = {102 + i: reason for i, (_, reason) in enumerate(BAD_LINES)}
    monkeypatch.setenv("FIRSTVALUE_DATABASE_URL", f"sqlite:///{tmp_path / 'bad.db'}")
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"]).exit_code == 0

    result = runner.invoke(app, ["backfill", str(export), "--batch-size", "50"])
    assert result.exit_code == 1, result.output
    for number, reason in bad_numbers.items():
        assert f"{export}:{number}: {reason}" in result.output
    assert "blank lines skipped" in result.output
    rejected = [
        orjson.loads(line)
        for line in (tmp_path / "export.ndjson.rejected.ndjson").read_bytes().splitlines()
    ]
    assert {r["line"]: r["reason"] for r in rejected} == bad_numbers
    assert [r["original"].encode() for r in rejected] == [bad for bad, _ in BAD_LINES]
    assert not (tmp_path / "export.ndjson.checkpoint.json").exists()

    again = runner.invoke(app, ["backfill", str(export)])  # the good ones are duplicates now
    assert again.exit_code == 1
    assert "accepted (new events)" in again.output
    assert len((tmp_path / "export.ndjson.rejected.ndjson").read_bytes().splitlines()) == len(
        BAD_LINES
    )


async def test_a_changed_file_is_not_resumed_without_restart(
    history: DemoHistory, tmp_path: Path
) -> None:
    export = write_export(tmp_path / "events.ndjson", history.messages[:500])
    async with database("sqlite", tmp_path) as db:
        with pytest.raises(KeyboardInterrupt):
            await backfill(
                [export],
                db.sessions,
                PLANS,
                OPTIONS,
                batch_size=100,
                clock=lambda: NOW,
                observer=StopAfter(1),
            )
        write_export(export, history.messages[100:500])  # replaced under the checkpoint
        with pytest.raises(CheckpointError, match="--restart"):
            await backfill([export], db.sessions, PLANS, OPTIONS, clock=lambda: NOW)
        summary: Summary = await backfill(
            [export], db.sessions, PLANS, OPTIONS, restart=True, clock=lambda: NOW
        )
        assert summary.resumed == {} and summary.totals.lines == 400
        with pytest.raises(BackfillError, match="no such file"):
            await backfill([tmp_path / "missing.ndjson"], db.sessions, PLANS, OPTIONS)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_line_the_database_refuses_is_rejected_alone(backend: str, tmp_path: Path) -> None:
    """A line that passes every check yet breaks the insert is set aside as a
    ``storage_error`` with the rest of its batch stored, and so is a batch of nothing else
    (a poison line never stops the backfill)."""
    lines = [
        {"type": "track", "messageId": f"m{n}", "userId": "u1", "event": "Logged In",
         "context": {"groupId": "acme"}, "timestamp": NOW.isoformat()}
        for n in range(3)
    ]  # fmt: skip
    export = write_export(tmp_path / "export.ndjson", lines)
    async with database(backend, tmp_path) as db:
        async with db.sessions() as session, session.begin():
            if backend == "sqlite":
                await session.execute(text(
                    "CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.id = 'm1' "
                    "BEGIN SELECT RAISE(ABORT, 'poison'); END"
                ))  # fmt: skip
            else:
                await session.execute(
                    text("ALTER TABLE events ADD CONSTRAINT poison CHECK (id <> 'm1')")
                )
        summary = await backfill([export], db.sessions, PLANS, OPTIONS, clock=lambda: NOW)
        assert (summary.totals.accepted, summary.totals.rejected) == (2, 1)
        async with db.sessions() as session:
            stored = {e.id for e in await EventRepository(session).for_account("acme")}
        assert stored == {"m0", "m2"}
        rejected = [
            orjson.loads(line)
            for line in (tmp_path / "export.ndjson.rejected.ndjson").read_bytes().splitlines()
        ]
        assert [(r["line"], r["reason"]) for r in rejected] == [(2, "storage_error")]

        only_poison = write_export(tmp_path / "poison.ndjson", [{**lines[1]}])
        alone = await backfill([only_poison], db.sessions, PLANS, OPTIONS, clock=lambda: NOW)
        assert (alone.totals.accepted, alone.totals.rejected) == (0, 1)
