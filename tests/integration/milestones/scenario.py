"""Drive milestone-service instances on a real broker with an injectable clock.

A ``World`` holds the clock, the onboardings' scripted usage events (released to the
database and announced on ``onboarding.facts`` — ingest's output — when the clock reaches
them), manual facts recorded as the API records them, and an ``Observer`` that consumes
``onboarding.transitions`` and ``onboarding.escalations`` like a downstream system.
``advance(day)`` moves the clock and waits until the services have done everything due.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.milestones.service import run_service
from shared.bus import topics
from shared.bus.kafka import KafkaBus
from shared.bus.messages import FactsNotice
from shared.domain.evaluate import evaluate
from shared.domain.facts import EventObserved, OnboardingRegistered
from shared.domain.state import OnboardingState
from shared.domain.transitions import ESCALATION_TRANSITIONS, transitions
from shared.plan_files import default_plans
from shared.projection.manual import CommandFact, record_fact
from shared.projection.publisher import relay_outbox
from shared.storage import create_engine, create_sessionmaker
from shared.storage.events import EventRepository
from shared.storage.onboardings import OnboardingRepository
from shared.storage.outbox import OutboxRepository
from shared.storage.projections import ProjectionRepository
from shared.storage.tables import ProjectionRecord

from ..kafka.conftest import BusFactory
from ..kafka.harness import eventually

PLANS = default_plans()
SIGNED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
TICK_SECONDS = 0.05  # the timer interval in tests (30 s in production)


def day(n: float) -> datetime:
    return SIGNED + timedelta(days=n)


class Clock:
    """The services' ``now``: moved by the test, read by consumers and timers alike."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def usage(account: str, when: float, name: str, user: str = "u00", **props: Any) -> EventObserved:
    return EventObserved(f"{account}:{name}:{when}:{user}", account, user, name, day(when), props)


def kickoff(account: str, when: float = 1) -> list[EventObserved]:
    names = ("Kickoff Call Completed", "Success Criteria Agreed", "Executive Sponsor Named")
    return [usage(account, when, name) for name in names]


def setup(account: str, when: float) -> list[EventObserved]:
    return [
        usage(account, when - 2, "Integration Connected"),
        usage(account, when - 1, "Data Sync Completed", status="success"),
        usage(account, when, "Workflow Run", environment="production"),
    ]


def first_value(account: str, when: float) -> list[EventObserved]:
    """Training, 8 logins, 5 record creators, then the report on day ``when``."""
    return [
        usage(account, when - 3, "Training Completed"),
        *[usage(account, when - 2, "Logged In", f"u{n:02d}") for n in range(8)],
        *[usage(account, when - 1, "Record Created", f"u{n:02d}") for n in range(5)],
        usage(account, when, "Report Delivered"),
    ]


def chatter(account: str, until: float, every: float = 3) -> list[EventObserved]:
    """Page views by two users every few days, so the account is never silent."""
    found, n = [], every
    while n <= until:
        found += [usage(account, n, "Page Viewed", user) for user in ("u00", "u01")]
        n += every
    return found


def stalled(account: str, until: float) -> list[EventObserved]:
    """Kickoff done, the integration connected, then nothing more of setup."""
    return [*kickoff(account), usage(account, 4, "Integration Connected"), *chatter(account, until)]


