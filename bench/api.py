"""REST API latency at 100,000 onboardings in PostgreSQL, and of the embedded server, under
load from a second process.

  deploy/local/with-servers.sh .venv/bin/python bench/api.py [--onboardings N]   (or: make bench)
  .venv/bin/python bench/api.py --embedded-only [--reference DIR]                 (no servers)

1. Template states: a small demo history goes through the real pipeline (embedded, SQLite);
   the projections it produces are real evaluated ``OnboardingState`` JSON.
2. Bulk load: N onboardings (registrations + projection rows) are written with ``COPY``
   into a fresh, migrated PostgreSQL database. Each row's list/report columns are drawn at
   random (plan, CSM, signature date over a year, TTFV around the plan's target or still
   open, breach level from those); its stored state is a template state of the same plan
   with the ids replaced. No usage events are stored: the endpoints measured never read them.
3. ``firstvalue api`` runs under uvicorn in its own process (one worker).
4. A second process (this file with ``--drive``) sends requests over several connections for
   a fixed time per endpoint and reports p50/p99 latency and requests/s:
   list (first page, 50 items, with and without filters), detail (random onboarding), and
   the TTFV report (group_by segment/cohort/csm/plan over all N).
Targets: detail p99 < 50 ms; TTFV report < 500 ms.

Then the embedded server, started as ``make run`` starts it (``firstvalue run``: SQLite, the
demo history, the API on a pre-bound socket): list and detail at 50 keep-alive connections,
and at one connection with keep-alive against a fresh connection per request (a stall on
reused connections shows as keep-alive slower than fresh). ``--reference DIR`` measures
another checkout's code the same way in the same run. Targets: p99 < 200 ms at 50
connections; keep-alive p50 within 2x of fresh. Results: bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import orjson
import uvloop
from lab.embedded import cpu_seconds, embedded
from lab.machine import describe
from lab.onboardings import analyze, copy_onboardings
from lab.postgres import asyncpg_dsn, fresh_database, server_version
from lab.servers import env, free_port, wait_ready

from firstvalue.demo_data import generate
from firstvalue.embedded import load_history, start_pipeline
from shared.analytics.registration import onboarding_id_for, registration_id
from shared.config import load_settings, sqlite_dsn
from shared.domain.ttfv import breach_level
from shared.plan_files import default_plans
from shared.storage.projections import ProjectionRepository

CSMS = [f"CSM {n:02d}" for n in range(1, 13)]
PLAN_MIX = (("smb", 0.5), ("mid_market", 0.35), ("enterprise", 0.15))
COPY_CHUNK = 10_000
TARGETS_MS = {"detail": 50.0, "report": 500.0}  # detail p99, report p99
# Connections the load generator keeps busy per endpoint (the API is one uvicorn worker on
# a 2-core machine it shares with PostgreSQL and the generator).
CONCURRENCY = (("list", 4), ("detail", 4), ("report", 2))
# The embedded server: (endpoint, connections, fresh connection per request).
EMBEDDED_RUNS = (
    ("list", 50, False),
    ("detail", 50, False),
    ("list", 1, False),
    ("list", 1, True),
    ("detail", 1, False),
    ("detail", 1, True),
)
EMBEDDED_P99_MS = 200.0


async def template_states() -> dict[str, list[dict[str, Any]]]:
    """Real evaluated states, by plan, from a demo history run through the pipeline."""
    with tempfile.TemporaryDirectory() as directory:
        config = load_settings(database_url=sqlite_dsn(Path(directory) / "templates.db"))
        async with start_pipeline(config) as pipeline:
            history = generate(pipeline.plans, datetime.now(UTC), accounts=36, seed=11)
            await load_history(pipeline, history)
            async with pipeline.sessionmaker() as session:
                states = [
                    await ProjectionRepository(session).state_dict(a.onboarding_id)
                    for a in history.accounts
                ]
    by_plan: dict[str, list[dict[str, Any]]] = {}
    for state in states:
        if state is not None:
            by_plan.setdefault(state["plan_key"], []).append(state)
    return by_plan


def rows(
    count: int, templates: dict[str, list[dict[str, Any]]], now: datetime, seed: int = 7
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(registrations, projections) records for COPY."""
    rng = random.Random(seed)
    plans = default_plans()
    keys, weights = zip(*PLAN_MIX, strict=True)
    registrations, projections = [], []
    for n in range(count):
        plan = plans[rng.choices(keys, weights)[0]]
        account = f"bench-{n:06d}"
        onboarding = onboarding_id_for(account, plan.key)
        signed = now - timedelta(days=rng.uniform(0, 365), seconds=rng.randrange(86_400))
        age = (now - signed) / timedelta(days=1)
        target = plan.ttfv_target
        drawn = rng.lognormvariate(0, 0.5) * (target.min_days + target.max_days) / 2
        ttfv = drawn if drawn <= age else None
        reached_at = signed + timedelta(days=ttfv) if ttfv is not None else None
        onboarded = reached_at is not None and rng.random() < 0.6
        csm = rng.choice(CSMS)
        state = dict(rng.choice(templates[plan.key]))
        state.update(onboarding_id=onboarding, account_id=account, csm=csm)
        health = rng.uniform(20, 100)
        registrations.append(
            (
                onboarding,
                registration_id(onboarding),
                account,
                plan.key,
                signed,
                csm,
                None,
                10,
                f"Bench {n}",
                now,
            )
        )
        projections.append(
            (
                onboarding,
                account,
                f"Bench {n}",
                plan.key,
                plan.version,
                plan.segment,
                csm,
                "onboarded" if onboarded else "onboarding",
                None if onboarded else rng.choice([s.key for s in plan.stages]),
                signed,
                reached_at,
                ttfv,
                breach_level(ttfv if ttfv is not None else age, target),
                round(health, 1),
                "healthy" if health >= 80 else "at_risk" if health >= 60 else "critical",
                signed + timedelta(days=ttfv + 20) if onboarded and ttfv is not None else None,
                ttfv is None and rng.random() < 0.05,
                0,
                0,
                now + timedelta(hours=rng.uniform(1, 72)),
                now,
                orjson.dumps(state).decode(),
            )
        )
    return registrations, projections


