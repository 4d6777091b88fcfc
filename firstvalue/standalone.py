"""Each pipeline service alone in its own process (production): ``firstvalue ingest`` and
``firstvalue milestones``, on Kafka and the configured database.

Run several ``firstvalue ingest`` processes and they share ``analytics.events``'s partitions
as one consumer group (the same for ``milestones`` on ``onboarding.facts``). On SIGTERM or
SIGINT a service stops consuming, finishes and commits the batches in hand, flushes its
producer and leaves the group, so its partitions move on without a redelivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.consumer import IngestOptions, run_ingest
from services.milestones.service import run_configured
from shared.bus import topics
from shared.bus.bus import Bus
from shared.bus.factory import create_bus
from shared.bus.retry import outage_budget
from shared.config import Settings
from shared.observability.bus import BusMetrics
from shared.observability.readiness import Readiness
from shared.observability.server import metrics_server
from shared.plan_files import configured_plans
from shared.storage.engine import create_engine, create_sessionmaker

log = logging.getLogger(__name__)
DRAIN_SECONDS = 30.0  # how long a stopping service may take to finish its batches in hand


@asynccontextmanager
async def _resources(
    settings: Settings, name: str, bus: Bus | None
) -> AsyncIterator[tuple[Bus, async_sessionmaker[AsyncSession]]]:
    engine = create_engine(settings.database_url, application_name=f"firstvalue-{name}")
    bus = bus or create_bus(settings, client_id=f"firstvalue-{name}")
    await bus.start()
    sessionmaker = create_sessionmaker(engine)
    # Dependencies probed in the background: the gauge, /readyz and one line per outage.
    watching = asyncio.create_task(Readiness(sessionmaker, bus).watch(), name="readiness")
    gc.freeze()  # start-up objects (plans, modules) live forever: keep them out of GC passes
    try:
        with outage_budget(settings.outage_budget_seconds):
            yield bus, sessionmaker
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        await bus.stop()
        await engine.dispose()


async def _until_cancelled(bus: Bus, work: Coroutine[Any, Any, None]) -> None:
    """Run ``work``; when cancelled (the CLI's signal handler), stop the bus so consumers
    end after the batches in hand, and give them ``DRAIN_SECONDS`` to commit."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        if task.done():
            raise
        log.info("stopping: finishing the batches in hand")
        await bus.stop()
        try:
            await asyncio.wait_for(task, DRAIN_SECONDS)
        except TimeoutError:
            log.warning("batches in hand after %.0f s are redelivered", DRAIN_SECONDS)
        raise


async def ingest(settings: Settings, *, bus: Bus | None = None, group: str = "ingest") -> None:
    """Consume ``analytics.events`` until cancelled (``bus``: e.g. a namespaced KafkaBus)."""
    _log_to_stderr()
    plans = configured_plans(settings)
    options = IngestOptions.from_settings(settings, plans)
    async with _resources(settings, "ingest", bus) as (bus, sessionmaker):
        lag = BusMetrics(bus, [(topics.EVENTS, group)], dlq=True)
        port = settings.ingest_metrics_port
        async with metrics_server(settings.metrics_host, port, [lag.refresh]):
            lateness = settings.allowed_lateness()
            consuming = run_ingest(bus, sessionmaker, options, group=group, lateness=lateness)
            await _until_cancelled(bus, consuming)


async def milestones(settings: Settings, *, bus: Bus | None = None) -> None:
    """Consume ``onboarding.facts``, fire SLA timers and (when configured) deliver webhooks
    until cancelled."""
    _log_to_stderr()
    plans = configured_plans(settings)
    async with _resources(settings, "milestones", bus) as (bus, sessionmaker):
        lag = BusMetrics(bus, [(topics.FACTS, "milestones")])
        port = settings.milestones_metrics_port
        async with metrics_server(settings.metrics_host, port, [lag.refresh]):
            await _until_cancelled(bus, run_configured(bus, sessionmaker, plans, settings))


def _log_to_stderr() -> None:
    """A service alone logs its own lines (the embedded runner configures logging itself)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        logging.getLogger("aiokafka").setLevel(logging.WARNING)
