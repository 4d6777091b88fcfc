"""API key lookups are remembered for a few seconds, only for keys that exist."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from services.api.key_cache import KeyCache
from shared.storage.api_keys import ApiKey

KEY = ApiKey(name="reader", scopes=("read",), created_at=datetime(2026, 1, 1, tzinfo=UTC))


class Store:
    def __init__(self) -> None:
        self.keys: dict[str, ApiKey] = {"fv_good": KEY}
        self.loads = 0

    async def load(self, plaintext: str) -> ApiKey | None:
        self.loads += 1
        return self.keys.get(plaintext)


def test_a_known_key_is_loaded_once_per_ttl_and_a_removed_one_expires() -> None:
    now = [100.0]
    cache, store = KeyCache(ttl=5.0, clock=lambda: now[0]), Store()

    async def scenario() -> None:
        assert await cache.lookup("fv_good", store.load) == KEY
        assert await cache.lookup("fv_good", store.load) == KEY
        assert store.loads == 1
        del store.keys["fv_good"]
        now[0] += 4.9
        assert await cache.lookup("fv_good", store.load) == KEY  # still within the TTL
        now[0] += 0.2
        assert await cache.lookup("fv_good", store.load) is None
        assert store.loads == 2

    asyncio.run(scenario())


def test_unknown_keys_are_never_remembered() -> None:
    cache, store = KeyCache(), Store()

    async def scenario() -> None:
        assert await cache.lookup("fv_bad", store.load) is None
        store.keys["fv_bad"] = KEY
        assert await cache.lookup("fv_bad", store.load) == KEY
        assert store.loads == 2

    asyncio.run(scenario())
