"""The server options the app runs with (``services.api.http_server``), on both of uvicorn's
HTTP implementations: a 60 KB request line (mixpanel-node's GET of a 45 KB event) is served;
a head past the limit, or a request that is not HTTP, gets a 400 whose JSON body both
vendors' SDKs read as an error, and the reply arrives whole (no reset)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn

from services.api import http_server
from services.api.http_server import MAX_REQUEST_HEAD_BYTES

pytestmark = pytest.mark.e2e


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers every request with the length of its query string."""
    if scope["type"] != "http":
        return
    body = json.dumps({"query_bytes": len(scope["query_string"])}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


OPTIONS = {
    "h11": {"http": http_server.VendorErrorH11Protocol,
            "h11_max_incomplete_event_size": MAX_REQUEST_HEAD_BYTES},
    "httptools": {"http": http_server._httptools_protocol()},
}  # fmt: skip


@contextmanager
def serving(options: dict[str, Any]) -> Iterator[tuple[str, int]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(_app, log_level="warning", lifespan="off", **options)
    server = uvicorn.Server(config)
    ready: Future[None] = Future()

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        ready.set_result(None)
        await task

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    ready.result(10)
    try:
        yield sock.getsockname()[:2]
    finally:
        server.should_exit = True
        thread.join(10)


def _exchange(address: tuple[str, int], request: bytes) -> tuple[int, dict[str, Any]]:
    with socket.create_connection(address, timeout=20) as connection:
        connection.sendall(request)
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


@pytest.mark.parametrize("implementation", OPTIONS)
def test_large_heads_are_served_and_oversize_or_broken_ones_get_the_vendor_shape(
    implementation: str,
) -> None:
    options = OPTIONS[implementation]
    if options["http"] is None:
        pytest.skip("httptools is not installed")
    with serving(options) as address:
        line = b"GET /track?data=" + b"a" * 60_000 + b" HTTP/1.1\r\nHost: t\r\n"
        status, body = _exchange(address, line + b"Connection: close\r\n\r\n")
        assert (status, body) == (200, {"query_bytes": 60_005})
        huge = b"GET /track?data=" + b"a" * (MAX_REQUEST_HEAD_BYTES + 10) + b" HTTP/1.1\r\n\r\n"
        for request in (huge, b"NOT HTTP AT ALL\r\n\r\n"):
            status, body = _exchange(address, request)
            assert status == 400
            assert body["status"] == 0 and body["code"] == "invalid_request"
            assert body["error"] == body["message"] and "limited to" in body["error"]
