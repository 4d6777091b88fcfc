"""A short-lived, per-process memo of API key lookups: most requests then skip one
database round trip. Only keys that exist are remembered, by the hash of the key, and only
for ``TTL`` — a deleted or re-scoped key takes effect within that time on every instance."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from shared.storage.api_keys import ApiKey, hash_key

TTL_SECONDS = 5.0
MAX_KEYS = 1024


@dataclass
class KeyCache:
    ttl: float = TTL_SECONDS
    clock: Callable[[], float] = time.monotonic
    _entries: dict[str, tuple[float, ApiKey]] = field(default_factory=dict)

    async def lookup(
        self, plaintext: str, load: Callable[[str], Awaitable[ApiKey | None]]
    ) -> ApiKey | None:
        """The key for ``plaintext``: remembered if looked up less than ``ttl`` ago."""
        digest = hash_key(plaintext)
        now = self.clock()
        hit = self._entries.get(digest)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        key = await load(plaintext)
        if key is None:
            self._entries.pop(digest, None)
            return None
        if len(self._entries) >= MAX_KEYS:
            self._entries.clear()
        self._entries[digest] = (now, key)
        return key
