"""Signed webhooks against a real HTTP receiver on 127.0.0.1, on SQLite and PostgreSQL:
the signature verifies, 5xx and timeouts are retried with backoff, the worker gives up after
the configured attempts with the failure recorded, and a receiver that hangs never holds up
the milestones consumer."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from firstvalue.embedded import start_pipeline
from services.milestones import webhooks
from services.milestones.consumer import run_milestones
from services.milestones.webhooks_worker import WebhookOptions, run_webhooks
from shared.bus import topics
from shared.bus.memory import MemoryBus
from shared.bus.messages import FactsNotice
from shared.config import load_settings, sqlite_dsn
from shared.domain.facts import OnboardingRegistered
from shared.domain.transitions import EscalationOpened
from shared.plan_files import default_plans
from shared.projection.manual import record_fact
from shared.projection.publisher import relay_outbox
from shared.storage.onboardings import OnboardingRepository
from shared.storage.webhook_deliveries import WebhookDelivery, WebhookDeliveryRepository

from .webhook_receiver import Receiver, closed_port_url, serving

SECRET = "whsec-test-0123456789"
SIGNED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DEADLINE = 15.0

ESCALATION = EscalationOpened(
    id="esc-1",
    onboarding_id="onb-acme",
    account_id="acme",
    at=SIGNED + timedelta(days=14),
    rule_key="setup_missing_day_14",
    level=1,
    action="flag_cs_manager",
    reason="stage setup not exited by day 14",
    fired_at=SIGNED + timedelta(days=14),
    title="Technical completion missing",
    escalation_kind="stage_not_exited",
)


def options(url: str, **overrides: Any) -> WebhookOptions:
    values: dict[str, Any] = {
        "url": url,
        "secret": SECRET,
        "timeout_seconds": 2.0,
        "max_attempts": 4,
        "backoff_seconds": 0.05,
        "backoff_max_seconds": 1.0,
    }
    return WebhookOptions(**(values | overrides))


@contextlib.asynccontextmanager
async def worker(
    bus: MemoryBus, sessions: async_sessionmaker[AsyncSession], opts: WebhookOptions
) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(run_webhooks(bus, sessions, opts, poll_seconds=0.05))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(
    check: Callable[[], Awaitable[Any]], what: str, seconds: float = DEADLINE
) -> Any:
    """Poll ``check`` until it returns something truthy, or fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def delivery(
    sessions: async_sessionmaker[AsyncSession], status: str, topic: str = topics.ESCALATIONS
) -> Callable[[], Awaitable[WebhookDelivery | None]]:
    async def check() -> WebhookDelivery | None:
        async with sessions() as session:
            found = await WebhookDeliveryRepository(session).get(topic, ESCALATION.id)
        return found if found is not None and found.status == status else None

    return check


