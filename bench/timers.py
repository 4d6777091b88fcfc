"""Timers at scale: 1,000,000 onboardings with timers in PostgreSQL, the due-timer query the
timer loop runs, and the rate of a full replay on a realistic population.

  deploy/local/with-servers.sh .venv/bin/python bench/timers.py [--onboardings N]
      [--replay-accounts A] [--replay-copies C] [--replay-workers W]      (or: make bench)

1. Bulk-loads N registrations (``onboardings``) and N projections
   (``onboarding_projections``) into a fresh, migrated database with ``COPY`` — generating
   them through the pipeline would take hours. 70 % are open with ``next_due_at`` spread
   uniformly from one hour ago to 60 days ahead (so ~0.07 % are overdue, as after an hour's
   outage), 30 % are onboarded with no timer. The ``state`` column holds a small document,
   not a derived state: the timer query never reads it, and a real state (~9 KB) is
   TOASTed out of line, so the heap row is about as wide either way.
2. Times ``ProjectionRepository.due`` (the read) and ``claim_due`` (what ``timers.fire_due``
   runs: the same query with ``FOR UPDATE SKIP LOCKED`` on the registrations, rolled back)
   for a page of 50, the median of many runs, and prints ``EXPLAIN (ANALYZE, BUFFERS)`` of
   both: the plan must walk ``ix_onboarding_projections_next_due_at``, never the table.
3. Replay, measured on A × (C + 1) onboardings (default 200 × 50 = 10,000, ~1M events): A
   demo accounts (the demo history: realistic events and manual facts) stored through
   ``ingest_messages``/``record_fact`` into a second database, then copied C times inside
   PostgreSQL under new account, onboarding, event and fact ids (``INSERT … SELECT``), so
   every copy derives the same realistic state; the copied events then get their insert
   numbers and activity summaries (``activity_days.rebuild``, untimed, as the store path).
   ``firstvalue replay``'s own loop (``replay.replay_all``) then runs three times: cold (no
   projections: every state written, every transition queued), a day later (every state
   rewritten, as its ``as_of`` moved), and two days later with W processes. Each rate is
   measured; the time for N onboardings
   is an extrapolation (per-onboarding cost independent of N: keyset pages, indexed reads).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson
from lab.machine import describe, load_average
from lab.onboardings import analyze, copy_onboardings
from lab.postgres import asyncpg_dsn, fresh_database, server_version
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from firstvalue import demo_data
from firstvalue.replay import replay_all
from services.ingest.consumer import IngestOptions, ingest_messages
from shared.config import load_settings
from shared.plan_files import default_plans
from shared.projection.manual import record_fact
from shared.storage import activity_days
from shared.storage.engine import create_engine, create_sessionmaker
from shared.storage.projections import ProjectionRepository
from shared.storage.tables import OnboardingRecord, OutboxRecord, ProjectionRecord

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
CHUNK = 50_000
PAGE = 50  # timers.fire_due's page
RUNS = 200
SEGMENTS = (("smb", 0.55, 14.0), ("mid_market", 0.30, 45.0), ("enterprise", 0.15, 90.0))
STAGES = ("kickoff", "setup", "first_value", "adoption")
STATE = orjson.dumps({"bench": "bulk-loaded by bench/timers.py; not a derived state"}).decode()


def rows(count: int, seed: int = 5) -> Iterator[tuple[tuple[Any, ...], tuple[Any, ...]]]:
    """(registration, projection) rows for ``count`` onboardings, deterministic."""
    rng = random.Random(seed)
    horizon = timedelta(days=60).total_seconds()
    for i in range(count):
        segment, target = _pick_segment(rng)
        onboarding_id, account_id = f"onb_{i:08d}", f"acct_{i:08d}"
        signed = NOW - timedelta(days=rng.uniform(0, 365))
        csm = f"csm-{rng.randrange(40)}"
        name = f"Account {i}"
        registration = (
            onboarding_id, f"registered:{onboarding_id}", account_id, segment, signed, csm,
            None, rng.choice((10, 25, 50, 200)), name, signed,
        )  # fmt: skip
        done = rng.random() < 0.30
        due = None if done else NOW + timedelta(seconds=rng.uniform(-3600, horizon))
        reached = signed + timedelta(days=rng.uniform(3, 2 * target)) if done else None
        ttfv = (reached - signed).total_seconds() / 86400 if reached else None
        breach = "none" if ttfv is None or ttfv <= target else "breach"
        projection = (
            onboarding_id, account_id, name, segment, 1, segment, csm,
            "onboarded" if done else "onboarding", None if done else rng.choice(STAGES),
            signed, reached, ttfv, breach, rng.uniform(30, 100), "healthy", reached, False,
            0 if done else rng.choice((0, 0, 0, 1, 2)), 0, due, NOW, STATE,
        )  # fmt: skip
        yield registration, projection


def _pick_segment(rng: random.Random) -> tuple[str, float]:
    x = rng.random()
    for segment, share, target in SEGMENTS:
        if x < share:
            return segment, target
        x -= share
    return SEGMENTS[-1][0], SEGMENTS[-1][2]


async def bulk_load(url: str, count: int) -> float:
    """COPY ``count`` registrations and projections; returns seconds (ANALYZE included)."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    started = time.perf_counter()
    try:
        generated = rows(count)
        loaded = 0
        while loaded < count:
            chunk = [next(generated) for _ in range(min(CHUNK, count - loaded))]
            await copy_onboardings(conn, [r for r, _ in chunk], [p for _, p in chunk])
            loaded += len(chunk)
            print(f"  loaded {loaded:,}/{count:,}", end="\r", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        await analyze(conn)
    finally:
        await conn.close()
    return time.perf_counter() - started


def _sql(stmt: Any) -> str:
    return str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


def due_statements(now: datetime, limit: int) -> tuple[str, str]:
    """The SQL of ``ProjectionRepository.due`` and ``claim_due`` (kept in step with them by
    checking, below, that they return the same ids as the repository methods)."""
    p, o = ProjectionRecord, OnboardingRecord
    due = (
        select(p.onboarding_id)
        .where(p.next_due_at <= now)
        .order_by(p.next_due_at, p.onboarding_id)
        .limit(limit)
    )
    claim = (
        select(p.onboarding_id)
        .join(o, o.onboarding_id == p.onboarding_id)
        .where(p.next_due_at <= now)
        .order_by(p.next_due_at, p.onboarding_id)
        .limit(limit)
        .with_for_update(of=o, skip_locked=True)
    )
    return _sql(due), _sql(claim)


async def time_queries(url: str) -> dict[str, Any]:
    engine = create_engine(url, application_name="bench-timers")
    sessions = create_sessionmaker(engine)
    try:
        return await _time_queries(url, sessions)
    finally:
        await engine.dispose()


async def _time_queries(url: str, sessions: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    async with sessions() as session:
        due_ids = await ProjectionRepository(session).due(NOW, PAGE)
        overdue = len(await ProjectionRepository(session).due(NOW, 10_000_000))
    async with sessions() as session, session.begin():
        claimed = await ProjectionRepository(session).claim_due(NOW, PAGE)
        await session.rollback()
    assert claimed == due_ids, "claim_due and due disagree"
    timings: dict[str, list[float]] = {"due": [], "claim_due": []}
    for _ in range(RUNS):
        async with sessions() as session:
            started = time.perf_counter()
            await ProjectionRepository(session).due(NOW, PAGE)
            timings["due"].append(time.perf_counter() - started)
        async with sessions() as session:
            await session.begin()
            started = time.perf_counter()
            await ProjectionRepository(session).claim_due(NOW, PAGE)
            timings["claim_due"].append(time.perf_counter() - started)
            await session.rollback()
    due_sql, claim_sql = due_statements(NOW, PAGE)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        assert [r[0] for r in await conn.fetch(due_sql)] == due_ids, "due SQL drifted"
        plans = {}
        for name, sql in (("due", due_sql), ("claim_due", claim_sql)):
            async with conn.transaction():
                explained = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            plans[name] = "\n".join(r[0] for r in explained)
    finally:
        await conn.close()
    return {
        "overdue": overdue,
        "page": len(due_ids),
        "median_ms": {k: statistics.median(v) * 1000 for k, v in timings.items()},
        "p99_ms": {k: sorted(v)[int(len(v) * 0.99) - 1] * 1000 for k, v in timings.items()},
        "explain": plans,
    }


CLONE_SQL = (
    """
    INSERT INTO onboardings (onboarding_id, fact_id, account_id, plan_key, signed_at, csm,
                             champion_user_id, licensed_seats, account_name, recorded_at)
    SELECT c || onboarding_id, c || fact_id, c || account_id, plan_key, signed_at, csm,
           champion_user_id, licensed_seats, account_name, recorded_at
    FROM onboardings, (SELECT 'c' || k || ':' AS c FROM generate_series(1, $1) AS k) AS copies
    """,
    """
    INSERT INTO onboarding_facts (id, onboarding_id, kind, occurred_at, payload, recorded_at)
    SELECT c || id, c || onboarding_id, kind, occurred_at, payload, recorded_at
    FROM onboarding_facts,
         (SELECT 'c' || k || ':' AS c FROM generate_series(1, $1) AS k) AS copies
    """,
    """
    INSERT INTO events (id, account_id, user_id, name, occurred_at, properties, source,
                        recorded_at)
    SELECT c || id, c || account_id, user_id, name, occurred_at, properties, source, recorded_at
    FROM events, (SELECT 'c' || k || ':' AS c FROM generate_series(1, $1) AS k) AS copies
    """,
)
COPIED_ACCOUNTS_SQL = "SELECT DISTINCT account_id FROM events WHERE seq IS NULL"


async def store_population(url: str, accounts: int, copies: int) -> dict[str, Any]:
    """``accounts`` demo accounts through the real store path (``ingest_messages``,
    ``record_fact``), then ``copies`` server-side copies of their facts under new ids."""
    plans = default_plans()
    history = demo_data.generate(plans, NOW, accounts=accounts)
    engine = create_engine(url, application_name="bench-timers")
    sessions = create_sessionmaker(engine)
    options = IngestOptions.from_settings(load_settings(database_url=url), plans)
    started = time.perf_counter()
    try:
        for start in range(0, len(history.messages), 1000):
            async with sessions() as session, session.begin():
                chunk = history.messages[start : start + 1000]
                await ingest_messages(session, chunk, options, received_at=NOW)
        for fact in history.facts:
            async with sessions() as session, session.begin():
                await record_fact(session, plans, fact, NOW)
    finally:
        await engine.dispose()
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        # record_fact projected some onboardings: start every replay measurement cold
        await conn.execute("TRUNCATE escalations, onboarding_projections, outbox")
        for sql in CLONE_SQL:
            await conn.execute(sql, copies)
        copied = [r[0] for r in await conn.fetch(COPIED_ACCOUNTS_SQL)]
    finally:
        await conn.close()
    # The copies bypassed EventRepository: number them and build their activity summaries
    # (docs/projection.md, "Bulk loads"), untimed as the store path is for the originals
    # (whose summaries the first replay folds, 200 accounts of the 10,000).
    engine = create_engine(url, application_name="bench-timers")
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            await activity_days.rebuild(session, copied)
    finally:
        await engine.dispose()
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        for table in ("onboardings", "onboarding_facts", "events", "activity_days"):
            await conn.execute(f"VACUUM ANALYZE {table}")
        counts = {
            table: await conn.fetchval(f"SELECT count(*) FROM {table}")
            for table in ("onboardings", "onboarding_facts", "events")
        }
    finally:
        await conn.close()
    return {**counts, "seconds": time.perf_counter() - started}


async def measure_replay(url: str, workers: int) -> list[dict[str, Any]]:
    """Time ``firstvalue replay``'s own loop (``replay.replay_all``) over the stored
    population: cold (no projections yet: every state written, every transition queued),
    then re-runs a day later (every state rewritten, as ``as_of`` moved) with one worker
    and, when ``workers`` > 1, with that many."""
    plans = default_plans()
    engine = create_engine(url, application_name="bench-timers")
    sessions = create_sessionmaker(engine)
    passes = [("cold, first projections", NOW, 1), ("re-run a day later", NOW + DAY, 1)]
    if workers > 1:
        passes.append((f"re-run two days later, {workers} workers", NOW + 2 * DAY, workers))
    results = []
    try:
        for label, moment, count in passes:
            started = time.perf_counter()
            projected = await replay_all(sessions, plans, moment, workers=count)
            seconds = time.perf_counter() - started
            async with sessions() as session:
                queued = await session.scalar(select(func.count()).select_from(OutboxRecord))
            results.append(
                {"label": label, "onboardings": projected, "seconds": seconds, "outbox": queued}
            )
            print(f"  {label}: {projected:,} in {seconds:.1f} s", file=sys.stderr)
    finally:
        await engine.dispose()
    return results


async def main(onboardings: int, replay_accounts: int, copies: int, workers: int) -> None:
    server = os.environ.get("FIRSTVALUE_TEST_DATABASE_URL")
    if not server:
        sys.exit("set FIRSTVALUE_TEST_DATABASE_URL (deploy/local/with-servers.sh does)")
    print(f"bench/timers.py on {describe(await server_version(server))}")
    print(f"load average at start: {load_average()}")
    async with fresh_database(server) as url:
        print(f"Loading {onboardings:,} onboardings with timers (COPY)…")
        load = await bulk_load(url, onboardings)
        q = await time_queries(url)
    async with fresh_database(server) as url:
        print(f"Storing {replay_accounts} demo accounts' facts and {copies} copies of them…")
        population = await store_population(url, replay_accounts, copies)
        print(f"Replaying {population['onboardings']:,} onboardings…")
        passes = await measure_replay(url, workers)
    print(f"load average at end: {load_average()}")
    print(f"\n{q['explain']['due']}\n\n{q['explain']['claim_due']}\n")
    figures = [
        ("onboardings (registrations + projections)", f"{onboardings:,}"),
        ("bulk load (COPY + VACUUM ANALYZE)", f"{load:.1f} s"),
        ("overdue timers at the measured moment", f"{q['overdue']:,}"),
        (f"due(now, {PAGE}) median / p99", _ms(q, "due")),
        (f"claim_due(now, {PAGE}) median / p99", _ms(q, "claim_due")),
        (
            "replay population (measured)",
            f"{population['onboardings']:,} onboardings, {population['events']:,} events, "
            f"{population['onboarding_facts']:,} manual facts "
            f"({replay_accounts} demo accounts × {copies + 1}; {population['seconds']:.0f} s)",
        ),
    ]
    for p in passes:
        rate = p["onboardings"] / p["seconds"]
        figures.append(
            (
                f"replay, {p['label']} (measured)",
                f"{p['onboardings']:,} in {p['seconds']:.1f} s = {rate:,.0f} onboardings/s "
                f"(outbox {p['outbox']:,} rows)",
            )
        )
        figures.append(
            (
                f"  → {onboardings:,} at that rate (extrapolated)",
                _duration(onboardings / rate),
            )
        )
    for label, value in figures:
        print(f"  {label:<56} {value}")


def _ms(q: dict[str, Any], name: str) -> str:
    return f"{q['median_ms'][name]:.2f} ms / {q['p99_ms'][name]:.2f} ms"


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--onboardings", type=int, default=1_000_000)
    parser.add_argument("--replay-accounts", type=int, default=200)
    parser.add_argument("--replay-copies", type=int, default=49)
    parser.add_argument("--replay-workers", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(
        main(args.onboardings, args.replay_accounts, args.replay_copies, args.replay_workers)
    )
