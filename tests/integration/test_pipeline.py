"""End to end on real databases: Segment messages → ingest → milestones → projection."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.analytics.normalize import partition_key, split_segment_batch
from shared.analytics.registration import onboarding_id_for
from shared.bus import topics
from shared.bus.memory import MemoryBus
from shared.bus.messages import FactsNotice
from shared.plan_files import default_plans
from shared.projection.replay import replay_all
from shared.storage.outbox import OutboxRepository
from shared.storage.projections import ProjectionFilter, ProjectionRepository

from .pipeline import drained, running_pipeline

SIGNED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = SIGNED + timedelta(days=4)
PLANS = default_plans()


def at(days: float) -> str:
    return (SIGNED + timedelta(days=days)).isoformat()


def segment_batch() -> dict[str, Any]:
    """What the Segment SDK of a customer's product would post to ``/v1/batch``."""
    users = [f"user-{n}" for n in range(3)]
    return {
        "batch": [
            {
                "type": "track",
                "messageId": "contract",
                "userId": "crm-bot",
                "event": "Contract Signed",
                "properties": {
                    "account_id": "acme",
                    "plan": "smb",
                    "csm": "dana",
                    "licensed_seats": 10,
                    "account_name": "Acme Inc",
                },
                "timestamp": at(0),
            },  # fmt: skip
            # usage before the identity: parked, then applied by the group calls below
            {
                "type": "track",
                "messageId": "int-1",
                "userId": users[0],
                "event": "Integration Connected",
                "timestamp": at(1),
            },
            *(
                {
                    "type": "group",
                    "messageId": f"group-{u}",
                    "userId": u,
                    "groupId": "acme",
                    "timestamp": at(1.5),
                }
                for u in users
            ),
            {
                "type": "track",
                "messageId": "sync-1",
                "userId": users[1],
                "event": "Data Sync Completed",
                "properties": {"status": "success"},
                "timestamp": at(2),
            },
            {
                "type": "track",
                "messageId": "sync-failed",
                "userId": users[1],
                "event": "Data Sync Completed",
                "properties": {"status": "failed"},
                "timestamp": at(1.8),
            },
        ],
        "sentAt": at(3),
    }


async def publish_batch(bus: MemoryBus, body: dict[str, Any], received_at: datetime) -> None:
    messages = split_segment_batch(body, received_at)
    await bus.publish_many(topics.EVENTS, [(partition_key(m), orjson.dumps(m)) for m in messages])


async def test_a_segment_batch_moves_the_milestones_of_a_registered_smb_onboarding(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    bus = MemoryBus(partitions=3)
    async with running_pipeline(bus, sessions, PLANS, NOW):
        await publish_batch(bus, segment_batch(), received_at=SIGNED + timedelta(days=3))
        await drained(bus)

    onboarding_id = onboarding_id_for("acme", "smb")
    async with sessions() as session:
        projections = ProjectionRepository(session)
        state = await projections.state(onboarding_id)
        page = await projections.list(ProjectionFilter(segment="smb"), limit=10)
    assert state is not None
    assert (state.signed_at, state.csm, state.account_name) == (SIGNED, "dana", "Acme Inc")
    milestones = {m.key: m for m in state.milestones}
    assert milestones["integration_connected"].progress == "complete"
    assert milestones["integration_connected"].event_ids == ("int-1",)
    assert milestones["integration_connected"].completed_at == SIGNED + timedelta(days=1)
    assert milestones["first_sync_verified"].event_ids == ("sync-1",)
    assert milestones["first_report_delivered"].progress == "not_started"
    assert [item.onboarding_id for item in page.items] == [onboarding_id]

    published = [orjson.loads(m.value) for m in bus.messages(topics.TRANSITIONS)]
    assert {"type": "StageEntered", "stage": "kickoff"}.items() <= published[0].items()
    assert all(m.key == "acme" for m in bus.messages(topics.TRANSITIONS))
    assert bus.messages(topics.EVENTS_DLQ) == []


async def test_outbox_rows_are_published_once_when_notices_are_redelivered(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    bus = MemoryBus()
    async with running_pipeline(bus, sessions, PLANS, NOW):
        await publish_batch(bus, segment_batch(), received_at=SIGNED + timedelta(days=3))
        await drained(bus)
        first = Counter(orjson.loads(m.value)["id"] for m in bus.messages(topics.TRANSITIONS))
        # the same messages again, and a stray notice: nothing new to announce
        await publish_batch(bus, segment_batch(), received_at=SIGNED + timedelta(days=3))
        await bus.publish(topics.FACTS, "acme", FactsNotice("acme", ("int-1",)).encode())
        await drained(bus)

    again = Counter(orjson.loads(m.value)["id"] for m in bus.messages(topics.TRANSITIONS))
    assert first and again == first
    assert set(again.values()) == {1}
    async with sessions() as session:
        assert await OutboxRepository(session).unsent_count() == 0


async def test_replay_re_derives_every_onboarding_without_announcing_anything_twice(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    bus = MemoryBus()
    async with running_pipeline(bus, sessions, PLANS, NOW):
        await publish_batch(bus, segment_batch(), received_at=SIGNED + timedelta(days=3))
        await drained(bus)
    assert await replay_all(sessions, PLANS, NOW) == 1
    async with sessions() as session:
        assert await OutboxRepository(session).unsent_count() == 0
    later = NOW + timedelta(days=20)  # the same facts, judged later: escalations open
    assert await replay_all(sessions, PLANS, later) == 1
    async with sessions() as session:
        state = await ProjectionRepository(session).state(onboarding_id_for("acme", "smb"))
        assert await OutboxRepository(session).unsent_count() > 0
    assert state is not None and state.as_of == later
    assert {e.rule_key for e in state.escalations} >= {"technical_completion_late"}
