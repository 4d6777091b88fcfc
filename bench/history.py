"""Projection cost against an account's history: one enterprise onboarding whose account has
N stored events, and a sustained run through Kafka beside 1,000 ordinary accounts.

  deploy/local/with-servers.sh .venv/bin/python bench/history.py      (or: make bench)
      [--sizes 1000,10000,100000,300000,1000000] [--sustained-seconds 300]
  quick:  … bench/history.py --sizes 1000,10000 --sustained-seconds 30

1. Per N, a fresh database: one ``enterprise`` onboarding whose account has N stored events
   (COPY): 50 users over 90 days, 80 % "Page Viewed", 20 % the events the enterprise plan's
   rules name, shaped so that the onboarding is mid-way (kickoff and setup exited, first
   value reached on day 70, ``records_created``, ``team_adoption`` and the sponsor's sign-off
   open). The rows are what ingest stores for these Segment messages (its own decoding);
   what the insert derives beside them (sequence rows, daily activity summaries) is rebuilt
   once, then the onboarding projected once (``prepare_loaded_history``).
   Then, each repeated (one untimed warm-up; at least 3, at most ``--repetitions``, within
   ``--budget-seconds`` per figure), with medians and p99 and each against N = 1K as a ratio:
   - batch: 100 new events stored by ingest's storage code (``ingest_messages``, one
     transaction), then the milestones consumer's handling of their ``onboarding.facts``
     notice (``handle_batch``: projection, commit, outbox relayed to an in-memory bus);
   - as_of: ``GET /v1/onboardings/{id}?as_of=…`` (the moment of the last batch: the whole
     history counts) from an HTTP client to ``firstvalue api`` in its own process;
   - tick: the timer loop's tick (``timers.fire_due``) at the onboarding's stored next due
     moment, each tick at the next one (moved there by the bench when none is stored).
   After the batches and after the ticks, the stored projection and the ``as_of`` fold must
   equal ``evaluate`` over all the onboarding's facts (``check_state``; else the bench
   reports it and exits 1).
   At the largest N, the bytes one stored event costs: every table's ``pg_total_relation_size``
   (heap, TOAST and indexes) over the number of stored events.
2. Sustained: ``firstvalue ingest`` and ``firstvalue milestones`` as separate processes on the
   broker's ``analytics.events``/``onboarding.facts``. One hot enterprise account (with
   ``--hot-history`` stored events to begin with) streams 200 events/s for
   ``--sustained-seconds``, beside 1,000 ordinary onboardings (100 stored events each, plan mix
   55/30/15 %) streaming 20 events/s between them. Event → projection latency: every event
   carries its production time as its timestamp; the bench polls the stored projections'
   ``signals.last_event_at`` (the latest event the stored state has counted) every 50 ms, and
   an event counts as projected at the first poll that returns a value at or after its
   timestamp (one account's events are stored in order, so that state has counted it). The
   latency includes publishing (acks=all), ingest, the notice, the projection's commit and up
   to one poll interval. p50/p99 per minute of production time. Once the services stop, the
   stored projections of the hot account and a few ordinary ones must equal ``evaluate`` at
   the moment each was made.

The calls into firstvalue's projection code are the adapter functions right below: when the
projection changes shape, they are what to adapt. Results and commands: bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import orjson
from lab.api_server import api_process
from lab.events import copy_events, copy_identities, stored_rows
from lab.machine import describe, load_average
from lab.onboardings import copy_registrations
from lab.postgres import asyncpg_dsn, fresh_database, server_version
from lab.servers import env, service_environment
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from firstvalue.replay import replay_all
from services.ingest.consumer import IngestOptions, ingest_messages
from services.milestones.consumer import handle_batch
from services.milestones.timers import fire_due
from shared.analytics.normalize import partition_key
from shared.analytics.registration import contract_terms, registration
from shared.bus import topics
from shared.bus.bus import Bus, Message
from shared.bus.kafka import KafkaBus
from shared.bus.memory import MemoryBus
from shared.bus.messages import FactsNotice
from shared.domain.codec import state_to_dict
from shared.domain.evaluate import evaluate
from shared.domain.plans import Plan
from shared.plan_files import default_plans
from shared.projection.folded import state_as_of
from shared.storage import activity_days
from shared.storage.engine import create_engine, create_sessionmaker
from shared.storage.onboardings import OnboardingRepository
from shared.storage.projections import ProjectionRepository

Sessions = async_sessionmaker[AsyncSession]

# --- adapter: every call into firstvalue's projection path ------------------------------
# The projection's internals may change (summary tables, renamed functions); these few
# functions are the bench's only contact with them.


async def prepare_loaded_history(
    sessions: Sessions, plans: Mapping[str, Plan], account_ids: Collection[str], now: datetime
) -> int:
    """After the COPY: derive what the pipeline would have derived from the loaded rows. The
    rows carry their insert number (``lab.events.LOADED_SEQ``); ``activity_days.rebuild``
    makes the accounts' ``account_sequences`` rows, daily ``activity_days`` summaries and
    their ``activity_marks`` in one transaction (docs/projection.md, "Bulk loads"); then
    every onboarding is projected, as ``firstvalue replay`` does. Returns how many
    onboardings were projected."""
    async with sessions() as session, session.begin():
        await activity_days.rebuild(session, account_ids)
    return await replay_all(sessions, plans, now)


DERIVED_TABLES = ("account_sequences", "activity_days", "activity_marks", "onboarding_projections")


async def analyze_derived(conn: Any) -> None:
    """VACUUM ANALYZE the tables ``prepare_loaded_history`` filled, as ``load_accounts`` does
    the loaded ones, so the planner knows their sizes."""
    for table in DERIVED_TABLES:
        await conn.execute(f"VACUUM ANALYZE {table}")


async def discard_batches(
    conn: Any,
    sessions: Sessions,
    plans: Mapping[str, Plan],
    account_ids: Collection[str],
    loaded_at: datetime,
    now: datetime,
) -> None:
    """Back to the loaded history, so that each timed batch meets N stored events, not N
    plus earlier batches: the batches' events deleted, their summaries rebuilt from the
    events left, the fold records dropped (a prior counted the deleted events, and the
    deletion leaves no trace the fold could notice), every onboarding re-projected at ``now``
    from nothing. The accounts' insert numbers only move on."""
    await conn.execute("DELETE FROM events WHERE recorded_at > $1", loaded_at)
    await conn.execute("UPDATE onboarding_projections SET fold = NULL")
    await prepare_loaded_history(sessions, plans, account_ids, now)


