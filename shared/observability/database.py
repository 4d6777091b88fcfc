"""Gauges that describe the database, computed from it at scrape time.

Counting in the process that changed a row would be wrong after a restart and differ
between API instances; reading the projection tables makes every instance report the same
numbers. ``refresh()`` (awaited by the scrape handler) re-reads at most once per ``ttl``, so
a dashboard polled by several Prometheus servers costs two grouped queries per ttl (about
50 ms at 100,000 onboardings on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter as Tally
from collections.abc import Iterator, Sequence
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.observability.metrics import DATABASE_SCRAPE_ERRORS, record_lateness
from shared.observability.repository import MetricsRepository, ProjectionGroup
from shared.storage.webhook_deliveries import (
    DELIVERED,
    FAILED,
    PENDING,
    WebhookDeliveryRepository,
)

log = logging.getLogger(__name__)
DAY_SECONDS = 86_400.0
TTFV_BOUNDS_DAYS = (1, 3, 7, 14, 21, 30, 45, 60, 90, 120, 180, 365)
SEVERITIES = ("breach", "severe")
WEBHOOK_STATUSES = (PENDING, DELIVERED, FAILED)
NO_STAGE = "none"  # an onboarding past its last stage


class DatabaseMetrics(Collector):
    """A Prometheus collector over a snapshot that ``refresh()`` reads from the database."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], *, ttl_seconds: float = 5.0
    ) -> None:
        self._sessionmaker = sessionmaker
        self._ttl = ttl_seconds
        self._lock = asyncio.Lock()
        self._read_at: float | None = None
        self._families: list[Metric] = []

    async def refresh(self) -> None:
        """Re-read the database unless the snapshot is younger than the ttl; on failure
        the database families are left out (stale numbers would lie) and counted."""
        async with self._lock:
            now = time.monotonic()
            if self._read_at is not None and now - self._read_at < self._ttl:
                return
            try:
                async with self._sessionmaker() as session:
                    self._families = await read_families(session)
            except Exception:
                log.exception("database metrics could not be read")
                DATABASE_SCRAPE_ERRORS.inc()
                self._families = []
            self._read_at = now

    def collect(self) -> Iterator[Metric]:
        yield from self._families


async def read_families(session: AsyncSession) -> list[Metric]:
    repo = MetricsRepository(session)
    groups = await repo.projection_groups(TTFV_BOUNDS_DAYS)
    segments = sorted({g.segment for g in groups})
    stages: Tally[tuple[str, str, str]] = Tally()
    breached: Tally[tuple[str, str, bool]] = Tally()
    risky: Tally[str] = Tally()
    for g in groups:
        stages[(g.segment, g.stage or NO_STAGE, g.status)] += g.count
        breached[(g.segment, g.breach, g.first_value_reached)] += g.count
        risky[g.segment] += g.count if g.at_risk else 0

    onboardings = GaugeMetricFamily(
        "firstvalue_onboardings",
        "Onboardings by segment, current stage (none: past the last stage) and status.",
        labels=["segment", "stage", "status"],
    )
    for labels, count in sorted(stages.items()):
        onboardings.add_metric(list(labels), count)

    breaches = GaugeMetricFamily(
        "firstvalue_ttfv_breach_onboardings",
        "Onboardings whose TTFV is over the plan's band (severity breach) or at 2x or more "
        "(severe), by segment; first_value=open: not reached yet, judged on elapsed days.",
        labels=["segment", "severity", "first_value"],
    )
    at_risk = GaugeMetricFamily(
        "firstvalue_at_risk_onboardings",
        "Onboardings whose tasks are all done but whose first value is not, by segment.",
        labels=["segment"],
    )
    for segment in segments:  # zeros too: a dashboard shows 0, an alert resolves
        for severity in SEVERITIES:
            for reached, name in ((False, "open"), (True, "reached")):
                breaches.add_metric(
                    [segment, severity, name], breached[(segment, severity, reached)]
                )
        at_risk.add_metric([segment], risky[segment])

    escalations = GaugeMetricFamily(
        "firstvalue_open_escalations",
        "Escalations fired and not resolved, by level.",
        labels=["level"],
    )
    for level, count in sorted(await repo.open_escalations()):
        escalations.add_metric([str(level)], count)

    deliveries = GaugeMetricFamily(
        "firstvalue_webhook_deliveries",
        "Webhook deliveries by status: pending (queued or being retried), delivered, failed "
        "(gave up after the configured attempts, or refused by the receiver).",
        labels=["status"],
    )
    counts = await WebhookDeliveryRepository(session).counts()
    for status in WEBHOOK_STATUSES:  # zeros too, so a rate or an alert has a series
        deliveries.add_metric([status], counts.get(status, 0))

    families = [onboardings, breaches, at_risk, escalations, deliveries]
    return [*families, _ttfv_family(segments, groups)]


def _ttfv_family(segments: Sequence[str], groups: Sequence[ProjectionGroup]) -> Metric:
    family = HistogramMetricFamily(
        "firstvalue_ttfv_seconds",
        "Time to first value of the onboardings that reached it (signature to first-value "
        "milestone), by segment.",
        labels=["segment"],
    )
    for segment in segments:
        mine = [g for g in groups if g.segment == segment and g.ttfv_count]
        if not mine:
            continue
        cumulative = [sum(g.ttfv_cumulative[i] for g in mine) for i in range(len(TTFV_BOUNDS_DAYS))]
        buckets = [(_le(days), n) for days, n in zip(TTFV_BOUNDS_DAYS, cumulative, strict=True)]
        total = sum(g.ttfv_count for g in mine)
        sum_seconds = sum(g.ttfv_sum_days for g in mine) * DAY_SECONDS
        family.add_metric([segment], [*buckets, ("+Inf", total)], sum_value=sum_seconds)
    return family


def _le(days: float) -> str:
    return floatToGoString(days * DAY_SECONDS)  # "604800.0", as prometheus_client writes it


async def observe_timer_lateness(
    session: AsyncSession, onboarding_ids: Sequence[str], now: datetime
) -> None:
    """Timers hook: before re-projecting due onboardings, observe how late each one is."""
    due = await MetricsRepository(session).due_moments(onboarding_ids)
    record_lateness((now - at).total_seconds() for at in due)
