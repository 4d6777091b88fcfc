"""What the Kafka tests produce, and the reference they compare against.

``onboarding_messages``: one SMB account's Segment messages, small enough to assert on by
hand. ``demo_messages``: the demo history's realistic mix (identify, group, track over many
accounts), with some track calls stripped of ``context.groupId`` so they depend on their
user's ``group`` call, which out-of-order delivery then makes arrive late.
``reference_snapshot``: the same messages ingested once, in order, in one transaction into a
database of its own — what every Kafka run must end up equal to.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from firstvalue.demo_data import generate
from services.ingest.consumer import IngestOptions, ingest_messages
from shared.domain.plans import Plan
from shared.storage import create_engine, create_sessionmaker, migrate

from ..conftest import fresh_postgres_database, postgres_base_url
from .harness import snapshot

SIGNED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = SIGNED + timedelta(days=4)


def onboarding_messages(account: str = "acme") -> list[dict[str, Any]]:
    """Contract, users tied by group calls (one usage event before its group call), the
    setup milestones' events, and a failed sync that must not count."""

    def msg(message_id: str, at_days: float, **fields: Any) -> dict[str, Any]:
        at = (SIGNED + timedelta(days=at_days)).isoformat()
        return {"messageId": f"{account}-{message_id}", "timestamp": at, **fields}

    users = [f"{account}-user-{n}" for n in range(3)]
    contract = {"account_id": account, "plan": "smb", "csm": "dana", "licensed_seats": 10}
    return [
        msg("contract", 0, type="track", userId="crm-bot", event="Contract Signed",
            properties=contract),
        msg("int-1", 1, type="track", userId=users[0], event="Integration Connected"),
        *(msg(f"group-{u}", 1.5, type="group", userId=u, groupId=account) for u in users),
        msg("sync-failed", 1.8, type="track", userId=users[1], event="Data Sync Completed",
            properties={"status": "failed"}),
        msg("sync-1", 2, type="track", userId=users[1], event="Data Sync Completed",
            properties={"status": "success"}),
    ]  # fmt: skip


def demo_messages(
    plans: Mapping[str, Plan], accounts: int, *, seed: int = 7, now: datetime = NOW
) -> list[dict[str, Any]]:
    """The demo history (time-ordered); a third of the track calls lose ``context.groupId``."""
    rng = random.Random(seed)
    messages = copy.deepcopy(generate(plans, now, accounts=accounts, seed=seed).messages)
    for message in messages:
        context = message.get("context")
        track = message["type"] == "track" and message.get("event") != "Contract Signed"
        if track and isinstance(context, dict) and rng.random() < 0.33:
            context.pop("groupId", None)
    return messages


def shuffled(messages: Sequence[dict[str, Any]], seed: int = 11) -> list[dict[str, Any]]:
    out = list(messages)
    random.Random(seed).shuffle(out)
    return out


async def reference_snapshot(
    messages: Sequence[dict[str, Any]], plans: Mapping[str, Plan], now: datetime = NOW
) -> dict[str, Any]:
    """The messages ingested once, in order, in one transaction, on a database of their own."""
    async with fresh_postgres_database(postgres_base_url()) as url:
        await migrate(url)
        engine = create_engine(url, application_name="firstvalue-kafka-reference")
        try:
            sessions = create_sessionmaker(engine)
            async with sessions() as session, session.begin():
                result = await ingest_messages(
                    session, messages, IngestOptions(plan_keys=frozenset(plans)), received_at=now
                )
            assert not result.rejected, result.rejected[:3]
            return await snapshot(sessions, plans, now)
        finally:
            await engine.dispose()
