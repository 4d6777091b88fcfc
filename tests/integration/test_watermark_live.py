"""Live, the watermark does not hold a timer back: on the wall clock, with ingest carrying
watermarks and the settings' defaults, an SLA escalation of an account that has just sent
events (its input not yet idle) is announced within a minute of its moment, not before."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.consumer import IngestOptions, run_ingest
from services.milestones.service import run_configured
from shared.bus import topics
from shared.bus.memory import MemoryBus
from shared.config import Settings
from shared.plan_files import default_plans

PLANS = default_plans()


async def test_a_live_sla_escalation_is_announced_within_a_minute_of_its_moment(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    settings = Settings()
    bus = MemoryBus()
    await bus.start()
    start = datetime.now(UTC)
    due = start + timedelta(seconds=5)  # smb: technical completion missing by day 14
    signed = due - timedelta(days=14)

    def track(message_id: str, event: str, at: datetime, **properties: object) -> dict:
        return {
            "type": "track",
            "messageId": message_id,
            "userId": "u1",
            "event": event,
            "properties": {"account_id": "acme", **properties},
            "timestamp": at.isoformat(),
        }

    messages = [
        track("contract", "Contract Signed", signed, plan="smb"),
        *(track(f"login-{n}", "Logged In", start - timedelta(seconds=n)) for n in range(3)),
    ]  # fmt: skip
    options = IngestOptions(plan_keys=frozenset(PLANS))
    tasks = [
        asyncio.create_task(
            run_ingest(bus, sessions, options, lateness=settings.allowed_lateness())
        ),
        asyncio.create_task(run_configured(bus, sessions, PLANS, settings)),
    ]

    def announced() -> list[dict]:
        found = [orjson.loads(m.value) for m in bus.messages(topics.ESCALATIONS)]
        return [e for e in found if e["rule_key"] == "technical_completion_late"]

    try:
        await bus.publish_many(topics.EVENTS, [("acme", orjson.dumps(m)) for m in messages])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5 + 60
        while not announced():
            assert not any(t.done() for t in tasks), [t.exception() for t in tasks if t.done()]
            assert loop.time() < deadline, "not announced within a minute of its moment"
            await asyncio.sleep(0.2)
        seen_at = datetime.now(UTC)
        assert due <= seen_at <= due + timedelta(seconds=60)
        (opened,) = announced()
        assert opened["type"] == "EscalationOpened"
        assert datetime.fromisoformat(opened["fired_at"]) == due
    finally:
        await bus.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
