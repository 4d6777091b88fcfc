"""HTTP metrics for the API, recorded by middleware; labels stay low-cardinality (route
templates, never raw paths or account ids)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from prometheus_client import Counter, Histogram

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


async def record(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
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

INGESTED = Counter(
    "firstvalue_http_ingest_messages_total",
    "Messages received on the HTTP ingest endpoints, by endpoint and outcome.",
    ["endpoint", "outcome"],
)
