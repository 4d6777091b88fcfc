"""The fault suite's own servers and services: a durable PostgreSQL (``postgres.sh start
--durable``) and a broker (``kafka.sh start``), private to the suite so it can stop, restart
and freeze them without disturbing other tests; and ``firstvalue ingest``, ``milestones`` and
``api`` as separate processes on them, as an operator runs them.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus import topics
from shared.bus.kafka import KafkaBus

REPO = Path(__file__).parents[2]
SCRIPTS = REPO / "deploy" / "local"
FIRSTVALUE = Path(sys.executable).with_name("firstvalue")
SERVICES = ("ingest", "milestones", "api")


def script(name: str, *args: str) -> str:
    """Run ``deploy/local/NAME.sh ARGS``; its stdout (a URL, an address), or fail with its
    stderr."""
    done = subprocess.run(
        ["bash", str(SCRIPTS / f"{name}.sh"), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"{name}.sh {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_env(database_url: str, bootstrap: str, **extra: str) -> dict[str, str]:
    """The environment of a service: none of the test run's FIRSTVALUE_* settings (not its
    permission to use a non-durable database either), only these. Ingest is declared open:
    these services take their events from Kafka, and the HTTP ingest is not under test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIRSTVALUE_")}
    return env | {
        "FIRSTVALUE_DATABASE_URL": database_url,
        "FIRSTVALUE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "FIRSTVALUE_INGEST_AUTH": "open",
        **extra,
    }


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    port: int  # the API's port, or the service's /metrics port

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass
class Stack:
    """The suite's servers and the three services running on them."""

    folder: Path
    database_url: str
    bootstrap: str
    services: dict[str, Service] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.services['api'].port}"

    def postgres(self, command: str, *args: str) -> None:
        script("postgres", command, str(self.folder / "postgres"), *args)

    def kafka(self, command: str) -> None:
        script("kafka", command, str(self.folder / "kafka"))

    def start_services(self) -> None:
        for name in SERVICES:
            port = free_port()
            settings = {
                "api": {"FIRSTVALUE_API_PORT": str(port)},
                "ingest": {"FIRSTVALUE_INGEST_METRICS_PORT": str(port)},
                "milestones": {"FIRSTVALUE_MILESTONES_METRICS_PORT": str(port)},
            }[name]
            log = self.folder / f"{name}.log"
            with log.open("ab") as out:
                process = subprocess.Popen(
                    [str(FIRSTVALUE), name],
                    env=service_env(self.database_url, self.bootstrap, **settings),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                )
            self.services[name] = Service(name, process, log, port)

    def stop_services(self) -> None:
        for service in self.services.values():
            if service.alive():
                service.process.terminate()
        for service in self.services.values():
            try:
                service.process.wait(40)
            except subprocess.TimeoutExpired:
                service.process.kill()
                service.process.wait()

    def assert_running(self) -> None:
        for service in self.services.values():
            assert service.alive(), f"{service.name} exited:\n" + "\n".join(service.lines()[-30:])


@contextmanager
def durable_stack(folder: Path) -> Iterator[Stack]:
    """Durable PostgreSQL + a broker from the project's scripts, stopped afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)  # PostgreSQL runs as its own user and must reach its folder
    started: list[tuple[str, Path]] = []
    try:
        database_url = script("postgres", "start", str(folder / "postgres"), "--durable")
        started.append(("postgres", folder / "postgres"))
        bootstrap = script("kafka", "start", str(folder / "kafka"))
        started.append(("kafka", folder / "kafka"))
        yield Stack(folder, database_url, bootstrap)
    finally:
        for name, where in started:
            subprocess.run(["bash", str(SCRIPTS / f"{name}.sh"), "stop", str(where)], check=False)


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, *, deadline: float, every: float = 0.1
) -> float:
    """Poll ``check`` until it holds; returns the seconds it took, fails after ``deadline``.
    A check that raises (its server is still down) counts as not yet."""
    start = time.monotonic()
    last: Exception | None = None
    while True:
        try:
            if await check():
                return time.monotonic() - start
        except Exception as error:
            last = error
        if time.monotonic() - start > deadline:
            raise AssertionError(f"timed out after {deadline:g} s waiting for {what}") from last
        await asyncio.sleep(every)


async def readyz(stack: Stack) -> tuple[int, dict[str, Any], float]:
    """``GET /readyz``: status, body and how long the answer took."""
    start = time.monotonic()
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"{stack.api}/readyz")
    return response.status_code, response.json(), time.monotonic() - start


async def answers_ready(stack: Stack) -> bool:
    try:
        return (await readyz(stack))[0] == 200
    except httpx.HTTPError:
        return False


async def dependency_up(service: Service, dependency: str) -> float | None:
    """``firstvalue_dependency_up{dependency}`` on a pipeline service's /metrics (a scrape
    also reads the consumer lag, which may wait up to 5 s for a broker that is down)."""
    async with httpx.AsyncClient(timeout=15) as client:
        body = (await client.get(f"http://127.0.0.1:{service.port}/metrics")).text
    prefix = f'firstvalue_dependency_up{{dependency="{dependency}"}} '
    values = [float(line[len(prefix) :]) for line in body.splitlines() if line.startswith(prefix)]
    return values[0] if values else None


def gauge_at(service: Service, dependency: str, value: float) -> Callable[[], Awaitable[bool]]:
    """A check: the service's ``firstvalue_dependency_up{dependency}`` reads ``value``."""

    async def check() -> bool:
        return await dependency_up(service, dependency) == value

    return check


class Events:
    """Segment events of one test: an onboarding per account (a ``Contract Signed``) and
    usage events, each with its own ``messageId``; produced with ``acks=all``, so a produced
    event is one the broker acknowledged."""

    def __init__(self, bus: KafkaBus, accounts: int = 10) -> None:
        self.bus = bus
        self.tag = f"f{uuid.uuid4().hex[:8]}"
        self.accounts = [f"{self.tag}-acct-{n}" for n in range(accounts)]
        self.produced = 0  # usage events the broker acknowledged
        self._sequence = 0

    def _message(self, account: str, **fields: object) -> tuple[str, bytes]:
        self._sequence += 1
        message = {
            "type": "track",
            "messageId": f"{self.tag}-{self._sequence}",
            "timestamp": datetime.now(UTC).isoformat(),
            **fields,
        }
        return account, orjson.dumps(message)

    async def sign(self) -> None:
        contracts = [
            self._message(
                a,
                userId="crm-bot",
                event="Contract Signed",
                properties={"account_id": a, "plan": "smb"},
            )
            for a in self.accounts
        ]
        await self.bus.publish_many(topics.EVENTS, contracts)

    async def use(self, count: int) -> None:
        items = [
            self._message(
                account := self.accounts[n % len(self.accounts)],
                userId=f"{account}-user-{n % 3}",
                event="Logged In",
                properties={"account_id": account},
            )
            for n in range(count)
        ]
        await self.bus.publish_many(topics.EVENTS, items)
        self.produced += len(items)

    async def stored(self, sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
        """This test's usage events in the database: rows, and distinct message ids."""
        async with sessions() as session:
            found = await session.execute(
                text(
                    "SELECT count(*), count(DISTINCT id) FROM events "
                    "WHERE account_id LIKE :tag AND name = 'Logged In'"
                ),
                {"tag": f"{self.tag}-%"},
            )
            rows, distinct = found.one()
            return int(rows), int(distinct)
