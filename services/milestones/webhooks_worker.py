"""The webhook worker: intake (bus → ``webhook_deliveries``) and the sender loop (rows →
signed HTTP POSTs with retries). The design and the wire format: ``webhooks.py``.

Both run beside the milestones consumer in the same process but share nothing with it but
the database: a receiver that hangs or refuses connections slows only this worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.milestones import webhooks
from shared.bus import topics
from shared.bus.bus import Batch, Bus, Subscription
from shared.bus.outages import Outage, log_failure
from shared.bus.retry import consume_with_retries
from shared.config import Settings
from shared.storage.webhook_deliveries import WebhookDelivery, WebhookDeliveryRepository

log = logging.getLogger(__name__)
GROUP = "webhooks"
TOPICS = (topics.TRANSITIONS, topics.ESCALATIONS)
RETRYABLE_STATUS = frozenset({408, 429})  # and every 5xx
LEASE_MARGIN = timedelta(seconds=30)  # a lease outlives the request by this much
IDLE_POLL_SECONDS = 1.0  # how often an idle sender looks for rows another process queued


@dataclass(frozen=True)
class WebhookOptions:
    url: str
    secret: str
    timeout_seconds: float = 10.0
    max_attempts: int = 8
    backoff_seconds: float = 2.0
    backoff_max_seconds: float = 600.0
    concurrency: int = 4

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookOptions | None:
        """None when no webhook is configured (then no worker runs at all)."""
        if not settings.webhook_url or settings.webhook_secret is None:
            return None
        return cls(
            url=settings.webhook_url,
            secret=settings.webhook_secret.get_secret_value(),
            timeout_seconds=settings.webhook_timeout_seconds,
            max_attempts=settings.webhook_max_attempts,
            backoff_seconds=settings.webhook_backoff_seconds,
            backoff_max_seconds=settings.webhook_backoff_max_seconds,
            concurrency=settings.webhook_concurrency,
        )

    def backoff(self, attempts: int) -> timedelta:
        """Delay after the ``attempts``-th failed attempt: base × 2^(attempts−1), capped."""
        seconds = self.backoff_seconds * 2 ** (attempts - 1)
        return timedelta(seconds=min(seconds, self.backoff_max_seconds))


@dataclass(frozen=True)
class Outcome:
    """One attempt's result: an HTTP status, or an error before any status arrived."""

    status: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        if self.status is None:
            return True  # timeout, refused, reset: the receiver may be back soon
        return self.status >= 500 or self.status in RETRYABLE_STATUS


async def intake(
    batch: Batch, sessionmaker: async_sessionmaker[AsyncSession], now: datetime
) -> int:
    """Queue a batch's messages as deliveries; the caller commits offsets afterwards."""
    new = 0
    async with sessionmaker() as session, session.begin():
        deliveries = WebhookDeliveryRepository(session)
        for message in batch.messages:
            try:
                payload = orjson.loads(message.value)
                message_id = str(payload["id"])
            except (orjson.JSONDecodeError, KeyError, TypeError) as error:
                # Not ours to drop silently: keep it visible as a failed delivery.
                where = f"{message.topic}@{message.partition}:{message.offset}"
                log.error("webhook: unreadable record %s: %r", where, error)
                raw = {"raw": message.value.decode("utf-8", "replace")}
                await deliveries.enqueue(message.topic, f"invalid:{where}", message.key, raw, now)
                continue
            new += await deliveries.enqueue(message.topic, message_id, message.key, payload, now)
    await batch.commit()
    return new


async def run_intake(
    bus: Bus,
    sessionmaker: async_sessionmaker[AsyncSession],
    topic: str,
    *,
    wake: asyncio.Event | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    group: str = GROUP,
) -> None:
    """Consume ``topic`` into the deliveries table until cancelled or the bus stops."""

    async def consume(subscription: Subscription, succeeded: Callable[[], None]) -> None:
        async for batch in subscription:
            if await intake(batch, sessionmaker, clock()) and wake is not None:
                wake.set()
            succeeded()

    await consume_with_retries(bus, topic, group, consume, label="webhook intake")