def readme_snippet() -> dict[str, Any]:
    """The verification snippet in README "Webhooks", executed as a receiver would."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Webhooks", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md#webhooks", "exec"), namespace)
    return namespace


async def publish_escalation(bus: MemoryBus) -> None:
    await bus.publish(topics.ESCALATIONS, "acme", orjson.dumps(ESCALATION.to_dict()))


async def test_delivery_is_signed_slack_compatible_and_recorded(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    bus = MemoryBus()
    await bus.start()
    async with serving(Receiver()) as receiver, worker(bus, sessions, options(receiver.url)):
        await publish_escalation(bus)
        done = await eventually(delivery(sessions, "delivered"), "the delivery")
    assert (done.attempts, done.last_status, done.last_error) == (1, 200, None)
    assert len(receiver.received) == 1
    request = receiver.received[0]
    assert webhooks.verify(SECRET, request.headers, request.body, time.time())
    assert not webhooks.verify("another-secret", request.headers, request.body, time.time())
    assert not webhooks.verify(SECRET, request.headers, request.body + b" ", time.time())
    # The documented signed string, recomputed by hand: "<timestamp>.<raw body>".
    stamp = request.headers["x-firstvalue-timestamp"]
    expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + request.body, hashlib.sha256)
    assert request.headers["x-firstvalue-signature"] == "sha256=" + expected.hexdigest()
    assert request.headers["x-firstvalue-delivery"] == ESCALATION.id
    readme_verify = readme_snippet()["verify"]  # what receivers are told to run
    titled = {k.title(): v for k, v in request.headers.items()}
    assert readme_verify(SECRET, titled, request.body)
    assert not readme_verify(SECRET, titled, request.body.replace(b"acme", b"acmf"))
    body = orjson.loads(request.body)
    assert body["id"] == ESCALATION.id and body["type"] == "EscalationOpened"
    assert body["topic"] == topics.ESCALATIONS and body["event"] == ESCALATION.to_dict()
    assert "Escalation level 1" in body["text"] and "*acme*" in body["text"]
    await bus.stop()


async def test_5xx_and_timeouts_are_retried_until_delivered(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    script = {0: (500, 0.0), 1: (503, 0.0), 2: (200, 1.0)}  # third: slower than the timeout
    receiver = Receiver(lambda n: script.get(n, (200, 0.0)))
    bus = MemoryBus()
    await bus.start()
    async with (
        serving(receiver),
        worker(bus, sessions, options(receiver.url, timeout_seconds=0.3, max_attempts=6)),
    ):
        await publish_escalation(bus)
        done = await eventually(delivery(sessions, "delivered"), "the delivery")
    assert done.attempts == 4 and len(receiver.received) == 4
    ids = {r.headers["x-firstvalue-delivery"] for r in receiver.received}
    assert ids == {ESCALATION.id}  # the same delivery id each time: receivers can dedupe
    assert all(webhooks.verify(SECRET, r.headers, r.body, time.time()) for r in receiver.received)
    await bus.stop()


async def test_gives_up_after_the_configured_attempts_with_the_failure_recorded(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    receiver = Receiver(lambda n: (500, 0.0))
    bus = MemoryBus()
    await bus.start()
    async with serving(receiver), worker(bus, sessions, options(receiver.url, max_attempts=3)):
        await publish_escalation(bus)
        failed = await eventually(delivery(sessions, "failed"), "the delivery to fail")
        await asyncio.sleep(0.3)  # several sender polls: a failed delivery is never retried
    assert failed.attempts == 3 and len(receiver.received) == 3
    assert failed.last_status == 500 and failed.next_attempt_at is None
    assert failed.last_error is not None
    assert failed.last_error.startswith("gave up after 3 attempts: HTTP 500")
    await bus.stop()


async def test_a_receiver_that_is_down_or_refuses_is_recorded_without_endless_retries(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    bus = MemoryBus()
    await bus.start()
    async with worker(bus, sessions, options(closed_port_url(), max_attempts=2)):
        await publish_escalation(bus)
        down = await eventually(delivery(sessions, "failed"), "the delivery to fail")
    assert down.attempts == 2 and down.last_status is None
    assert down.last_error is not None and "ConnectError" in down.last_error
    receiver = Receiver(lambda n: (410, 0.0))  # a 4xx: retrying cannot fix it
    async with serving(receiver), worker(bus, sessions, options(receiver.url)):
        await bus.publish(
            topics.TRANSITIONS, "acme", orjson.dumps({**ESCALATION.to_dict(), "type": "X"})
        )
        gone = await eventually(delivery(sessions, "failed", topics.TRANSITIONS), "a 410")
    assert gone.attempts == 1 and gone.last_status == 410 and len(receiver.received) == 1
    await bus.stop()


async def test_a_hanging_receiver_never_holds_up_the_milestones_consumer(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    plans = default_plans()
    now = SIGNED + timedelta(days=20)  # late enough for the day-14 setup escalation
    receiver = Receiver(lambda n: (200, 60.0))  # answers after a minute: far past the test
    bus = MemoryBus()
    await bus.start()
    async with serving(receiver), worker(bus, sessions, options(receiver.url, timeout_seconds=60)):
        consumer = asyncio.create_task(run_milestones(bus, sessions, plans, clock=lambda: now))
        try:
            for n, name in enumerate(("acme", "globex", "initech")):
                async with sessions() as session, session.begin():
                    registration = OnboardingRegistered(
                        f"reg:{name}", f"onb-{name}", name, "smb", SIGNED, csm="dana"
                    )
                    await OnboardingRepository(session).register(registration, now)
                started = time.monotonic()
                await bus.publish(topics.FACTS, name, FactsNotice(name, ()).encode())
                await eventually(_published(bus, name), f"{name}'s transitions published")
                if n:  # projected promptly although every webhook request so far hangs
                    assert time.monotonic() - started < 5.0
                    assert receiver.answered == 0
                await eventually(lambda: _true(receiver.received), "a request in flight")
            async with sessions() as session:
                counts = await WebhookDeliveryRepository(session).counts()
            assert counts.get("delivered", 0) == 0 and counts["pending"] >= 3
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
    await bus.stop()


def _published(bus: MemoryBus, account_id: str) -> Callable[[], Awaitable[bool]]:
    """The milestones consumer has projected the account and published its transitions."""

    async def check() -> bool:
        published = bus.messages(topics.TRANSITIONS) + bus.messages(topics.ESCALATIONS)
        return any(m.key == account_id for m in published)

    return check


async def _true(value: object) -> bool:
    return bool(value)


def test_settings_refuse_an_unsigned_webhook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIRSTVALUE_WEBHOOK_URL", "https://hooks.example.invalid/x")
    with pytest.raises(ValueError, match="FIRSTVALUE_WEBHOOK_SECRET is required"):
        load_settings()
    monkeypatch.setenv("FIRSTVALUE_WEBHOOK_SECRET", SECRET)
    settings = load_settings(webhook_max_attempts=3)
    opts = WebhookOptions.from_settings(settings)
    assert opts is not None and opts.secret == SECRET and opts.max_attempts == 3
    assert SECRET not in repr(settings)
    assert [opts.backoff(n).total_seconds() for n in (1, 2, 3)] == [2.0, 4.0, 8.0]
    monkeypatch.delenv("FIRSTVALUE_WEBHOOK_URL")
    assert WebhookOptions.from_settings(load_settings()) is None


async def test_the_embedded_runner_delivers_webhooks_when_configured(tmp_path: Path) -> None:
    settings = load_settings(database_url=sqlite_dsn(tmp_path / "fv.db"))
    async with serving(Receiver()) as receiver:
        hooked = settings.model_copy(
            update={"webhook_url": receiver.url, "webhook_secret": SecretStr(SECRET)}
        )
        async with start_pipeline(hooked) as pipeline:
            registration = OnboardingRegistered("reg:acme", "onb-acme", "acme", "smb", SIGNED)
            async with pipeline.sessionmaker() as session, session.begin():
                await record_fact(session, pipeline.plans, registration, SIGNED)
            await relay_outbox(pipeline.sessionmaker, pipeline.bus)
            await eventually(lambda: _true(receiver.received), "a webhook request")
    body = orjson.loads(receiver.received[0].body)
    assert body["event"]["onboarding_id"] == "onb-acme"
    assert webhooks.verify(
        SECRET, receiver.received[0].headers, receiver.received[0].body, time.time()
    )
