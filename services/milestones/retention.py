"""Automatic retention: the milestones service prunes finished bookkeeping (stored
``Idempotency-Key`` responses, settled webhook deliveries) itself, so a deployment without a
cron job does not grow those tables forever. ``firstvalue prune`` does the same on demand.

Several instances may prune at once: each run is one idempotent ``DELETE`` per table.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.storage.retention import Pruned, prune

RETENTION_INTERVAL_SECONDS = 3600.0  # hourly: rows a day past the cut-off at the most

log = logging.getLogger(__name__)


async def prune_once(
    sessionmaker: async_sessionmaker[AsyncSession], days: float, now: datetime
) -> Pruned:
    """Delete what was created more than ``days`` before ``now``, in one transaction."""
    async with sessionmaker() as session, session.begin():
        pruned = await prune(session, now - timedelta(days=days))
    if pruned.idempotency_keys or pruned.webhook_deliveries:
        log.info(
            "retention: pruned %d idempotency keys and %d settled webhook deliveries "
            "older than %g days",
            pruned.idempotency_keys,
            pruned.webhook_deliveries,
            days,
        )
    return pruned


async def run_retention(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    days: float,
    interval_seconds: float = RETENTION_INTERVAL_SECONDS,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Prune now and then every ``interval_seconds`` until cancelled. A failed run is
    logged and tried again at the next interval: retention is never worth stopping for."""
    while True:
        try:
            await prune_once(sessionmaker, days, clock())
        except Exception:  # the database is down or busy: the next run catches up
            log.exception("retention: pruning failed; trying again in %g s", interval_seconds)
        await asyncio.sleep(interval_seconds)