async def store_batch(
    sessions: Sessions, options: IngestOptions, messages: Sequence[dict[str, Any]], now: datetime
) -> list[FactsNotice]:
    """Ingest's storage of one batch (decode, attribute, dedupe, insert) in one transaction;
    the ``onboarding.facts`` notices ingest would publish for it."""
    async with sessions() as session, session.begin():
        result = await ingest_messages(session, messages, options, received_at=now)
    if result.rejected:
        raise AssertionError(f"ingest refused {len(result.rejected)} generated events")
    return result.notices()


async def apply_batch(
    sessions: Sessions,
    bus: Bus,
    plans: Mapping[str, Plan],
    notices: Sequence[FactsNotice],
    now: datetime,
) -> int:
    """The milestones consumer's handling of a batch of notices: project the onboardings
    they concern, commit, relay the outbox. Returns how many were projected."""
    return await handle_batch(NoticeBatch(notices, now), bus, sessions, plans, now)


async def timer_tick(sessions: Sessions, bus: Bus, plans: Mapping[str, Plan], now: datetime) -> int:
    """One tick of the timer loop at ``now``; how many onboardings it re-evaluated."""
    return await fire_due(sessions, bus, plans, now)


async def as_of_read(client: httpx.AsyncClient, onboarding_id: str, moment: datetime) -> bytes:
    """The detail route with ``?as_of=`` (evaluated from the facts up to then)."""
    response = await client.get(
        f"/v1/onboardings/{onboarding_id}", params={"as_of": moment.isoformat()}
    )
    if response.status_code != 200:
        raise AssertionError(f"as_of read answered {response.status_code}: {response.text}")
    return response.content


async def check_state(
    sessions: Sessions, plans: Mapping[str, Plan], onboarding_id: str, now: datetime | None
) -> str | None:
    """Whether the stored projection (made at ``now``; None: at the moment it was made),
    and the ``as_of`` fold at that moment, equal ``evaluate`` (the definition of an
    onboarding's state) over every stored fact of the onboarding: a figure of a projection
    that drifted from it would measure the wrong thing. None when they do, else what differs."""
    async with sessions() as session:
        loaded = await OnboardingRepository(session).facts_for(onboarding_id)
        if loaded is None:
            return f"onboarding {onboarding_id} is not registered"
        registration, facts = loaded
        plan = plans[registration.plan_key]
        stored = await ProjectionRepository(session).state_dict(onboarding_id)
        if stored is None:
            return f"onboarding {onboarding_id} has no stored projection"
        moment = now or datetime.fromisoformat(stored["as_of"])
        expected = state_to_dict(evaluate(plan, registration, facts, moment))
        as_of = state_to_dict(await state_as_of(session, registration, plan, moment))
    for name, found in (("stored projection", stored), ("as_of fold", as_of)):
        if found != expected:
            fields = sorted(
                k for k in expected.keys() | found.keys() if found.get(k) != expected.get(k)
            )
            return (
                f"the {name} of {onboarding_id} at {moment.isoformat()} differs from evaluate "
                f"over its {len(facts):,} facts in {', '.join(fields)}:\n"
                + "\n".join(f"    {k}: {found.get(k)!r}\n != {expected.get(k)!r}" for k in fields)
            )
    return None


FAILED_CHECKS: list[str] = []


async def checked(
    sessions: Sessions, plans: Mapping[str, Plan], onboarding_id: str, now: datetime | None
) -> None:
    """``check_state``, reported at once; a failure also fails the bench at its end (exit 1)."""
    started = time.perf_counter()
    problem = await check_state(sessions, plans, onboarding_id, now)
    took = time.perf_counter() - started
    if problem is None:
        print(f"  check: {onboarding_id} equals evaluate over all its facts ({took:.1f} s)")
    else:
        FAILED_CHECKS.append(problem)
        print(f"  CHECK FAILED: {problem}", flush=True)


# What the stored projection exposes: its next due moment, and the latest event it counted
# (``signals.last_event_at``, also in the API's detail) per account.
NEXT_DUE_SQL = "SELECT next_due_at FROM onboarding_projections WHERE onboarding_id = $1"
FORCE_DUE_SQL = "UPDATE onboarding_projections SET next_due_at = $2 WHERE onboarding_id = $1"
LAST_EVENT_SQL = (
    "SELECT account_id, max(state->'signals'->>'last_event_at') FROM onboarding_projections"
    " WHERE account_id = ANY($1::text[]) GROUP BY account_id"
)

# --- the bench ---------------------------------------------------------------------------


