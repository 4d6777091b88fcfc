"""Ingest down on a backlog is not an idle input (docs/watermark.md): on the real broker and
the wall clock, while ``firstvalue ingest`` is stopped and the event that breaks an
account's silence waits unread on ``analytics.events``, the silence escalation falling due
meanwhile is held, not announced; once ingest reads the event again it never comes out, so
nothing is opened and retracted. The same escalation is in the exact state meanwhile."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.consumer import IngestOptions, run_ingest
from services.milestones.service import INGEST_GROUP, run_service
from shared.bus import topics
from shared.bus.bus import Bus
from shared.domain.transitions import RETRACTED
from shared.plan_files import default_plans
from shared.storage.tables import AnnouncementRecord, EscalationRecord

from .conftest import BusFactory
from .harness import consuming, drained, eventually, produce, read_topic

PLANS = default_plans()
LATENESS = timedelta(seconds=5)
IDLE = timedelta(seconds=2)
AHEAD = timedelta(seconds=8)  # from the pipeline being warm to the escalation's moment
SILENT = "account_silent"  # smb: no event for 14 days


def track(account: str, message_id: str, event: str, at: datetime, **properties: Any) -> dict:
    return {
        "type": "track",
        "messageId": message_id,
        "userId": f"{account}-user",
        "event": event,
        "properties": {"account_id": account, **properties},
        "timestamp": at.isoformat(),
    }


def ingesting(bus: Bus, sessions: async_sessionmaker[AsyncSession]) -> Any:
    options = IngestOptions(plan_keys=frozenset(PLANS))
    return consuming(run_ingest(bus, sessions, options, max_records=100, lateness=LATENESS))


async def escalations(bus: Bus) -> list[dict[str, Any]]:
    return [orjson.loads(m.value) for m in await read_topic(bus, topics.ESCALATIONS, at_least=0)]


async def held(sessions: async_sessionmaker[AsyncSession]) -> list[datetime]:
    async with sessions() as session:
        stmt = select(AnnouncementRecord.held_at).where(AnnouncementRecord.held_at.is_not(None))
        return list((await session.scalars(stmt)).all())


async def in_state(sessions: async_sessionmaker[AsyncSession], rule_key: str) -> bool:
    async with sessions() as session:
        stmt = select(EscalationRecord).where(EscalationRecord.rule_key == rule_key)
        return (await session.scalar(stmt)) is not None


async def test_ingest_down_on_a_backlog_holds_what_the_unread_events_prevent(
    buses: BusFactory, pg_sessions: async_sessionmaker[AsyncSession]
) -> None:
    bus = await buses("ingest-down")
    service = run_service(
        bus, pg_sessions, PLANS, interval_seconds=0.5, idle=IDLE, ingest_group=INGEST_GROUP
    )
    async with consuming(service):
        async with ingesting(bus, pg_sessions):  # warm: groups joined, partitions assigned
            warm = datetime.now(UTC)
            await produce(bus, [track("warm", "w", "Contract Signed", warm, plan="smb")])
            await drained(bus)
            await drained(bus, topics.FACTS, "milestones")
            due = datetime.now(UTC) + AHEAD
            last = due - timedelta(days=14)  # silent from here: the escalation fires at due
            history = [
                track("acme", "signed", "Contract Signed", last - timedelta(days=2), plan="smb"),
                track("acme", "login-1", "Logged In", last),
            ]
            await produce(bus, history)
            await drained(bus)
            await drained(bus, topics.FACTS, "milestones")

            async def released() -> bool:  # caught up and idle: the watermark is the clock
                return not await held(pg_sessions)

            await eventually(released, "the history's announcements once idle")
        # Ingest stopped; the account's next event (before the moment) waits unread.
        await produce(bus, [track("acme", "login-2", "Logged In", datetime.now(UTC))])
        assert datetime.now(UTC) < due - IDLE, "too slow to set up before the moment"
        await asyncio.sleep((due - datetime.now(UTC)).total_seconds() + IDLE.total_seconds() * 2)

        async def fired_in_state() -> bool:
            return await in_state(pg_sessions, SILENT)

        await eventually(fired_in_state, "the silence escalation in the state at the clock")
        assert await held(pg_sessions) == [due]  # held, not announced
        assert [e for e in await escalations(bus) if e["rule_key"] == SILENT] == []

        async with ingesting(bus, pg_sessions):  # back: reads the backlog
            await drained(bus)
            await drained(bus, topics.FACTS, "milestones")

            async def gone() -> bool:
                return not await held(pg_sessions) and not await in_state(pg_sessions, SILENT)

            await eventually(gone, "the silence escalation undone and nothing held")
            await asyncio.sleep(IDLE.total_seconds() * 2)  # ticks at the clock again
            found = await escalations(bus)
    assert [e for e in found if e["rule_key"] == SILENT] == []
    assert [e for e in found if e.get("resolution") == RETRACTED] == []
    assert {e["rule_key"] for e in found} >= {"technical_completion_late"}  # announced live
