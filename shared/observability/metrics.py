"""Every process-local Prometheus instrument, in one place: services import and record them.

Names are ``firstvalue_<thing>_total`` / ``_seconds``; labels stay low-cardinality (route
templates, sources, reasons, levels — never account or onboarding ids). Gauges that describe
the database (onboardings, breaches, escalations, TTFV) are not here: they are read from the
database at scrape time (``database.DatabaseMetrics``), so every API instance agrees.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Sequence
from typing import Protocol

import orjson
from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

disable_created_metrics()  # no `_created` series: they double every counter for no alert

# --- API ---------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "firstvalue_http_requests_total",
    "HTTP requests served by the API, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "firstvalue_http_request_duration_seconds",
    "Time to serve an HTTP request, by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
HTTP_INGESTED = Counter(
    "firstvalue_http_ingest_messages_total",
    "Messages received on the HTTP ingest endpoints, by endpoint and outcome.",
    ["endpoint", "outcome"],
)

# --- ingest ------------------------------------------------------------------------------
INGEST_EVENTS = Counter(
    "firstvalue_ingest_events_total",
    "Events decoded from analytics.events (a redelivered batch counts again), by source "
    "(segment, mixpanel, unknown) and outcome (valid: normalised, sent to storage; "
    "rejected: dead-lettered).",
    ["source", "outcome"],
)
INGEST_STORED = Counter(
    "firstvalue_ingest_stored_events_total",
    "Valid events after their batch committed, by outcome (accepted: new; duplicate: seen "
    "before; pending: parked until their user is tied to an account).",
    ["outcome"],
)
INGEST_REGISTERED = Counter(
    "firstvalue_ingest_onboardings_registered_total",
    "Onboardings registered by Contract Signed events.",
)
INGEST_BATCHES = Counter(
    "firstvalue_ingest_batches_total",
    "analytics.events batches stored and committed (offsets included).",
)
DEAD_LETTERS = Counter(
    "firstvalue_ingest_dead_letters_total",
    "Records published to analytics.events.dlq, by reason.",
    ["reason"],
)

# --- bus (sampled from Kafka at scrape time by bus.BusMetrics) ---------------------------
CONSUMER_LAG = Gauge(
    "firstvalue_consumer_lag_messages",
    "Messages not yet committed by a consumer group: end offsets minus committed offsets.",
    ["topic", "group"],
)
DLQ_MESSAGES = Gauge(
    "firstvalue_dlq_messages",
    "Messages held in the dead-letter topic (its end offsets minus its first offsets).",
    ["topic"],
)
BUS_SCRAPE_ERRORS = Counter(
    "firstvalue_bus_scrape_errors_total",
    "Scrapes whose lag or DLQ reading failed (the gauges keep their last value).",
)

# --- database-derived gauges (database.DatabaseMetrics) ---------------------------------
DATABASE_SCRAPE_ERRORS = Counter(
    "firstvalue_database_scrape_errors_total",
    "Scrapes whose database-derived metrics could not be read (they are then left out).",
)

# --- milestones --------------------------------------------------------------------------
UNPROJECTABLE = Counter(
    "firstvalue_unprojectable_onboardings_total",
    "Projections skipped because the onboarding is unknown or its plan is not loaded (its "
    "last projection stays), by reason: unknown_onboarding, unknown_plan.",
    ["reason"],
)
TIMER_LATENESS = Histogram(
    "firstvalue_timer_lateness_seconds",
    "When a timer fires: now minus the onboarding's due moment (SLA deadline, escalation "
    "day, silence). Includes the timer interval; DESIGN.md promises under a minute.",
    buckets=(1, 5, 15, 30, 45, 60, 90, 120, 300, 900, 3600, 21600, 86400),
)


def record_decoded(sources: Iterable[str], rejected: Iterable[bytes]) -> None:
    """Count one decoded batch: each valid event's source, and each rejected record (its
    raw bytes) under the ``_source`` marker the HTTP ingest stamps, else ``unknown``."""
    for source, count in Tally(sources).items():
        INGEST_EVENTS.labels(source, "valid").inc(count)
    for source, count in Tally(map(marked_source, rejected)).items():
        INGEST_EVENTS.labels(source, "rejected").inc(count)


def marked_source(record: bytes) -> str:
    """``segment``/``mixpanel`` from a raw record's ``_source`` marker, else ``unknown``."""
    try:
        data = orjson.loads(record)
    except orjson.JSONDecodeError:
        return "unknown"
    source = data.get("_source") if isinstance(data, dict) else None
    return source if source in ("segment", "mixpanel") else "unknown"


class BatchOutcome(Protocol):
    """What ingest reports of a committed batch (``services.ingest.consumer.IngestResult``)."""

    accepted: int
    duplicates: int
    pending: int
    registered: int

    @property
    def rejected(self) -> Sequence[Rejection]: ...


class Rejection(Protocol):
    @property
    def reason(self) -> str: ...


def record_stored(batch: BatchOutcome) -> None:
    """Count one committed batch: its stored outcomes and its dead letters by reason."""
    INGEST_BATCHES.inc()
    INGEST_STORED.labels("accepted").inc(batch.accepted)
    INGEST_STORED.labels("duplicate").inc(batch.duplicates)
    INGEST_STORED.labels("pending").inc(batch.pending)
    INGEST_REGISTERED.inc(batch.registered)
    for reason, count in Tally(r.reason for r in batch.rejected).items():
        DEAD_LETTERS.labels(reason).inc(count)


def record_lateness(seconds: Iterable[float]) -> None:
    """Observe each fired timer's lateness (clamped at 0: a timer is never early)."""
    for value in seconds:
        TIMER_LATENESS.observe(max(value, 0.0))


# --- dependencies (observability.readiness) ----------------------------------------------
DEPENDENCY_UP = Gauge(
    "firstvalue_dependency_up",
    "1 while the dependency answered its last readiness probe within its timeout, 0 while "
    "it is down or stalled, by dependency (database, kafka).",
    ["dependency"],
)


# --- watermark (docs/watermark.md) -------------------------------------------------------
WATERMARK_LAG = Gauge(
    "firstvalue_watermark_lag_seconds",
    "How far behind the clock the input's watermark is, in seconds (0: caught up and idle): "
    "how much of what falls due is held back until the input is read. Set by ingest per "
    "batch, by the milestones service per batch of notices, and by the API's /readyz.",
)


def record_watermark_lag(seconds: float) -> None:
    WATERMARK_LAG.set(max(seconds, 0.0))
