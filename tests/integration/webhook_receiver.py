"""A real HTTP webhook receiver on 127.0.0.1 (uvicorn, in the test's event loop) that
records every request and answers from a script: a status per request, optional delays."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """``answer(n)`` gives (status, delay seconds) for the n-th request (0-based)."""

    answer: Callable[[int], tuple[int, float]] = lambda n: (200, 0.0)
    received: list[Received] = field(default_factory=list)
    answered: int = 0  # requests whose reply has been sent
    url: str = ""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            event = await receive()
            chunks.append(event.get("body", b""))
            if not event.get("more_body"):
                break
        n = len(self.received)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.received.append(Received(headers, b"".join(chunks)))
        status, delay = self.answer(n)
        if delay:
            await asyncio.sleep(delay)  # a slow receiver, as seen by the sender
        reply = b"ok" if status < 400 else b"receiver says no"
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": reply})
        self.answered += 1


@asynccontextmanager
async def serving(receiver: Receiver) -> AsyncIterator[Receiver]:
    """Serve ``receiver`` on a free loopback port; sets ``receiver.url``."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        receiver, log_level="warning", lifespan="off", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    receiver.url = f"http://127.0.0.1:{port}/hooks/firstvalue"
    try:
        yield receiver
    finally:
        server.should_exit = True
        server.force_exit = True
        await asyncio.wait({task}, timeout=5)
        sock.close()


def closed_port_url() -> str:
    """A loopback URL nothing listens on (connection refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/nobody-home"
