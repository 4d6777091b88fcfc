"""The API's metrics: request counts and latency recorded by middleware under route
templates (never raw paths or account ids), and ``/metrics``, which adds the database-derived
gauges (``shared.observability.database``) read at scrape time."""

from __future__ import annotations

import time
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.dependencies import runtime
from shared.bus import topics
from shared.observability.bus import BusMetrics
from shared.observability.database import DatabaseMetrics
from shared.observability.metrics import HTTP_DURATION, HTTP_REQUESTS
from shared.observability.server import CONTENT_TYPE, render

router = APIRouter(tags=["operations"])


class RequestMetrics:
    """ASGI middleware: count and time every request under its route template. Plain ASGI
    rather than ``BaseHTTPMiddleware``, whose per-request task and streams cost more than
    the counting itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")  # set by the router on this same scope
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            HTTP_REQUESTS.labels(method, template, str(status)).inc()
            HTTP_DURATION.labels(method, template).observe(time.perf_counter() - started)


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