class NoticeBatch:
    """``onboarding.facts`` notices as the consumer receives them (commit: nothing to do)."""

    def __init__(self, notices: Sequence[FactsNotice], now: datetime) -> None:
        self.messages = tuple(
            Message(topics.FACTS, 0, i, n.account_id, n.encode(), now)
            for i, n in enumerate(notices)
        )

    async def commit(self) -> None:
        return None


BATCH = 100
GROWTH = 0.05  # batches may add this share of N before the bench deletes them again
ADDED_SQL = "SELECT count(*) FROM events WHERE recorded_at > $1"
DEFAULT_SIZES = "1000,10000,100000,300000,1000000"
REFERENCE = 1000  # ratios are against this N (or the smallest size measured)
COPY_CHUNK = 50_000
DAY = timedelta(days=1)
# The enterprise account: 50 users over 90 days (days after contract signature).
USERS, DAYS = 50, 90.0
REGULAR = 20  # log in all along: at most ~22 weekly actives, so team_adoption (25) stays open
OCCASIONAL = 10  # one login each after go-live: 30 distinct users, users_logged_in completes
CREATORS = 15  # create records: records_created (20 users) stays open
SYNCED_DAY, GO_LIVE_DAY, REPORT_DAY = 21.0, 26.0, 70.0
FIXED_EVENTS = 1 + 10 + REGULAR + OCCASIONAL  # the contract and the milestone events
MIX = (
    ("Page Viewed", 0.80),
    ("Logged In", 0.10),
    ("Data Sync Completed", 0.03),
    ("Workflow Run", 0.03),
    ("Record Created", 0.03),
    ("Report Delivered", 0.01),
)
PATHS = ("/home", "/reports", "/records", "/settings", "/integrations", "/pipeline", "/team")
PLAN_MIX = (("smb", 0.55), ("mid_market", 0.30), ("enterprise", 0.15))
LIBRARY = {"name": "analytics-python", "version": "2.3.3"}


def _pick(x: float) -> str:
    """The event name of the mix at cumulative share ``x`` (0 ≤ x < 1)."""
    for name, share in MIX:
        if x < share:
            return name
        x -= share
    return MIX[0][0]


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds")


@dataclass
class Account:
    """One account's identity and how its users behave; makes Segment track messages."""

    account_id: str
    plan_key: str
    signed_at: datetime
    users: int
    rng: random.Random
    name: str = ""

    @property
    def onboarding_id(self) -> str:
        return registration(self.terms(), self.account_id, self.signed_at).onboarding_id

    def user(self, n: int) -> str:
        return f"{self.account_id}_u{n:02d}"

    def terms_properties(self) -> dict[str, Any]:
        return {
            "plan": self.plan_key,
            "csm": "Avery Chen",
            "champion_user_id": self.user(0),
            "licensed_seats": self.users,
            "account_name": self.name or self.account_id,
            "account_id": self.account_id,
        }

    def terms(self) -> Any:
        return contract_terms(self.terms_properties(), [self.plan_key])

    def message(
        self, at: datetime, user: str, event: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "type": "track",
            "userId": user,
            "event": event,
            "properties": properties,
            "context": {"groupId": self.account_id, "library": LIBRARY},
            "messageId": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "timestamp": _iso(at),
        }

    def contract(self) -> dict[str, Any]:
        return self.message(
            self.signed_at, self.user(0), "Contract Signed", self.terms_properties()
        )

    def registration_row(self, recorded_at: datetime) -> tuple[Any, ...]:
        r = registration(self.terms(), self.account_id, self.signed_at)
        return (
            r.onboarding_id, r.id, r.account_id, r.plan_key, r.at, r.csm, r.champion_user_id,
            r.licensed_seats, r.account_name, recorded_at,
        )  # fmt: skip

    def identity_rows(self) -> list[tuple[str, str, datetime]]:
        return [(self.user(n), self.account_id, self.signed_at) for n in range(self.users)]


