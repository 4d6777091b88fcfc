"""What the events insert costs PostgreSQL, part by part, in one run.

  deploy/local/with-servers.sh .venv/bin/python bench/ingest_insert.py [--events N]

The ingest path's one statement per batch (``shared.storage.events``) inserts the events
and numbers them in their accounts' insert sequences (the daily activity summaries are
folded when the projector reads them, since revision 0010). This bench runs the demo
workload's batches (the track events of each ``BATCH_RECORDS`` records, decoded and
attributed as the consumer does, as the one JSON rows parameter) through four statements,
each into its own fresh copy of the tables:

1. before: the insert alone, with the indexes of revision 0004 (primary key and
   ``(account_id, occurred_at)``) — the statement before the folded projection;
2. indexes: the insert alone, with today's indexes (primary key, ``(account_id, name,
   occurred_at)``, ``(account_id, seq)``);
3. current: 2 plus the ``account_sequences`` upsert and the join that numbers the rows —
   the statement ingest runs, its text taken from ``shared.storage.events``;
4. + summaries: 3 plus the ``activity_days`` upsert of the rows it inserted, as the insert
   ran it before revision 0010.

Each is timed by the server backend's own CPU (``/proc``: the server runs on this machine
under ``with-servers.sh``) per stored event, the median of ``--rounds`` rounds in shuffled
order. Ratios are against 1. Results: bench/README.md ("Ingest").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson
from lab.machine import load_average
from lab.postgres import asyncpg_dsn, fresh_database
from lab.servers import env
from lab.workload import demo_events

from services.ingest.consumer import BATCH_RECORDS, IngestOptions
from services.ingest.identity import account_named_by
from services.ingest.records import decode_records
from shared.analytics.normalize import USAGE_TYPES
from shared.plan_files import default_plans
from shared.storage import activity_days, dialect
from shared.storage.events import _JSON_INSERT_SQL

# The current statement's parts, as ``shared.storage.events`` spells them ($1 rows, $2
# source, $3 recorded_at).
_CURRENT = (
    _JSON_INSERT_SQL.replace(":rows", "$1").replace(":source", "$2").replace(":recorded_at", "$3")
    + " SELECT count(*) FROM new"
)
_BATCH = _CURRENT.split("), numbered AS (")[0] + ")"
_INSERT_ONLY = (
    _BATCH
    + """, new AS (
        INSERT INTO events (id, account_id, user_id, name, occurred_at, properties, source,
                            recorded_at)
        SELECT id, account_id, user_id, name, occurred_at, properties,
               CAST($2 AS varchar), CAST($3 AS timestamptz)
        FROM batch
        ON CONFLICT (id) DO NOTHING
        RETURNING id)
    SELECT count(*) FROM new"""
)
_SUMMARISED = (
    _CURRENT.replace("RETURNING id\n", "RETURNING id, account_id, user_id, occurred_at\n")
    .replace(" SELECT count(*) FROM new", "")
    .rstrip()
    + f", days AS ({activity_days.summary_upsert('new')}) SELECT count(*) FROM new"
)

# The events indexes before the folded projection (revision 0004) and now (0005).
_BEFORE_INDEXES = "CREATE INDEX ON events (account_id, occurred_at)"
_INDEXES = "CREATE INDEX ON events (account_id, name, occurred_at);" + (
    "CREATE INDEX ON events (account_id, seq)"
)
VARIANTS: dict[str, tuple[str, str]] = {
    "1 before: insert, 0004 indexes": (_BEFORE_INDEXES, _INSERT_ONLY),
    "2 insert, today's indexes": (_INDEXES, _INSERT_ONLY),
    "3 current: + numbering (account_sequences)": (_INDEXES, _CURRENT),
    "4 + summaries (activity_days, before 0010)": (_INDEXES, _SUMMARISED),
}
SUMMARY_TABLES = ("account_sequences", "activity_days")  # copied with their primary keys


def batches(count: int) -> list[str]:
    """The workload's batches as the insert's JSON rows: track events of each batch of
    records, attributed by the account they name, unique and in id order (lock order)."""
    now = datetime.now(UTC)
    options = IngestOptions(plan_keys=frozenset(default_plans()))
    records = [(orjson.dumps(m), now) for m in demo_events(count, now)]
    out = []
    for start in range(0, len(records), BATCH_RECORDS):
        decoded = decode_records(records[start : start + BATCH_RECORDS], options)
        rows = {}
        for e in decoded.events:
            if e.type in USAGE_TYPES and (account := account_named_by(e, "account_id")):
                rows[e.id] = (e.id, account, e.user_id, e.name or "", e.at, e.properties)
        out.append(dialect.json_rows(sorted(rows.values())))
    return out


def backend_cpu(pid: int) -> float:
    """Seconds of CPU the server process ``pid`` has used (user + system)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_variant(
    conn: Any, pid: int, schema: str, indexes: str, sql: str, payloads: Sequence[str]
) -> tuple[float, float]:
    """(server CPU µs, wall µs) per stored event of ``sql`` over every batch, into fresh
    copies of the tables (with their indexes) in ``schema``."""
    await conn.execute(f"CREATE SCHEMA {schema}")
    await conn.execute(f"SET search_path TO {schema}")
    for table in SUMMARY_TABLES:
        await conn.execute(f"CREATE TABLE {table} (LIKE public.{table} INCLUDING ALL)")
    await conn.execute(  # events: the primary key (the dedupe) and the variant's indexes
        "CREATE TABLE events (LIKE public.events INCLUDING DEFAULTS);"
        f"ALTER TABLE events ADD PRIMARY KEY (id); {indexes}"
    )
    stored = 0
    recorded_at = datetime.now(UTC)
    cpu, wall = backend_cpu(pid), time.perf_counter()
    for rows in payloads:
        async with conn.transaction():
            stored += await conn.fetchval(sql, rows, "segment", recorded_at)
    cpu, wall = backend_cpu(pid) - cpu, time.perf_counter() - wall
    await conn.execute(f"SET search_path TO public; DROP SCHEMA {schema} CASCADE")
    return cpu / stored * 1e6, wall / stored * 1e6


async def main(args: argparse.Namespace) -> None:
    print(f"load average at start: {load_average()}", flush=True)
    payloads = batches(args.events)
    rows = sum(len(orjson.loads(p)) for p in payloads)
    print(f"workload: {args.events:,} demo records, {rows:,} events in {len(payloads)} batches")
    cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}
    wall: dict[str, list[float]] = {name: [] for name in VARIANTS}
    async with fresh_database(env("FIRSTVALUE_TEST_DATABASE_URL")) as url:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            for round_ in range(args.rounds):
                names = list(VARIANTS)
                random.shuffle(names)
                for n, name in enumerate(names):
                    indexes, sql = VARIANTS[name]
                    c, w = await run_variant(
                        conn, pid, f"bench_{round_}_{n}", indexes, sql, payloads
                    )
                    cpu[name].append(c)
                    wall[name].append(w)
        finally:
            await conn.close()
    reference = statistics.median(cpu[next(iter(VARIANTS))])
    print(f"\nevents insert, server CPU per stored event (median of {args.rounds} rounds):")
    for name in VARIANTS:
        median = statistics.median(cpu[name])
        print(
            f"  {name:<36} {median:6.1f} µs  ({median / reference:.2f})"
            f"   wall {statistics.median(wall[name]):6.1f} µs"
        )
    print(f"load average now: {load_average()}")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="demo records (200,000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the four (3)")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