async def bulk_load(url: str, registrations: list[Any], projections: list[Any]) -> float:
    started = time.perf_counter()
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        for start in range(0, len(registrations), COPY_CHUNK):
            end = start + COPY_CHUNK
            await copy_onboardings(conn, registrations[start:end], projections[start:end])
        await analyze(conn)
    finally:
        await conn.close()
    return time.perf_counter() - started


def serve(url: str, key: str, port: int) -> subprocess.Popen[bytes]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FIRSTVALUE_")}
    environment |= {
        "FIRSTVALUE_DATABASE_URL": url,
        "FIRSTVALUE_API_KEYS": f"bench:read:{key}",
        "FIRSTVALUE_API_HOST": "127.0.0.1",
        "FIRSTVALUE_INGEST_AUTH": "open",  # no HTTP ingest here (no Kafka): nothing to open
        "FIRSTVALUE_ALLOW_NON_DURABLE_DATABASE": "true",  # the bench database is disposable
    }
    firstvalue = Path(sys.executable).with_name("firstvalue")
    return subprocess.Popen(
        [str(firstvalue), "api", "--port", str(port)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


# --- the load generator: runs in its own process --------------------------------------


def _paths(endpoint: str, ids: list[str], csms: list[str], rng: random.Random) -> str:
    if endpoint == "list":
        return rng.choice(
            [
                "/v1/onboardings?limit=50",
                "/v1/onboardings?limit=50&segment=smb",
                f"/v1/onboardings?limit=50&csm={rng.choice(csms).replace(' ', '%20')}",
                "/v1/onboardings?limit=50&breach=severe",
            ]
        )
    if endpoint == "detail":
        return f"/v1/onboardings/{rng.choice(ids)}"
    return f"/v1/reports/ttfv?group_by={rng.choice(['segment', 'cohort', 'csm', 'plan'])}"


class Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol for GETs.

    The load generator shares the 2 cores with the API and PostgreSQL: a client that parses
    only the status line and ``Content-Length`` costs a fraction of a full HTTP client's CPU,
    so the figures are the server's, not the generator's.
    """

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port = host, port
        self.head = f"Host: {host}:{port}\r\nAuthorization: Bearer {key}\r\n\r\n".encode()

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def get(self, path: str) -> tuple[int, bytes]:
        self.writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\n" + self.head)
        headers = await self.reader.readuntil(b"\r\n\r\n")
        status = int(headers[9:12])
        length = 0
        for line in headers.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def drive(
    base: str,
    key: str,
    endpoint: str,
    targets: dict[str, list[str]],
    seconds: float,
    concurrency: int,
    fresh: bool = False,
) -> dict[str, Any]:
    """``fresh``: a new connection per request (its connect counted in the latency)."""
    host, port = base.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors = 0
    ids, csms = targets["ids"], targets["csms"]

    async def worker(n: int, stop: float) -> None:
        nonlocal errors
        rng = random.Random(n)
        connection = Connection(host, int(port), key)
        if not fresh:
            await connection.open()
        try:
            while time.perf_counter() < stop:
                path = _paths(endpoint, ids, csms, rng)
                started = time.perf_counter()
                if fresh:
                    await connection.open()
                status, body = await connection.get(path)
                if fresh:
                    connection.close()
                latencies.append(time.perf_counter() - started)
                if status != 200 or not body:
                    errors += 1
        finally:
            if not fresh:
                connection.close()

    await asyncio.gather(*(worker(n, time.perf_counter() + 2) for n in range(concurrency)))
    warm_up = len(latencies)
    latencies.clear()  # two seconds of warm-up (connections, caches) are not counted
    errors = 0
    began = time.perf_counter()
    await asyncio.gather(*(worker(n, began + seconds) for n in range(concurrency)))
    wall = time.perf_counter() - began
    ordered = sorted(latencies)
    return {
        "endpoint": endpoint,
        "fresh": fresh,
        "requests": len(ordered),
        "sent": warm_up + len(ordered),  # warm-up included: what the server's CPU time served
        "errors": errors,
        "concurrency": concurrency,
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "max_ms": 1000 * ordered[-1],
        "rps": len(ordered) / wall,
    }


def run_driver(
    base: str,
    key: str,
    endpoint: str,
    ids_file: Path,
    seconds: float,
    concurrency: int,
    fresh: bool = False,
) -> dict[str, Any]:
    """The load generator in a second process (its own interpreter and event loop)."""
    output = subprocess.run(
        [
            sys.executable,
            __file__,
            "--drive",
            base,
            "--key",
            key,
            "--endpoint",
            endpoint,
            "--ids",
            str(ids_file),
            "--seconds",
            str(seconds),
            "--concurrency",
            str(concurrency),
            *(["--fresh"] if fresh else []),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(output.stdout.strip().splitlines()[-1])
    return result


def _print_results(results: list[dict[str, Any]]) -> None:
    print(
        f"\n{'endpoint':<8} {'conc':>4} {'conn':>5} {'requests':>9} {'errors':>6} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8} {'req/s':>8}"
        + (f" {'CPU ms/req':>10}" if any("cpu_ms" in r for r in results) else "")
    )
    for r in results:
        connection = "fresh" if r.get("fresh") else "kept"
        print(
            f"{r['endpoint']:<8} {r['concurrency']:>4} {connection:>5} {r['requests']:>9} "
            f"{r['errors']:>6} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['max_ms']:>8.1f} "
            f"{r['rps']:>8.1f}" + (f" {r['cpu_ms']:>10.2f}" if "cpu_ms" in r else "")
        )


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def measure_embedded(label: str, seconds: float, code: Path | None) -> list[dict[str, Any]]:
    """The embedded server (``firstvalue run``, as ``make run`` starts it), under load."""
    with tempfile.TemporaryDirectory() as folder:
        print(f"\nembedded server ({label}): starting `firstvalue run` ... ({_load()})")
        with embedded(Path(folder), free_port(), code) as server:
            auth = {"Authorization": f"Bearer {server.key}"}
            items = _all_onboardings(server.base, auth)
            targets = {
                "ids": [i["onboarding_id"] for i in items],
                "csms": sorted({i["csm"] for i in items if i["csm"]}),
            }
            print(f"demo data: {len(items)} onboardings, {len(targets['csms'])} CSMs")
            ids_file = Path(folder) / "targets.json"
            ids_file.write_text(json.dumps(targets))
            results = []
            for endpoint, conc, fresh in EMBEDDED_RUNS:
                used = cpu_seconds(server.pid)
                result = run_driver(
                    server.base, server.key, endpoint, ids_file, seconds, conc, fresh
                )
                # The server's CPU per request: less sensitive to other load than latency is
                # (the demo's own background work, ~2 ms a second, is included).
                result["cpu_ms"] = 1000 * (cpu_seconds(server.pid) - used) / result["sent"]
                results.append(result)
        print(f"done ({_load()})")
    _print_results(results)
    for r in results:
        if r["concurrency"] == 50:
            verdict = "meets" if r["p99_ms"] < EMBEDDED_P99_MS else "MISSES"
            print(f"{r['endpoint']} p99 at 50 connections {r['p99_ms']:.1f} ms {verdict} < 200 ms")
    for endpoint in ("list", "detail"):
        kept, fresh = (
            next(r for r in results if r["endpoint"] == endpoint and r["concurrency"] == 1
                 and r["fresh"] is f)
            for f in (False, True)
        )  # fmt: skip
        ratio = kept["p50_ms"] / fresh["p50_ms"]
        verdict = "meets" if ratio <= 2 else "MISSES"
        print(f"{endpoint} keep-alive p50 / fresh p50 = {ratio:.2f} {verdict} <= 2")
    return results


def _all_onboardings(base: str, auth: dict[str, str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 200} | ({"cursor": cursor} if cursor else {})
        page = httpx.get(f"{base}/v1/onboardings", params=params, headers=auth, timeout=30).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def main(count: int, seconds: float) -> None:
    server_url = env("FIRSTVALUE_TEST_DATABASE_URL")
    now = datetime.now(UTC)
    print(describe(await server_version(server_url)))
    templates = await template_states()
    print(
        f"template states: {sum(len(v) for v in templates.values())} "
        f"({', '.join(f'{k} {len(v)}' for k, v in sorted(templates.items()))})"
    )
    registrations, projections = rows(count, templates, now)
    async with fresh_database(server_url) as url:
        loaded = await bulk_load(url, registrations, projections)
        print(f"bulk-loaded {count:,} onboardings with COPY in {loaded:.1f} s")
        key = "fv_bench_" + secrets.token_urlsafe(16)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = serve(url, key, port)
        try:
            wait_ready(base, server, "firstvalue api")
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as ids_file:
                json.dump({"ids": [p[0] for p in projections], "csms": CSMS}, ids_file)
            results = []
            for endpoint, concurrency in CONCURRENCY:
                result = run_driver(base, key, endpoint, Path(ids_file.name), seconds, concurrency)
                results.append(result)
            os.unlink(ids_file.name)
        finally:
            server.terminate()
            server.wait(timeout=30)
    _print_results(results)
    by_name = {r["endpoint"]: r for r in results}
    for name, target in TARGETS_MS.items():
        verdict = "meets" if by_name[name]["p99_ms"] < target else "MISSES"
        print(f"{name} p99 {by_name[name]['p99_ms']:.1f} ms {verdict} the {target:.0f} ms target")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onboardings", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=20.0, help="per endpoint")
    parser.add_argument("--drive", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--ids", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=8, help=argparse.SUPPRESS)
    parser.add_argument("--fresh", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--embedded-only", action="store_true", help="only the embedded server (no servers)"
    )
    parser.add_argument("--embedded-seconds", type=float, default=10.0, help="per run")
    parser.add_argument(
        "--reference", type=Path, help="also measure the embedded server of this checkout"
    )
    args = parser.parse_args()
    if args.drive:
        targets = json.loads(Path(args.ids).read_text())
        result = uvloop.run(
            drive(
                args.drive,
                args.key,
                args.endpoint,
                targets,
                args.seconds,
                args.concurrency,
                args.fresh,
            )
        )
        print(json.dumps(result))
        return
    if not args.embedded_only:
        asyncio.run(main(args.onboardings, args.seconds))
    if args.reference is not None:
        measure_embedded(f"reference: {args.reference}", args.embedded_seconds, args.reference)
    measure_embedded("this code", args.embedded_seconds, None)


if __name__ == "__main__":
    cli()
