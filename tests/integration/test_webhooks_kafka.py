"""Webhooks on the real broker and PostgreSQL: two worker instances in one consumer group
share the topics' records and the deliveries table, and every transition reaches the
receiver once."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import Counter
from datetime import timedelta

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from firstvalue import standalone
from services.milestones import webhooks
from services.milestones.webhooks_worker import run_webhooks
from shared.bus import topics
from shared.bus.messages import FactsNotice
from shared.config import load_settings
from shared.domain.facts import OnboardingRegistered
from shared.domain.transitions import StageEntered
from shared.storage.onboardings import OnboardingRepository
from shared.storage.webhook_deliveries import WebhookDeliveryRepository

from .kafka.conftest import BusFactory, bootstrap, buses, namespace, pg_sessions, pg_url
from .test_webhooks import ESCALATION, SECRET, SIGNED, eventually, options
from .webhook_receiver import Receiver, serving

__all__ = ["bootstrap", "buses", "namespace", "pg_sessions", "pg_url"]
COUNT = 30
KAFKA_DEADLINE = 60.0  # two members joining a fresh group take a few rebalances


async def test_two_workers_deliver_every_transition_once(
    buses: BusFactory, pg_sessions: async_sessionmaker[AsyncSession]
) -> None:
    producer = await buses("producer")
    for n in range(COUNT):
        entered = StageEntered(
            f"st-{n}", f"onb-{n}", f"acct-{n}", SIGNED + timedelta(days=n), stage="setup"
        )
        opened = dataclasses.replace(ESCALATION, id=f"esc-{n}")
        await producer.publish(topics.TRANSITIONS, f"acct-{n}", orjson.dumps(entered.to_dict()))
        await producer.publish(topics.ESCALATIONS, f"acct-{n}", orjson.dumps(opened.to_dict()))
    async with serving(Receiver()) as receiver:
        opts = options(receiver.url)
        workers = [
            asyncio.create_task(run_webhooks(await buses(f"worker-{i}"), pg_sessions, opts))
            for i in range(2)
        ]
        try:

            async def all_delivered() -> bool:
                async with pg_sessions() as session:
                    counts = await WebhookDeliveryRepository(session).counts()
                return counts.get("delivered", 0) == 2 * COUNT

            await eventually(all_delivered, "every delivery", KAFKA_DEADLINE)
        finally:
            for task in workers:
                task.cancel()
            for task in workers:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    async with pg_sessions() as session:
        rows = await WebhookDeliveryRepository(session).all()
    assert {r.attempts for r in rows} == {1}  # no lease ran out: nothing leased and left idle
    sent = Counter(r.headers["x-firstvalue-delivery"] for r in receiver.received)
    assert len(sent) == 2 * COUNT and set(sent.values()) == {1}
    assert all(webhooks.verify(SECRET, r.headers, r.body, time.time()) for r in receiver.received)


async def test_the_milestones_service_delivers_webhooks_when_configured(
    buses: BusFactory, bootstrap: str, pg_url: str, pg_sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with serving(Receiver()) as receiver:
        settings = load_settings(
            database_url=pg_url,
            kafka_bootstrap_servers=bootstrap,
            webhook_url=receiver.url,
            webhook_secret=SECRET,
            milestones_metrics_port=0,
        )
        service = asyncio.create_task(standalone.milestones(settings, bus=await buses("svc")))
        try:
            async with pg_sessions() as session, session.begin():
                registration = OnboardingRegistered("reg:acme", "onb-acme", "acme", "smb", SIGNED)
                await OnboardingRepository(session).register(registration, SIGNED)
            producer = await buses("producer")
            await producer.publish(topics.FACTS, "acme", FactsNotice("acme", ()).encode())

            async def delivered() -> bool:
                return any(b'"onb-acme"' in r.body for r in receiver.received)

            await eventually(delivered, "a webhook from the service", KAFKA_DEADLINE)
        finally:
            service.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await service
    request = receiver.received[0]
    assert webhooks.verify(SECRET, request.headers, request.body, time.time())