class Enterprise(Account):
    """The mid-way enterprise onboarding: fixed milestone events plus the random mix."""

    def milestone_messages(self) -> list[dict[str, Any]]:
        """Kickoff and setup complete (go-live day 26), training, 30 distinct logins after
        go-live, first report on day 70: independent of N, so every N has the same state."""
        at = self.at
        u = self.user
        fixed = [
            self.message(at(3), u(0), "Kickoff Call Completed", {}),
            self.message(at(8), u(0), "Success Criteria Agreed", {}),
            self.message(at(9), u(0), "Executive Sponsor Named", {}),
            self.message(at(14), u(1), "Integration Connected", {"connector": "salesforce"}),
            self.message(
                at(16), u(1), "Data Sync Completed", {"status": "failed", "error": "timeout"}
            ),
            self.message(at(SYNCED_DAY), u(1), "Data Sync Completed", {"status": "success"}),
            self.message(
                at(20), u(1), "Workflow Run", {"environment": "sandbox", "workflow": "lead routing"}
            ),
            self.message(
                at(GO_LIVE_DAY),
                u(1),
                "Workflow Run",
                {"environment": "production", "workflow": "lead routing"},
            ),
            self.message(at(30), u(0), "Training Completed", {}),
            self.message(at(REPORT_DAY), u(0), "Report Delivered", {"report": "weekly pipeline"}),
        ]
        for n in range(REGULAR):
            fixed.append(
                self.message(at(GO_LIVE_DAY + 1 + n * 0.5), u(n), "Logged In", {"method": "sso"})
            )
        for k in range(OCCASIONAL):
            fixed.append(
                self.message(
                    at(GO_LIVE_DAY + 2 + 3 * k), u(REGULAR + k), "Logged In", {"method": "password"}
                )
            )
        return fixed

    def at(self, day: float) -> datetime:
        return self.signed_at + day * DAY

    def random_message(self, at: datetime) -> dict[str, Any]:
        """One event of the mix at ``at`` (after go-live: production runs, good syncs)."""
        rng = self.rng
        day = (at - self.signed_at) / DAY
        name = _pick(rng.random())
        if name == "Record Created" and day < GO_LIVE_DAY:
            name = "Page Viewed"
        if name == "Report Delivered" and day < REPORT_DAY:
            name = "Page Viewed"
        if name == "Page Viewed":
            return self.message(
                at, self.user(rng.randrange(USERS)), name, {"path": rng.choice(PATHS)}
            )
        if name == "Logged In":
            return self.message(
                at,
                self.user(rng.randrange(REGULAR)),
                name,
                {"method": rng.choice(("sso", "password"))},
            )
        if name == "Data Sync Completed":
            ok = day >= SYNCED_DAY and rng.random() > 0.05
            props = {"status": "success"} if ok else {"status": "failed", "error": "auth_expired"}
            return self.message(at, self.user(1), name, props)
        if name == "Workflow Run":
            environment = "production" if day >= GO_LIVE_DAY else "sandbox"
            return self.message(
                at,
                self.user(rng.randrange(3)),
                name,
                {"environment": environment, "workflow": "lead routing"},
            )
        if name == "Record Created":
            return self.message(
                at,
                self.user(rng.randrange(CREATORS)),
                name,
                {"record_type": rng.choice(("deal", "contact"))},
            )
        return self.message(at, self.user(0), name, {"report": "weekly pipeline"})

    def history(self, count: int) -> Iterator[dict[str, Any]]:
        """``count`` messages in time order (at least ``FIXED_EVENTS``): the contract, the
        milestone events, the mix."""
        fixed = [self.contract(), *self.milestone_messages()]
        assert len(fixed) == FIXED_EVENTS
        moments = sorted(self.at(self.rng.uniform(0.01, DAYS)) for _ in range(count - len(fixed)))
        stream = (self.random_message(at) for at in moments)
        pending = sorted(fixed, key=lambda m: m["timestamp"])
        for message in stream:
            while pending and pending[0]["timestamp"] <= message["timestamp"]:
                yield pending.pop(0)
            yield message
        yield from pending


class Ordinary(Account):
    """An ordinary account: a few users looking in and logging in now and then."""

    def random_message(self, at: datetime) -> dict[str, Any]:
        rng = self.rng
        user = self.user(rng.randrange(self.users))
        if rng.random() < 0.2:
            return self.message(at, user, "Logged In", {"method": "sso"})
        return self.message(at, user, "Page Viewed", {"path": rng.choice(PATHS)})

    def history(self, count: int, now: datetime) -> Iterator[dict[str, Any]]:
        yield self.contract()
        age = (now - self.signed_at) / DAY
        for day in sorted(self.rng.uniform(0.01, age) for _ in range(count - 1)):
            yield self.random_message(self.signed_at + day * DAY)


async def load_accounts(
    url: str, accounts: Sequence[tuple[Account, Iterator[dict[str, Any]]]], recorded_at: datetime
) -> tuple[int, float]:
    """COPY registrations, identities and each account's messages as ingest stores them;
    VACUUM ANALYZE after. Returns (events stored, seconds)."""
    options = IngestOptions(plan_keys=frozenset(default_plans()))
    started = time.perf_counter()
    stored = 0
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await copy_registrations(conn, [a.registration_row(recorded_at) for a, _ in accounts])
        await copy_identities(conn, [row for a, _ in accounts for row in a.identity_rows()])
        chunk: list[dict[str, Any]] = []
        for _, messages in accounts:
            for message in messages:
                chunk.append(message)
                if len(chunk) == COPY_CHUNK:
                    await copy_events(conn, stored_rows(chunk, recorded_at, options))
                    stored += len(chunk)
                    chunk.clear()
                    print(f"  loaded {stored:,} events", end="\r", file=sys.stderr, flush=True)
        if chunk:
            await copy_events(conn, stored_rows(chunk, recorded_at, options))
            stored += len(chunk)
        print(file=sys.stderr)
        for table in ("onboardings", "identities", "events"):
            await conn.execute(f"VACUUM ANALYZE {table}")
    finally:
        await conn.close()
    return stored, time.perf_counter() - started


# --- part 1: cost against N ---------------------------------------------------------------


@dataclass
class Timings:
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p99(self) -> float:
        """Nearest rank (with fewer than 100 samples, the largest)."""
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, max(0, int(len(ordered) * 0.99 + 0.5) - 1))]


@dataclass
class SizeResult:
    n: int
    stored: int
    load_s: float
    prepare_s: float
    store: Timings
    project: Timings
    batch: Timings
    as_of: Timings
    tick: Timings
    forced_ticks: int
    sizes: list[tuple[str, int, int, int]] = field(default_factory=list)
    events_after: int = 0


async def repeat(
    run: Callable[[int], Awaitable[float | tuple[float, ...]]], repetitions: int, budget: float
) -> list[tuple[float, ...]]:
    """One untimed warm-up, then at least 3 and at most ``repetitions`` timed runs, fewer
    once ``budget`` seconds are spent (the largest histories take seconds per run)."""
    await run(0)
    results: list[tuple[float, ...]] = []
    started = time.perf_counter()
    for i in range(1, repetitions + 1):
        value = await run(i)
        results.append(value if isinstance(value, tuple) else (value,))
        if len(results) >= 3 and time.perf_counter() - started > budget:
            break
    return results


