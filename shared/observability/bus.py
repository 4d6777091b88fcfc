"""Consumer lag and dead-letter count, read from the bus (Kafka offsets) at scrape time.

Lag is the group's committed offsets against the topic's end offsets (``Bus.lag``), so it
is right whichever instance of the group is scraped, and after restarts. The DLQ size is
the lag of a group that never commits: end offsets minus the first retained ones.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from shared.bus import topics
from shared.bus.bus import Bus
from shared.bus.outages import Outage, log_failure
from shared.observability.metrics import BUS_SCRAPE_ERRORS, CONSUMER_LAG, DLQ_MESSAGES

log = logging.getLogger(__name__)
DLQ_SIZE_GROUP = "firstvalue-dlq-size"  # never subscribes nor commits
READ_TIMEOUT_SECONDS = 5.0


class BusMetrics:
    """Refreshes the lag gauges of ``groups`` ((topic, group) pairs) and, when ``dlq``,
    the dead-letter count; at most once per ttl, and within a scrape's patience."""

    def __init__(
        self,
        bus: Bus,
        groups: Sequence[tuple[str, str]],
        *,
        dlq: bool = False,
        ttl_seconds: float = 5.0,
    ) -> None:
        self._bus = bus
        self._groups = tuple(groups)
        self._dlq = dlq
        self._ttl = ttl_seconds
        self._lock = asyncio.Lock()
        self._read_at: float | None = None
        self._outage = Outage("consumer lag reading", logger=log)  # broker down: one line

    async def refresh(self) -> None:
        async with self._lock:
            now = time.monotonic()
            if self._read_at is not None and now - self._read_at < self._ttl:
                return
            self._read_at = now
            try:
                await asyncio.wait_for(self._read(), READ_TIMEOUT_SECONDS)
                self._outage.up()
            except Exception as error:
                log_failure(self._outage, log, error, "consumer lag could not be read")
                BUS_SCRAPE_ERRORS.inc()

    async def _read(self) -> None:
        for topic, group in self._groups:
            CONSUMER_LAG.labels(topic, group).set(await self._bus.lag(topic, group))
        if self._dlq:
            size = await self._bus.lag(topics.EVENTS_DLQ, DLQ_SIZE_GROUP)
            DLQ_MESSAGES.labels(topics.EVENTS_DLQ).set(size)