async def attempt(
    client: httpx.AsyncClient, options: WebhookOptions, d: WebhookDelivery
) -> Outcome:
    """POST one delivery, signed with the current time; never raises for network trouble."""
    content = webhooks.body(d.topic, d.message_id, d.payload)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "firstvalue-webhooks",
        webhooks.TIMESTAMP_HEADER: str(timestamp),
        webhooks.SIGNATURE_HEADER: webhooks.sign(options.secret, timestamp, content),
        webhooks.DELIVERY_HEADER: d.message_id,
    }
    try:
        response = await client.post(options.url, content=content, headers=headers)
    except httpx.TimeoutException as error:
        return Outcome(None, f"timeout after {options.timeout_seconds:g}s ({type(error).__name__})")
    except httpx.HTTPError as error:
        return Outcome(None, f"{type(error).__name__}: {error}")
    if 200 <= response.status_code < 300:
        return Outcome(response.status_code, None)
    excerpt = response.text[:200].strip()
    return Outcome(response.status_code, f"HTTP {response.status_code}: {excerpt}".rstrip(": "))


async def settle(
    sessionmaker: async_sessionmaker[AsyncSession],
    options: WebhookOptions,
    d: WebhookDelivery,
    outcome: Outcome,
    now: datetime,
) -> None:
    """Record an attempt: delivered, due again after the backoff, or failed for good."""
    async with sessionmaker() as session, session.begin():
        deliveries = WebhookDeliveryRepository(session)
        if outcome.ok:
            assert outcome.status is not None
            await deliveries.delivered(d.id, outcome.status, now)
            return
        error = outcome.error or "unknown error"
        if outcome.retryable and d.attempts < options.max_attempts:
            await deliveries.retry(d.id, outcome.status, error, now + options.backoff(d.attempts))
            log.warning(
                "webhook %s attempt %d failed (%s); retrying", d.message_id, d.attempts, error
            )
            return
        if outcome.retryable:
            error = f"gave up after {d.attempts} attempts: {error}"
        await deliveries.failed(d.id, outcome.status, error)
        log.error("webhook %s failed after %d attempts: %s", d.message_id, d.attempts, error)


async def send_next(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: httpx.AsyncClient,
    options: WebhookOptions,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> bool:
    """Lease the most overdue delivery, POST it and settle it; False if none was due.

    One row per lease, so a hanging request holds up only itself, and its lease (timeout +
    margin) always outlives it: no other sender can take it while it is in flight."""
    lease = timedelta(seconds=options.timeout_seconds) + LEASE_MARGIN
    async with sessionmaker() as session, session.begin():
        due = await WebhookDeliveryRepository(session).claim_due(clock(), 1, lease)
    for delivery in due:
        outcome = await attempt(client, options, delivery)
        await settle(sessionmaker, options, delivery, outcome, clock())
    return bool(due)


async def run_sender(
    sessionmaker: async_sessionmaker[AsyncSession],
    options: WebhookOptions,
    *,
    wake: asyncio.Event | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    poll_seconds: float = IDLE_POLL_SECONDS,
) -> None:
    """``concurrency`` sender loops until cancelled. An idle loop waits for ``wake`` (new
    rows from this process's intake, or another loop that found work); the first loop also
    looks every ``poll_seconds`` (rows queued by another process, retries coming due)."""
    wake = wake or asyncio.Event()
    timeout = httpx.Timeout(options.timeout_seconds)

    async def loop(client: httpx.AsyncClient, idle_seconds: float) -> None:
        outage = Outage("webhook sender", logger=log)
        while True:
            try:
                sent = await send_next(sessionmaker, client, options, clock)
                outage.up()
                if sent:
                    wake.set()  # a backlog: rouse the idle loops to share it
                    continue
            except Exception as error:
                log_failure(
                    outage, log, error, "webhook sender failed; retrying in %.1fs", idle_seconds
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), idle_seconds)
            wake.clear()

    async with (
        httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client,
        asyncio.TaskGroup() as tg,
    ):
        # Only the first loop polls an idle table (SQLite has one writer; keep it free);
        # the others wake on new rows or a backlog, and look on their own only rarely.
        for n in range(options.concurrency):
            tg.create_task(loop(client, poll_seconds if n == 0 else poll_seconds * 10))


async def run_webhooks(
    bus: Bus,
    sessionmaker: async_sessionmaker[AsyncSession],
    options: WebhookOptions,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    group: str = GROUP,
    poll_seconds: float = IDLE_POLL_SECONDS,
) -> None:
    """Intake of both topics and the sender, until cancelled or the bus stops (then the
    sender stops too: it holds no offsets, and leased rows come due again)."""
    wake = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        intakes = [
            tg.create_task(run_intake(bus, sessionmaker, t, wake=wake, clock=clock, group=group))
            for t in TOPICS
        ]
        sender = tg.create_task(
            run_sender(sessionmaker, options, wake=wake, clock=clock, poll_seconds=poll_seconds)
        )
        await asyncio.gather(*intakes)
        sender.cancel()