async def measure_size(server: str, n: int, args: argparse.Namespace, largest: bool) -> SizeResult:
    plans = default_plans()
    options = IngestOptions(plan_keys=frozenset(plans))
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    account = Enterprise(
        f"acct_hist_{n}", "enterprise", end - DAYS * DAY, USERS, random.Random(n), "History Corp"
    )
    onboarding_id = account.onboarding_id
    async with fresh_database(server) as url:
        print(f"N = {n:,}: loading…", flush=True)
        stored, load_s = await load_accounts(url, [(account, account.history(n))], end)
        engine = create_engine(url, application_name="bench-history")
        sessions = create_sessionmaker(engine)
        bus = MemoryBus()
        await bus.start()
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            started = time.perf_counter()
            await prepare_loaded_history(sessions, plans, [account.account_id], end)
            await analyze_derived(conn)
            prepare_s = time.perf_counter() - started
            clock = end

            async def back_to_n() -> None:
                """The batches stored so far grew the history by more than 5 %: undo them."""
                added = int(await conn.fetchval(ADDED_SQL, end))
                if added > n * GROWTH:
                    await discard_batches(conn, sessions, plans, [account.account_id], end, clock)

            async def batch(_: int) -> tuple[float, float, float]:
                nonlocal clock
                await back_to_n()
                clock += timedelta(seconds=10)
                messages = [
                    account.random_message(clock - timedelta(seconds=account.rng.uniform(0, 10)))
                    for _ in range(BATCH)
                ]
                t0 = time.perf_counter()
                notices = await store_batch(sessions, options, messages, clock)
                t1 = time.perf_counter()
                projected = await apply_batch(sessions, bus, plans, notices, clock)
                t2 = time.perf_counter()
                if projected != 1:
                    raise AssertionError(f"a batch projected {projected} onboardings, not 1")
                return t1 - t0, t2 - t1, t2 - t0

            print(f"  N = {n:,}: batches…", flush=True)
            batches = await repeat(batch, args.repetitions, args.budget_seconds)

            key = "fv_bench_" + secrets.token_urlsafe(16)
            async with (
                api_process(url, key) as base,
                httpx.AsyncClient(
                    base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=600
                ) as client,
            ):

                async def read(_: int) -> float:
                    t0 = time.perf_counter()
                    await as_of_read(client, onboarding_id, clock)
                    return time.perf_counter() - t0

                await back_to_n()
                await checked(sessions, plans, onboarding_id, clock)
                state = orjson.loads(await as_of_read(client, onboarding_id, clock))
                print(f"  N = {n:,}: {describe_state(state)}", flush=True)
                print(f"  N = {n:,}: as_of reads…", flush=True)
                reads = await repeat(read, args.repetitions, args.budget_seconds)

            forced = 0

            async def tick(_: int) -> float:
                nonlocal clock, forced
                due = await conn.fetchval(NEXT_DUE_SQL, onboarding_id)
                if due is None or due <= clock:
                    due = clock + timedelta(hours=1)
                    await conn.execute(FORCE_DUE_SQL, onboarding_id, due)
                    forced += 1
                clock = due
                t0 = time.perf_counter()
                fired = await timer_tick(sessions, bus, plans, clock)
                elapsed = time.perf_counter() - t0
                if fired != 1:
                    raise AssertionError(f"a tick re-evaluated {fired} onboardings, not 1")
                return elapsed

            await back_to_n()
            print(f"  N = {n:,}: timer ticks…", flush=True)
            ticks = await repeat(tick, args.repetitions, args.budget_seconds)
            await checked(sessions, plans, onboarding_id, clock)
            result = SizeResult(
                n=n,
                stored=stored,
                load_s=load_s,
                prepare_s=prepare_s,
                store=Timings([b[0] for b in batches]),
                project=Timings([b[1] for b in batches]),
                batch=Timings([b[2] for b in batches]),
                as_of=Timings([r[0] for r in reads]),
                tick=Timings([t[0] for t in ticks]),
                forced_ticks=forced,
            )
            if largest:
                await conn.execute("VACUUM ANALYZE")
                result.sizes = await relation_sizes(conn)
            result.events_after = int(await conn.fetchval("SELECT count(*) FROM events"))
        finally:
            await conn.close()
            await bus.stop()
            await engine.dispose()
    return result


def describe_state(detail: dict[str, Any]) -> str:
    """Where the onboarding stands (the API's detail): stage and milestones done / open."""
    milestones = detail.get("milestones", [])
    done = [m["key"] for m in milestones if m.get("completed_at")]
    open_ = [m["key"] for m in milestones if not m.get("completed_at")]
    return (
        f"stage {detail.get('current_stage')}, {len(done)} milestones complete, "
        f"open: {', '.join(open_) or 'none'}"
    )


async def relation_sizes(conn: Any) -> list[tuple[str, int, int, int]]:
    """Every table with rows: (name, total bytes incl. TOAST and indexes, index bytes, rows)."""
    rows = await conn.fetch(
        "SELECT c.relname, pg_total_relation_size(c.oid) AS total, pg_indexes_size(c.oid) AS ix"
        " FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace"
        " WHERE s.nspname = 'public' AND c.relkind = 'r' ORDER BY total DESC"
    )
    sizes = []
    for r in rows:
        count = int(await conn.fetchval(f'SELECT count(*) FROM "{r["relname"]}"'))
        if count:
            sizes.append((str(r["relname"]), int(r["total"]), int(r["ix"]), count))
    return sizes


