"""``/metrics`` for the pipeline services, which serve no HTTP otherwise: a small asyncio
server in the service's own event loop, so a scrape can await fresh readings (consumer lag
from Kafka) before the exposition is rendered.

Only ``GET /metrics``, ``/healthz`` (the process runs) and ``/readyz`` (no dependency is down,
as the service's background probes last saw it) are answered, one request per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, REGISTRY, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from shared.observability.readiness import DEPENDENCIES

log = logging.getLogger(__name__)
Refresh = Callable[[], Awaitable[None]]
# The classic text format: what every Prometheus 2.x (Debian's 2.42 included) understands.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
REQUEST_TIMEOUT_SECONDS = 10.0
MAX_HEADER_BYTES = 16_384


class _Chain:
    """The process registry followed by collectors of the caller's (not registered
    globally: several apps in one process would otherwise clash on their names)."""

    def __init__(self, extra: Iterable[Collector]) -> None:
        self._extra = tuple(extra)

    def collect(self) -> Iterable[Metric]:
        yield from REGISTRY.collect()
        for collector in self._extra:
            yield from collector.collect()


def render(*extra: Collector) -> bytes:
    """The text exposition of every process metric plus ``extra`` collectors."""
    return generate_latest(_Chain(extra))


@asynccontextmanager
async def metrics_server(
    host: str, port: int, refreshers: Sequence[Refresh] = ()
) -> AsyncIterator[int | None]:
    """Serve ``/metrics`` on ``host:port`` (0: any free port) while the block runs; yields
    the bound port. A port that cannot be bound is logged and yields None: the service's
    work matters more than its metrics."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_SECONDS)
            status, body, kind = await _answer(head, refreshers)
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass  # a client that went away or sent no request: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    try:
        server = await asyncio.start_server(handle, host, port, limit=MAX_HEADER_BYTES)
    except OSError as error:
        log.error("metrics endpoint not started on %s:%d: %s", host, port, error)
        yield None
        return
    bound = server.sockets[0].getsockname()[1]
    log.info("metrics on http://%s:%d/metrics", host, bound)
    try:
        yield bound
    finally:
        server.close()
        await server.wait_closed()


async def _answer(head: bytes, refreshers: Sequence[Refresh]) -> tuple[str, bytes, str]:
    method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
    path = rest.split(" ", 1)[0].split("?", 1)[0]
    text = "text/plain; charset=utf-8"
    if path not in ("/metrics", "/healthz", "/readyz"):
        return "404 Not Found", b"not found: try /metrics\n", text
    if method != "GET":
        return "405 Method Not Allowed", b"only GET\n", text
    if path == "/healthz":
        return "200 OK", b"ok\n", text
    if path == "/readyz":
        down = [f"{d.name} down ({d.reason})" for d in DEPENDENCIES.values() if d.is_down]
        if down:
            return "503 Service Unavailable", ("\n".join(down) + "\n").encode(), text
        return "200 OK", b"ready\n", text
    for refresh in refreshers:
        await refresh()
    return "200 OK", render(), CONTENT_TYPE
