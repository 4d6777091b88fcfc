"""The outbox hands each message out once; API keys are stored as hashes only."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.storage.api_keys import ApiKeyRepository, hash_key
from shared.storage.outbox import OutboxRepository

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def test_outbox_messages_are_claimed_once_even_by_concurrent_relays(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        outbox = OutboxRepository(session)
        for n in range(30):
            assert await outbox.add("onboarding.transitions", "acme", f"t{n}", {"n": n}, NOW)
        assert not await outbox.add("onboarding.transitions", "acme", "t0", {"n": 0}, NOW)

    async def relay() -> list[str]:
        claimed: list[str] = []
        while True:
            async with sessions() as session, session.begin():
                batch = await OutboxRepository(session).claim_unsent(4, NOW)
                await asyncio.sleep(0)  # let the other relays interleave
            if not batch:
                return claimed
            claimed.extend(m.message_id for m in batch)

    results = await asyncio.gather(relay(), relay(), relay())
    claimed = [message_id for result in results for message_id in result]
    assert sorted(claimed) == sorted(f"t{n}" for n in range(30))
    async with sessions() as session:
        assert await OutboxRepository(session).unsent_count() == 0


async def test_a_failed_publish_leaves_the_messages_unsent(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        await OutboxRepository(session).add("onboarding.escalations", "acme", "e1", {}, NOW)
    try:
        async with sessions() as session, session.begin():
            assert len(await OutboxRepository(session).claim_unsent(10, NOW)) == 1
            raise ConnectionError("broker down")
    except ConnectionError:
        pass
    async with sessions() as session, session.begin():
        again = await OutboxRepository(session).claim_unsent(10, NOW)
    assert [m.message_id for m in again] == ["e1"]


async def test_api_keys_are_stored_as_sha256_and_found_by_plaintext(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        keys = ApiKeyRepository(session)
        plaintext = await keys.create("dashboard", ["read"], NOW)
        await keys.ensure("ops", ["read", "write"], "bootstrap-secret", NOW)
        await keys.ensure("ops", ["read", "write"], "rotated-secret", NOW)
    async with sessions() as session:
        rows = (await session.execute(text("SELECT name, key_hash FROM api_keys"))).all()
        keys = ApiKeyRepository(session)
        found = await keys.lookup(plaintext)
        ops = await keys.lookup("rotated-secret")
        stale = await keys.lookup("bootstrap-secret")
    stored = {name: key_hash for name, key_hash in rows}
    assert stored["dashboard"] == hash_key(plaintext) and plaintext not in stored.values()
    assert len(stored["dashboard"]) == 64
    assert found is not None and found.name == "dashboard" and found.scopes == ("read",)
    assert ops is not None and ops.scopes == ("read", "write")
    assert stale is None
