"""REST bodies are bounded and their sender identified before a byte of the body is read
(``services/api/body_guard.py``): in process on both backends, and against a real
``firstvalue api`` process whose memory is read from ``/proc``."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
import pytest_asyncio

from services.api.routes.segment import MAX_BATCH_BYTES

from .stack import BACKENDS, Stack, api_stack, fresh_database

pytestmark = [pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 4096  # the in-process stacks' FIRSTVALUE_MAX_BODY_BYTES
HUGE = 200 * 1024 * 1024
KEY = "fv_limit_test_key"


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    directory: Path = tmp_path_factory.mktemp("api-body-limit")
    async with (
        fresh_database(request.param, directory) as url,
        api_stack(url, None, timer_interval_seconds=3600, max_body_bytes=LIMIT) as running,
    ):
        yield running


JSON = {"Content-Type": "application/json"}


def _writer(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.write_only_key}"} | JSON


def _registration(padding: int) -> bytes:
    body = {"account_id": "acct-big", "plan": "smb", "signed_at": "2026-09-01T09:00:00Z"}
    return orjson.dumps(body | {"account_name": "x" * padding})


class Chunks:
    """A streamed (chunked) request body that counts how much of it was pulled."""

    def __init__(self, count: int, size: int = 1024) -> None:
        self.count, self.size, self.pulled = count, size, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.count):
            self.pulled += 1
            yield b" " * self.size


@pytest.mark.asyncio(loop_scope="module")
async def test_a_body_without_a_key_is_401_before_it_is_read(stack: Stack) -> None:
    body = Chunks(1000)
    response = await stack.client.post(
        "/v1/onboardings", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"
    assert body.pulled <= 1  # at most what the transport pulls before the app asks


@pytest.mark.asyncio(loop_scope="module")
async def test_a_body_with_an_unknown_key_is_401_before_it_is_read(stack: Stack) -> None:
    body = Chunks(1000)
    response = await stack.client.post(
        "/v1/onboardings/x/pause", content=body, headers={"Authorization": "Bearer fv_nope"}
    )
    assert response.status_code == 401 and "unknown API key" in response.text
    assert body.pulled <= 1


@pytest.mark.asyncio(loop_scope="module")
async def test_a_declared_length_over_the_limit_is_413(stack: Stack) -> None:
    response = await stack.client.post(
        "/v1/onboardings", content=_registration(LIMIT), headers=_writer(stack)
    )
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "payload_too_large" and f"{LIMIT:,} bytes" in error["message"]


@pytest.mark.asyncio(loop_scope="module")
async def test_a_streamed_body_is_refused_as_soon_as_it_passes_the_limit(stack: Stack) -> None:
    body = Chunks(1000)
    response = await stack.client.post("/v1/onboardings", content=body, headers=_writer(stack))
    assert response.status_code == 413, response.text
    assert body.pulled <= LIMIT // body.size + 2


@pytest.mark.asyncio(loop_scope="module")
async def test_a_body_within_the_limit_reaches_the_route(stack: Stack) -> None:
    ok = await stack.client.post(
        "/v1/onboardings", content=_registration(100), headers=_writer(stack)
    )
    assert ok.status_code == 201, ok.text
    read_key = await stack.client.post(
        "/v1/onboardings", content=_registration(100), headers=stack.auth() | JSON
    )
    assert read_key.status_code == 403  # identified before the body; the scope is the route's


@pytest.mark.asyncio(loop_scope="module")
async def test_ingest_routes_keep_their_own_bounds(stack: Stack) -> None:
    """A Segment batch over the REST limit but within Segment's own is accepted; one over
    Segment's limit is refused by Segment's route, in Segment's format."""
    message = {"type": "track", "userId": "u", "event": "Big", "messageId": "m"}
    batch = {"batch": [message | {"properties": {"pad": "x" * 2 * LIMIT}}]}
    accepted = await stack.client.post("/v1/batch", json=batch)
    assert accepted.status_code == 200 and accepted.json() == {"success": True}
    too_big = {"batch": [message], "pad": "x" * MAX_BATCH_BYTES}
    refused = await stack.client.post("/v1/batch", json=too_big)
    assert refused.status_code == 400 and "over" in refused.json()["message"]


@pytest.mark.asyncio(loop_scope="module")
async def test_every_response_says_nosniff_and_no_store(stack: Stack) -> None:
    responses = [
        await stack.client.get("/v1/onboardings", headers=stack.auth()),
        await stack.client.get("/v1/onboardings"),
        await stack.client.get("/v1/onboardings/nope", headers=stack.auth()),
        await stack.client.post("/v1/onboardings", content=_registration(LIMIT)),
        await stack.client.post(
            "/v1/onboardings", content=_registration(LIMIT), headers=_writer(stack)
        ),
        await stack.client.get("/healthz"),
        await stack.client.post("/v1/track", json={"userId": "u", "event": "e"}),
    ]
    assert [r.status_code for r in responses] == [200, 401, 404, 401, 413, 200, 200]
    for response in responses:
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"