def report_sizes(results: Sequence[SizeResult]) -> None:
    ref = next((r for r in results if r.n == REFERENCE), results[0])
    print(f"\nCost against the account's history (ratios against N = {ref.n:,}):")
    head = (
        f"{'N':>10} {'store ms':>18} {'project ms':>18} {'batch ms':>18} {'×':>11}"
        f" {'tick ms':>18} {'×':>11} {'as_of ms':>18} {'×':>11} {'runs':>8}"
    )
    print(head)
    for r in results:
        runs = f"{len(r.batch.samples)}/{len(r.tick.samples)}/{len(r.as_of.samples)}"
        print(
            f"{r.n:>10,} {_mp(r.store):>18} {_mp(r.project):>18} {_mp(r.batch):>18} "
            f"{_ratio(r.batch, ref.batch):>11} {_mp(r.tick):>18} {_ratio(r.tick, ref.tick):>11} "
            f"{_mp(r.as_of):>18} {_ratio(r.as_of, ref.as_of):>11} {runs:>8}"
        )
    print(
        "  (each cell: median / p99 in ms; × = median ratio / p99 ratio; runs = batch/tick/as_of)"
    )
    for r in results:
        print(
            f"  N = {r.n:,}: loaded {r.stored:,} events in {r.load_s:.1f} s "
            "(COPY + VACUUM ANALYZE), "
            f"prepared in {r.prepare_s:.1f} s; {r.events_after:,} events at the end; "
            f"{r.forced_ticks} tick moment(s) set by the bench (no stored due moment)"
        )
    largest = results[-1]
    print("\nAcceptance:")
    print(
        f"  batch at N = {largest.n:,}: {largest.batch.median / ref.batch.median:.2f}× the "
        f"N = {ref.n:,} median (target ≤ 2×)"
    )
    print(
        f"  tick at N = {largest.n:,}: {largest.tick.median / ref.tick.median:.2f}× the "
        f"N = {ref.n:,} median (target ≤ 2×)"
    )
    at_300k = next((r for r in results if r.n == 300_000), None)
    if at_300k is not None:
        verdict = "meets" if at_300k.as_of.p99 < 1.0 else "MISSES"
        print(f"  as_of at N = 300,000: p99 {at_300k.as_of.p99 * 1000:.0f} ms ({verdict} < 1 s)")
    if largest.sizes:
        events = next(s for s in largest.sizes if s[0] == "events")
        count = events[3]
        print(f"\nStorage at N = {largest.n:,} ({count:,} stored events):")
        print(
            f"  {'table':<28} {'total MB':>10} {'indexes MB':>11} {'rows':>11} {'bytes/event':>12}"
        )
        for name, total, ix, rows in largest.sizes:
            print(
                f"  {name:<28} {total / 1e6:>10.1f} {ix / 1e6:>11.1f} {rows:>11,} "
                f"{total / count:>12.0f}"
            )
        every = sum(s[1] for s in largest.sizes)
        print(
            f"  events table + indexes: {events[1] / count:.0f} bytes per stored event "
            f"(indexes {events[2] / count:.0f}); every table: {every / count:.0f}"
        )


def _mp(t: Timings) -> str:
    return f"{t.median * 1000:.1f} / {t.p99 * 1000:.1f}"


def _ratio(t: Timings, ref: Timings) -> str:
    return f"{t.median / ref.median:.1f} / {t.p99 / ref.p99:.1f}"


# --- part 2: sustained run through Kafka --------------------------------------------------


POLL_SECONDS = 0.05
TICK_SECONDS = 0.05  # the producer's pace: a publish every 50 ms


@dataclass
class Latencies:
    """Event → projection latencies by minute of production, hot and ordinary apart."""

    hot: dict[int, list[float]] = field(default_factory=dict)
    ordinary: dict[int, list[float]] = field(default_factory=dict)
    unseen_hot: int = 0
    unseen_ordinary: int = 0