@dataclass
class Instance:
    """One milestones service (consumer + timers) with its own bus and engine."""

    name: str
    bus: KafkaBus
    engine: AsyncEngine
    task: asyncio.Task[None]

    async def crash(self) -> None:
        """Stop it abruptly (cancel mid-work), as a killed process would stop."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.bus.stop()
        await self.engine.dispose()


async def start_instance(buses: BusFactory, url: str, clock: Clock, name: str) -> Instance:
    bus = await buses(name)
    engine = create_engine(url, application_name=name)
    sessions = create_sessionmaker(engine)
    service = run_service(bus, sessions, PLANS, interval_seconds=TICK_SECONDS, clock=clock)
    return Instance(name, bus, engine, asyncio.ensure_future(service))


class Observer:
    """A downstream system: reads both output topics in its own consumer group."""

    GROUP = "downstream"

    def __init__(self, bus: KafkaBus) -> None:
        self.bus = bus
        self.received: dict[str, list[dict[str, Any]]] = {
            topics.TRANSITIONS: [],
            topics.ESCALATIONS: [],
        }
        self._tasks = [asyncio.ensure_future(self._read(topic)) for topic in self.received]

    async def _read(self, topic: str) -> None:
        async with self.bus.subscribe(topic, self.GROUP) as subscription:
            async for batch in subscription:
                self.received[topic] += [orjson.loads(m.value) for m in batch.messages]
                await batch.commit()

    async def caught_up(self) -> None:
        async def read_all() -> bool:
            lags = [await self.bus.lag(topic, self.GROUP) for topic in self.received]
            for task in self._tasks:
                if task.done():
                    task.result()  # raises what stopped it
                    raise AssertionError("the downstream consumer stopped")
            return lags == [0, 0]

        await eventually(read_all, "the downstream consumer to read both topics")

    def of(self, topic: str, onboarding_id: str) -> list[dict[str, Any]]:
        return [m for m in self.received[topic] if m["onboarding_id"] == onboarding_id]

    def escalations(self, onboarding_id: str) -> list[tuple[str, str, int, datetime]]:
        return [
            (m["type"], m["rule_key"], m["level"], datetime.fromisoformat(m["at"]))
            for m in self.of(topics.ESCALATIONS, onboarding_id)
        ]

    def ids(self) -> Counter[str]:
        return Counter(m["id"] for found in self.received.values() for m in found)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@dataclass
class World:
    """The clock, the scripted events, the API's side (manual facts) and the observer."""

    sessions: async_sessionmaker[AsyncSession]
    bus: KafkaBus  # the API's and ingest's bus
    clock: Clock
    observer: Observer
    script: list[EventObserved] = field(default_factory=list)
    released: set[str] = field(default_factory=set)

    async def register(self, account: str, plan_key: str = "smb") -> str:
        onboarding_id = f"{account}-{plan_key}"
        registration = OnboardingRegistered(
            f"registered:{onboarding_id}", onboarding_id, account, plan_key, SIGNED, csm="casey"
        )
        await self.record(registration)
        return onboarding_id

    def schedule(self, events: Iterable[EventObserved]) -> None:
        self.script += events

    async def record(self, fact: CommandFact) -> OnboardingState:
        """A manual fact as the API records it: validate, store, project, commit, publish."""
        async with self.sessions() as session, session.begin():
            recorded = await record_fact(session, PLANS, fact, self.clock.now)
        await relay_outbox(self.sessions, self.bus)
        return recorded.state

    async def _release(self) -> bool:
        """Store the scripted events that have happened and announce them, as ingest does."""
        due = [e for e in self.script if e.at <= self.clock.now and e.id not in self.released]
        if not due:
            return False
        async with self.sessions() as session, session.begin():
            await EventRepository(session).add_many(
                due, source="segment", recorded_at=self.clock.now
            )
        by_account: dict[str, list[str]] = {}
        for e in due:
            by_account.setdefault(e.account_id, []).append(e.id)
        notices = [(a, FactsNotice(a, tuple(ids)).encode()) for a, ids in by_account.items()]
        await self.bus.publish_many(topics.FACTS, notices)
        self.released.update(e.id for e in due)
        return True

    async def advance(self, to_day: float, *, settle: bool = True) -> None:
        """Move the clock, release what happened by then, and wait until nothing is due."""
        self.clock.now = day(to_day)
        await self._release()
        if settle:
            await self.settle()

    async def settle(self) -> None:
        now = self.clock.now

        async def idle() -> bool:
            if await self.bus.lag(topics.FACTS, "milestones") != 0:
                return False
            async with self.sessions() as session:
                due = await session.scalar(
                    select(func.count())
                    .select_from(ProjectionRecord)
                    .where(ProjectionRecord.next_due_at <= now)
                )
                unsent = await OutboxRepository(session).unsent_count()
            return due == 0 and unsent == 0

        await eventually(idle, f"the milestones services to finish everything due at {now}")

    async def state(self, onboarding_id: str) -> OnboardingState:
        async with self.sessions() as session:
            state = await ProjectionRepository(session).state(onboarding_id)
        assert state is not None
        return state

    async def expected_ids(self, onboarding_id: str) -> dict[str, set[str]]:
        """Every transition id the pure core derives from the facts as of now, by topic."""
        async with self.sessions() as session:
            loaded = await OnboardingRepository(session).facts_for(onboarding_id)
        assert loaded is not None
        registration, facts = loaded
        final = evaluate(PLANS[registration.plan_key], registration, facts, self.clock.now)
        found: dict[str, set[str]] = {topics.TRANSITIONS: set(), topics.ESCALATIONS: set()}
        for t in transitions(None, final):
            topic = (
                topics.ESCALATIONS if isinstance(t, ESCALATION_TRANSITIONS) else topics.TRANSITIONS
            )
            found[topic].add(t.id)
        return found