# --- a real `firstvalue api` process ------------------------------------------------------


@dataclass
class ApiProcess:
    host: str
    port: int
    process: subprocess.Popen[str]

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS in /proc status")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def api_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    folder = tmp_path_factory.mktemp("api-process")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIRSTVALUE_")}
    env |= {
        "FIRSTVALUE_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'api.db'}",
        "FIRSTVALUE_API_KEYS": f"limits:write:{KEY}",
        "FIRSTVALUE_SEGMENT_WRITE_KEYS": "wk_limit_test",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", "firstvalue"]
    migrated = subprocess.run([*command, "migrate"], cwd=folder, env=env, capture_output=True)
    assert migrated.returncode == 0, migrated.stderr
    process = subprocess.Popen(
        [*command, "api", "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[0]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "firstvalue api did not start"
            time.sleep(0.2)  # poll interval between readiness probes, bounded by the deadline
        yield ApiProcess("127.0.0.1", port, process)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


@dataclass
class Sent:
    status: int
    sent: int  # body bytes the server had taken off the wire when it answered
    seconds: float


def _post_streaming(server: ApiProcess, head: str, total: int, chunked: bool) -> Sent:
    """Send ``head`` then up to ``total`` body bytes (chunk-framed if ``chunked``) as fast
    as the server takes them, stopping when its answer arrives."""
    sock = socket.create_connection((server.host, server.port))
    try:
        sock.sendall(head.encode())
        sock.setblocking(False)
        data = b"x" * 65536
        chunk = b"%x\r\n%s\r\n" % (len(data), data) if chunked else data
        total = total // len(data) * len(chunk)
        sent, answer = 0, b""
        started = time.monotonic()
        while b"\r\n" not in answer:
            assert time.monotonic() - started < 30, f"no answer after {sent:,} bytes"
            writing = [sock] if sent < total else []
            readable, writable, _ = select.select([sock], writing, [], 0.5)
            if readable:
                data = sock.recv(65536)
                assert data, f"closed without an answer after {sent:,} bytes"
                answer += data
            elif writable:
                try:
                    offset = sent % len(chunk)
                    sent += sock.send(chunk[offset : offset + total - sent])
                except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                    pass
        seconds = time.monotonic() - started
        return Sent(int(answer.split(b" ", 2)[1]), sent, seconds)
    finally:
        sock.close()


def _head(path: str, length: int | None, key: str | None) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: firstvalue.test", "Content-Type: application/json"]
    lines.append(
        f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    )
    if key:
        lines.append(f"Authorization: Bearer {key}")
    return "\r\n".join(lines) + "\r\n\r\n"


@pytest.mark.parametrize(
    ("length", "key", "status"),
    [(HUGE, None, 401), (None, None, 401), (HUGE, KEY, 413)],
    ids=["declared, no key", "chunked, no key", "declared, with a key"],
)
def test_200_mb_to_a_rest_route_is_refused_at_once_without_growing_the_server(
    api_process: ApiProcess, length: int | None, key: str | None, status: int
) -> None:
    for _ in range(3):  # warm: the first requests allocate what every request shares
        httpx.get(f"http://127.0.0.1:{api_process.port}/v1/onboardings", timeout=10)
    before = api_process.rss_bytes()
    head = _head("/v1/onboardings", length, key)
    answer = _post_streaming(api_process, head, HUGE, chunked=length is None)
    grown = api_process.rss_bytes() - before
    assert answer.status == status
    assert answer.sent < 32 * 1024 * 1024, f"the server read {answer.sent:,} bytes first"
    assert answer.seconds < 1.0, answer
    assert grown < 50 * 1024 * 1024, f"RSS grew by {grown:,} bytes"
    health = httpx.get(f"http://127.0.0.1:{api_process.port}/healthz", timeout=5)
    assert health.status_code == 200 and "server" not in health.headers


def test_the_chunked_body_of_a_known_key_is_cut_at_the_limit(api_process: ApiProcess) -> None:
    before = api_process.rss_bytes()
    head = _head("/v1/onboardings", None, KEY)
    answer = _post_streaming(api_process, head, HUGE, chunked=True)
    assert answer.status == 413
    assert answer.sent < 32 * 1024 * 1024
    assert api_process.rss_bytes() - before < 50 * 1024 * 1024


def test_the_guard_covers_the_rest_routes_and_leaves_ingest_and_probes_alone() -> None:
    from services.api.app import _keyed_routes

    patterns = _keyed_routes()
    rest = ["/v1/onboardings", "/v1/onboardings/x", "/v1/onboardings/x/evidence"]
    rest += ["/v1/onboardings/x/pause", "/v1/onboardings/x/resume", "/v1/onboardings/x/amendments"]
    rest += ["/v1/reports/ttfv", "/v1/reports/at-risk", "/v1/escalations"]
    others = ["/v1/batch", "/v1/track", "/v1/identify", "/track", "/import", "/healthz", "/metrics"]
    assert all(any(p.match(path) for p in patterns) for path in rest)
    assert not any(p.match(path) for p in patterns for path in others)