class Tracker:
    """Produced events still waiting to be counted by a stored projection, per account."""

    def __init__(self, start: float, hot: str) -> None:
        self.start = start
        self.hot = hot
        self.pending: dict[str, deque[float]] = {}
        self.latencies = Latencies()

    def produced(self, account: str, at: float, count: int = 1) -> None:
        self.pending.setdefault(account, deque()).extend([at] * count)

    def seen(self, account: str, last: float, now: float) -> None:
        waiting = self.pending.get(account)
        buckets = self.latencies.hot if account == self.hot else self.latencies.ordinary
        while waiting and waiting[0] <= last:
            at = waiting.popleft()
            buckets.setdefault(int((at - self.start) // 60), []).append(now - at)
        if waiting is not None and not waiting:
            del self.pending[account]


async def poll(conn: Any, tracker: Tracker, stop: asyncio.Event) -> None:
    while not stop.is_set():
        accounts = list(tracker.pending)
        if accounts:
            rows = await conn.fetch(LAST_EVENT_SQL, accounts)
            now = time.time()
            for account, last in rows:
                if last is not None:
                    tracker.seen(account, datetime.fromisoformat(last).timestamp(), now)
        await asyncio.sleep(POLL_SECONDS)


def _service(name: str, url: str, servers: str, log: IO[bytes]) -> subprocess.Popen[bytes]:
    environment = service_environment(
        {
            "FIRSTVALUE_DATABASE_URL": url,
            "FIRSTVALUE_KAFKA_BOOTSTRAP_SERVERS": servers,
            "FIRSTVALUE_INGEST_METRICS_PORT": "0",
            "FIRSTVALUE_MILESTONES_METRICS_PORT": "0",
        }
    )
    firstvalue = Path(sys.executable).with_name("firstvalue")
    return subprocess.Popen([str(firstvalue), name], env=environment, stdout=log, stderr=log)


async def sustained(
    server: str, servers: str, args: argparse.Namespace
) -> tuple[Latencies, dict[str, Any]]:
    plans = default_plans()
    now = datetime.now(UTC).replace(microsecond=0)
    rng = random.Random(99)
    hot = Enterprise(
        "acct_hot", "enterprise", now - DAYS * DAY, USERS, random.Random(1), "Hot Corp"
    )
    keys = [k for k, _ in PLAN_MIX]
    weights = [w for _, w in PLAN_MIX]
    ordinary = [
        Ordinary(
            f"acct_ord_{i:04d}",
            rng.choices(keys, weights)[0],
            now - rng.uniform(5, 60) * DAY,
            10,
            random.Random(1000 + i),
        )
        for i in range(args.ordinary_accounts)
    ]
    info: dict[str, Any] = {}
    async with fresh_database(server) as url:
        print(
            f"sustained: loading the hot account ({max(args.hot_history, FIXED_EVENTS):,} "
            "events) and "
            f"{len(ordinary):,} ordinary accounts ({args.ordinary_history} events each)…",
            flush=True,
        )
        loaded: list[tuple[Account, Iterator[dict[str, Any]]]] = [
            (hot, hot.history(args.hot_history))
        ]
        loaded += [(a, a.history(args.ordinary_history, now)) for a in ordinary]
        info["stored"], info["load_s"] = await load_accounts(url, loaded, now)
        engine = create_engine(url, application_name="bench-history")
        try:
            started = time.perf_counter()
            info["projected"] = await prepare_loaded_history(
                create_sessionmaker(engine), plans, [a.account_id for a, _ in loaded], now
            )
            conn = await asyncpg.connect(asyncpg_dsn(url))
            try:
                await analyze_derived(conn)
            finally:
                await conn.close()
            info["prepare_s"] = time.perf_counter() - started
            with tempfile.TemporaryFile() as ingest_log, tempfile.TemporaryFile() as milestones_log:
                processes = [
                    _service("ingest", url, servers, ingest_log),
                    _service("milestones", url, servers, milestones_log),
                ]
                try:
                    latencies = await _stream(url, servers, hot, ordinary, processes, args, info)
                finally:
                    for process in processes:
                        process.terminate()
                    for process in processes:
                        await asyncio.to_thread(process.wait, 60)
                    for name, log in (("ingest", ingest_log), ("milestones", milestones_log)):
                        log.seek(0)
                        lines = log.read().decode(errors="replace").splitlines()
                        errors = [
                            line for line in lines if " ERROR " in line or "Traceback" in line
                        ]
                        info[f"{name}_errors"] = len(errors)
                        if errors:
                            print(f"  {name} logged {len(errors)} error lines; last lines:")
                            print("\n".join("    " + line for line in lines[-20:]))
            if latencies.unseen_hot or latencies.unseen_ordinary:
                print("  check skipped: some events were never projected (see the report)")
            else:
                # The services are stopped: each stored projection is final, made at its as_of.
                sessions = create_sessionmaker(engine)
                for account in [hot, *ordinary[:: max(1, len(ordinary) // 4)]]:
                    await checked(sessions, plans, account.onboarding_id, None)
        finally:
            await engine.dispose()
    return latencies, info


async def _stream(
    url: str,
    servers: str,
    hot: Enterprise,
    ordinary: Sequence[Ordinary],
    processes: Sequence[subprocess.Popen[bytes]],
    args: argparse.Namespace,
    info: dict[str, Any],
) -> Latencies:
    bus = KafkaBus(servers, client_id="bench-history-producer")
    await bus.start()
    conn = await asyncpg.connect(asyncpg_dsn(url))
    stop = asyncio.Event()
    try:
        await _warm_up(bus, conn, hot, ordinary[0], processes)
        start = time.time()
        tracker = Tracker(start, hot.account_id)
        poller = asyncio.create_task(poll(conn, tracker, stop))
        print(
            f"sustained: streaming {args.hot_rate:g} events/s (hot) + {args.ordinary_rate:g} "
            f"events/s (ordinary) for {args.sustained_seconds:g} s…",
            flush=True,
        )
        rng = random.Random(5)
        sent_hot = sent_ordinary = 0
        while (elapsed := time.time() - start) < args.sustained_seconds:
            if any(p.poll() is not None for p in processes):
                raise RuntimeError("a firstvalue process exited during the sustained run")
            moment = datetime.fromtimestamp(round(time.time(), 3), UTC)
            stamp = moment.timestamp()
            records: list[tuple[str | None, bytes]] = []
            due_hot = int(elapsed * args.hot_rate) - sent_hot
            for _ in range(due_hot):
                records.append(_record(hot.random_message(moment)))
            if due_hot:
                tracker.produced(hot.account_id, stamp, due_hot)
            due_ordinary = int(elapsed * args.ordinary_rate) - sent_ordinary
            for _ in range(due_ordinary):
                chosen = rng.choice(ordinary)
                records.append(_record(chosen.random_message(moment)))
                tracker.produced(chosen.account_id, stamp)
            sent_hot += due_hot
            sent_ordinary += due_ordinary
            if records:
                await bus.publish_many(topics.EVENTS, records)
            await asyncio.sleep(max(0.0, TICK_SECONDS - (time.time() - stamp)))
        info["sent_hot"], info["sent_ordinary"] = sent_hot, sent_ordinary
        drain = time.monotonic() + args.drain_seconds
        while tracker.pending and time.monotonic() < drain:
            await asyncio.sleep(0.2)
        stop.set()
        await poller
        for account, waiting in tracker.pending.items():
            if account == hot.account_id:
                tracker.latencies.unseen_hot += len(waiting)
            else:
                tracker.latencies.unseen_ordinary += len(waiting)
        return tracker.latencies
    finally:
        stop.set()
        await conn.close()
        await bus.stop()


def _record(message: dict[str, Any]) -> tuple[str | None, bytes]:
    return partition_key(message), orjson.dumps(message)


async def _warm_up(
    bus: KafkaBus,
    conn: Any,
    hot: Enterprise,
    other: Ordinary,
    processes: Sequence[subprocess.Popen[bytes]],
    deadline: float = 180.0,
) -> None:
    """Both services joined their groups and project: one event each for two accounts,
    produced until both show in the stored projections."""
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        if any(p.poll() is not None for p in processes):
            raise RuntimeError("a firstvalue process exited while starting")
        moment = datetime.fromtimestamp(round(time.time(), 3), UTC)
        await bus.publish_many(
            topics.EVENTS,
            [_record(hot.random_message(moment)), _record(other.random_message(moment))],
        )
        for _ in range(20):
            await asyncio.sleep(0.25)
            rows = await conn.fetch(LAST_EVENT_SQL, [hot.account_id, other.account_id])
            seen = [r for r in rows if r[1] and datetime.fromisoformat(r[1]) >= moment]
            if len(seen) == 2:
                return
    raise TimeoutError("the services did not project a warm-up event in time")


def report_sustained(latencies: Latencies, info: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"\nSustained run: {info['sent_hot']:,} hot + {info['sent_ordinary']:,} ordinary events in "
        f"{args.sustained_seconds:g} s; the hot account began with "
        f"{max(args.hot_history, FIXED_EVENTS):,} stored "
        f"events, {args.ordinary_accounts:,} ordinary accounts with {args.ordinary_history} each "
        f"(loaded {info['stored']:,} in {info['load_s']:.1f} s, {info['projected']:,} projected "
        f"in {info['prepare_s']:.1f} s)"
    )
    print(
        f"{'minute':>6} {'hot events':>10} {'hot p50 s':>10} {'hot p99 s':>10} {'hot max s':>10} "
        f"{'ordinary':>9} {'ord p50 s':>10} {'ord p99 s':>10}"
    )
    minutes = sorted(set(latencies.hot) | set(latencies.ordinary))
    p99s = []
    for minute in minutes:
        h = Timings(latencies.hot.get(minute, []))
        o = Timings(latencies.ordinary.get(minute, []))
        hot_cells = (
            f"{h.median:>10.3f} {h.p99:>10.3f} {max(h.samples):>10.3f}"
            if h.samples
            else f"{'-':>32}"
        )
        ord_cells = f"{o.median:>10.3f} {o.p99:>10.3f}" if o.samples else f"{'-':>21}"
        print(f"{minute + 1:>6} {len(h.samples):>10,} {hot_cells} {len(o.samples):>9,} {ord_cells}")
        if h.samples:
            p99s.append(h.p99)
    print(
        f"  never projected within {args.drain_seconds:g} s after the stream: "
        f"{latencies.unseen_hot:,} hot, {latencies.unseen_ordinary:,} ordinary events; "
        f"service error lines: ingest {info.get('ingest_errors', 0)}, "
        f"milestones {info.get('milestones_errors', 0)}"
    )
    if p99s:
        under = all(p < 2.0 for p in p99s)
        print(
            f"  hot p99 under 2 s in every minute: {'yes' if under else 'NO'}; "
            f"last minute / first minute p99: {p99s[-1] / p99s[0]:.2f}"
        )


# --- main -----------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> None:
    server = env("FIRSTVALUE_TEST_DATABASE_URL")
    sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    began = time.perf_counter()
    print(f"bench/history.py on {describe(await server_version(server))}")
    print(f"load average at start: {load_average()} (the machine is shared: it skews every figure)")
    print(f"command: {' '.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}", flush=True)
    results = []
    for n in sizes:
        results.append(await measure_size(server, n, args, largest=n == sizes[-1]))
        print(
            f"  N = {n:,} done ({time.perf_counter() - began:.0f} s so far; load {load_average()})"
        )
    if results:
        report_sizes(results)
    print(f"load average after the sizes: {load_average()}", flush=True)
    if args.sustained_seconds > 0:
        servers = env("FIRSTVALUE_TEST_KAFKA_BOOTSTRAP_SERVERS")
        latencies, info = await sustained(server, servers, args)
        report_sustained(latencies, info, args)
    print(
        f"\nload average at end: {load_average()}; whole bench {time.perf_counter() - began:.0f} s"
    )
    if FAILED_CHECKS:
        sys.exit(f"{len(FAILED_CHECKS)} projected states differ from evaluate over all their facts")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default=DEFAULT_SIZES,
        help=f"stored events N (default {DEFAULT_SIZES}; '' skips them)",
    )
    parser.add_argument("--repetitions", type=int, default=15, help="timed runs per figure at most")
    parser.add_argument(
        "--budget-seconds",
        type=float,
        default=20.0,
        help="after this many seconds on one figure, stop repeating (3 runs at least)",
    )
    parser.add_argument("--sustained-seconds", type=float, default=300.0, help="0 skips it")
    parser.add_argument("--hot-rate", type=float, default=200.0, help="hot account events/s")
    parser.add_argument(
        "--hot-history",
        type=int,
        default=100_000,
        help=f"hot account's stored events to begin with (at least {FIXED_EVENTS})",
    )
    parser.add_argument("--ordinary-accounts", type=int, default=1000)
    parser.add_argument("--ordinary-history", type=int, default=100, help="stored events each")
    parser.add_argument("--ordinary-rate", type=float, default=20.0, help="events/s, all together")
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=60.0,
        help="after the stream, how long to wait for the last events to be projected",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
