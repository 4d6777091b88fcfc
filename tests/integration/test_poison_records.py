"""Issue 10, defect 1: records that once stopped the consumer (``OverflowError('date value
out of range')`` on dates at the calendar's ends, seat counts past every integer type) are
dead-lettered as ``out_of_range`` by the real consumer on SQLite and PostgreSQL, and the good
record behind each is stored."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus import topics
from shared.bus.memory import MemoryBus
from shared.plan_files import default_plans
from shared.storage.events import EventRepository

from .hostile import encode, good_message
from .pipeline import drained, running_pipeline

NOW = datetime.now(UTC)
LOGIN = {"type": "track", "userId": "p", "event": "Logged In", "messageId": "x"}
CONTRACT = {"type": "track", "userId": "crm", "event": "Contract Signed", "messageId": "c"}
POISON: dict[str, dict[str, Any]] = {
    "timestamp_year_1_with_an_offset": {**LOGIN, "timestamp": "0001-01-01T00:00:00+01:00"},
    "skew_correction_past_year_1": {
        **LOGIN,
        "timestamp": "0001-01-01T00:00:00Z",
        "sentAt": "9999-12-31T23:59:59Z",
    },
    "received_at_past_year_9999": {**LOGIN, "receivedAt": "9999-12-31T23:59:59-01:00"},
    "seats_1e19": {**CONTRACT, "properties": {"plan": "smb", "licensed_seats": 1e19}},
    "seats_2_to_the_64_minus_1": {
        **CONTRACT,
        "properties": {"plan": "smb", "licensed_seats": 18446744073709551615},
    },
    "seats_past_a_32_bit_integer": {
        **CONTRACT,
        "properties": {"plan": "smb", "licensed_seats": 3_000_000_000},
    },
}


@pytest.mark.parametrize("case", POISON)
async def test_a_record_out_of_range_is_dead_lettered_and_the_consumer_goes_on(
    case: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    account = f"acct-{uuid.uuid4().hex[:8]}"
    poison = {**POISON[case], "context": {"groupId": account}}
    good = good_message(account, 1, NOW)
    bus = MemoryBus()
    await bus.start()
    async with running_pipeline(bus, sessions, default_plans(), NOW):
        await bus.publish_many(topics.EVENTS, [(account, encode(poison))])
        await bus.publish_many(topics.EVENTS, [(account, orjson.dumps(good))])
        await drained(bus)
    [letter] = [orjson.loads(m.value) for m in bus.messages(topics.EVENTS_DLQ)]
    assert (letter["reason"], letter["offset"]) == ("out_of_range", 0)
    async with sessions() as session:
        stored = await EventRepository(session).for_account(account)
    assert [event.id for event in stored] == [good["messageId"]]
