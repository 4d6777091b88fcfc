"""The API's metrics: request counts and latency recorded by middleware under route
templates (never raw paths or account ids), and ``/metrics``, which adds the database-derived
gauges (``shared.observability.database``) read at scrape time."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from services.api.dependencies import runtime
from shared.bus import topics
from shared.observability.bus import BusMetrics
from shared.observability.database import DatabaseMetrics
from shared.observability.metrics import HTTP_DURATION, HTTP_REQUESTS
from shared.observability.server import CONTENT_TYPE, render

router = APIRouter(tags=["operations"])


async def record(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Middleware: count and time every request under its route template."""
    started = time.perf_counter()
    status = 500
    try:
        response = await call_next(request)
        status = response.status_code
        return response
    finally:
        route = request.scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        HTTP_REQUESTS.labels(request.method, template, str(status)).inc()
        HTTP_DURATION.labels(request.method, template).observe(time.perf_counter() - started)


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    """Prometheus exposition: this process's counters and histograms, and gauges read from
    the database (the same on every API instance; cached for a few seconds)."""
    readers = _readers(request)
    await readers.database.refresh()
    if readers.bus is not None:
        await readers.bus.refresh()
    return Response(render(readers.database), media_type=CONTENT_TYPE)


@dataclass(frozen=True)
class _Readers:
    database: DatabaseMetrics
    bus: BusMetrics | None  # embedded only: the pipeline shares this process's bus


def _readers(request: Request) -> _Readers:
    """Made once per app, on its first scrape, from the lifespan's resources. In the
    embedded runtime (in-memory bus) the API also reports the pipeline's lag and DLQ; in
    production `firstvalue ingest`/`milestones` report those from Kafka themselves."""
    readers: _Readers | None = getattr(request.app.state, "metrics_readers", None)
    if readers is None:
        state = runtime(request)
        bus = None
        if state.bus is not None and state.settings.kafka_bootstrap_servers is None:
            groups = [(topics.EVENTS, "ingest"), (topics.FACTS, "milestones")]
            bus = BusMetrics(state.bus, groups, dlq=True)
        readers = _Readers(DatabaseMetrics(state.read_sessionmaker), bus)
        request.app.state.metrics_readers = readers
    return readers
