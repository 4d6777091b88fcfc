"""The one retry policy every consumer loop follows: subscribe, consume, and on a failure
leave the group (the uncommitted batch is redelivered to the next member), back off
exponentially and rejoin; after several failures in a row, raise so the process stops
loudly instead of spinning on a batch it can never handle."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from shared.bus.bus import Bus, Subscription

log = logging.getLogger(__name__)
MAX_CONSECUTIVE_FAILURES = 5
MAX_BACKOFF_SECONDS = 30.0

Consume = Callable[[Subscription, Callable[[], None]], Awaitable[None]]


async def consume_with_retries(
    bus: Bus, topic: str, group: str, consume: Consume, *, label: str, max_records: int = 500
) -> None:
    """Run ``consume(subscription, succeeded)`` until it returns (the bus stopped); it calls
    ``succeeded()`` after each committed batch, which resets the count of failures."""
    failures = 0

    def succeeded() -> None:
        nonlocal failures
        failures = 0

    while True:
        try:
            async with bus.subscribe(topic, group, max_records=max_records) as subscription:
                await consume(subscription, succeeded)
            return
        except Exception:
            failures += 1
            if failures >= MAX_CONSECUTIVE_FAILURES:
                raise
            log.exception("%s batch failed (%d in a row); retrying", label, failures)
            await asyncio.sleep(min(2.0 ** (failures - 1), MAX_BACKOFF_SECONDS))
