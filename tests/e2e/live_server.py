"""A real uvicorn server of the app on a free loopback port, for clients that speak real HTTP
(the vendors' SDKs): the embedded pipeline and the server run on their own event loop in a
background thread, every request is logged (method, path, status, headers) so tests can
count what a client sent, and ``call`` runs a coroutine on the server's loop (to read the
database the pipeline writes).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession

from firstvalue.embedded import Pipeline, start_pipeline
from services.api.app import create_app
from services.api.http_server import uvicorn_options
from shared.config import load_settings
from shared.domain.facts import EventObserved
from shared.storage.api_keys import ApiKeyRepository
from shared.storage.events import EventRepository

from .stack import fresh_database, postgres_server_url

T = TypeVar("T")
START_DEADLINE = 60.0


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: str
    status: int
    headers: dict[str, str]


class RequestLog:
    """ASGI wrapper that records every HTTP request the app answered."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[Seen] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        query = scope.get("query_string", b"").decode()

        async def capture(message: Any) -> None:
            if message["type"] == "http.response.start":  # logged before the client can see it
                seen = Seen(scope["method"], scope["path"], query, message["status"], headers)
                self.seen.append(seen)
            await send(message)

        await self.app(scope, receive, capture)


@dataclass
class LiveServer:
    url: str
    read_key: str
    log: RequestLog
    pipeline: Pipeline
    loop: asyncio.AbstractEventLoop

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.read_key}"}

    def requests(self, path: str | None = None) -> list[Seen]:
        return [s for s in self.log.seen if path is None or s.path == path]

    def call(self, work: Callable[[AsyncSession], Awaitable[T]], timeout: float = 30) -> T:
        """Run ``work(session)`` on the server's loop, in a read-only session."""

        async def run() -> T:
            async with self.pipeline.sessionmaker() as session:
                return await work(session)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class _Server(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the test process owns its signals


@contextmanager
def live_server(backend: str, directory: Path, **settings: Any) -> Iterator[LiveServer]:
    """Serve the app (with its embedded pipeline) on ``backend`` until the block ends."""
    if backend == "postgresql":
        postgres_server_url()  # skip (or fail in CI) here, in the test's thread
    sock = _bound_socket()
    started: Future[LiveServer] = Future()
    stop = threading.Event()

    async def main() -> None:
        async with fresh_database(backend, directory) as url:
            config = load_settings(database_url=url, **({"ingest_auth": "open"} | settings))
            async with start_pipeline(config) as pipeline:
                async with pipeline.sessionmaker() as session, session.begin():
                    read_key = await ApiKeyRepository(session).create(
                        "sdk-e2e", ("read",), datetime.now(UTC)
                    )
                app = create_app(
                    config, plans=pipeline.plans, sessionmaker=pipeline.sessionmaker,
                    bus=pipeline.bus,
                )  # fmt: skip
                log = RequestLog(app)
                server = _Server(
                    uvicorn.Config(
                        log,
                        log_level="warning",
                        lifespan="on",
                        server_header=False,
                        **uvicorn_options(),
                    )
                )
                serving = asyncio.create_task(server.serve(sockets=[sock]))
                while not server.started and not serving.done():
                    await asyncio.sleep(0.01)
                host, port = sock.getsockname()[:2]
                started.set_result(
                    LiveServer(
                        f"http://{host}:{port}", read_key, log, pipeline,
                        asyncio.get_running_loop(),
                    )
                )  # fmt: skip
                while not stop.is_set() and not serving.done():
                    pipeline.check()
                    await asyncio.sleep(0.05)
                server.should_exit = True
                await serving

    def thread_main() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced to the test through the future
            if not started.done():
                started.set_exception(exc)
            else:
                raise

    thread = threading.Thread(target=thread_main, name="live-server", daemon=True)
    thread.start()
    try:
        yield started.result(START_DEADLINE)
    finally:
        stop.set()
        thread.join(30)
        sock.close()


def completed_milestone(
    server: LiveServer, onboarding_id: str, key: str, deadline: float = 30
) -> dict[str, Any]:
    """Poll the REST API until the milestone is complete; its JSON (with evidence)."""
    until = time.monotonic() + deadline
    last: Any = None
    while time.monotonic() < until:
        response = httpx.get(
            f"{server.url}/v1/onboardings/{onboarding_id}", headers=server.auth, timeout=10
        )
        if response.status_code == 200:
            last = next(m for m in response.json()["milestones"] if m["key"] == key)
            if last["progress"] == "complete":
                return dict(last)
        time.sleep(0.05)  # poll interval, bounded by the deadline
    raise AssertionError(f"{key} of {onboarding_id} did not complete in {deadline}s: {last}")


def stored_events(server: LiveServer, account_id: str) -> list[EventObserved]:
    """The events stored for an account, read on the server's loop."""

    async def read(session: AsyncSession) -> list[EventObserved]:
        return await EventRepository(session).for_account(account_id)

    return server.call(read)


def wait_stored(
    server: LiveServer,
    account_id: str,
    ids: set[str] | None = None,
    *,
    count: int | None = None,
    deadline: float = 30,
) -> list[EventObserved]:
    """Poll until every id in ``ids`` (or at least ``count`` events) is stored for the
    account; all its events."""
    until = time.monotonic() + deadline
    while True:
        events = stored_events(server, account_id)
        if (ids or set()) <= {e.id for e in events} and len(events) >= (count or 0):
            return events
        if time.monotonic() > until:
            raise AssertionError(f"not stored for {account_id} in {deadline}s: {events}")
        time.sleep(0.05)  # poll interval, bounded by the deadline
