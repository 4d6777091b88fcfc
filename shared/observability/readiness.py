"""Readiness: is each dependency (the database, the broker) answering right now?

Each probe has a timeout, so a stalled dependency (a frozen server accepts connections and
never replies) reads as down within a second instead of hanging the probe. What the probes
see is the process's view of its dependencies: the ``firstvalue_dependency_up`` gauge, and
one log line when a dependency goes down, every minute while it stays down, and when it is
back (``outages.Outage``). The API's ``/readyz`` probes on each request; the pipeline
services keep probing in the background (``Readiness.watch``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus.outages import Outage
from shared.observability.metrics import DEPENDENCY_UP

log = logging.getLogger(__name__)
PROBE_TIMEOUT_SECONDS = 0.5  # /readyz answers within a second, whatever a dependency does
WATCH_SECONDS = 5.0  # between background probes while everything is up
WATCH_DOWN_SECONDS = 1.0  # ... and while something is down, to see it back soon

Check = dict[str, str | float]


@runtime_checkable
class Probed(Protocol):
    """A bus that can tell whether its broker answers (``KafkaBus``; the in-memory bus
    lives in the process and has nothing to probe)."""

    async def probe(self) -> None: ...


def _dependency(name: str) -> Outage:
    gauge = DEPENDENCY_UP.labels(name)
    return Outage(name, on_change=lambda up: gauge.set(1 if up else 0), logger=log)


# One per process, like the gauge it drives.
DEPENDENCIES = {name: _dependency(name) for name in ("database", "kafka")}


async def probe_database(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """A trivial query; raises when the database does not answer it."""
    async with sessionmaker() as session:
        await session.execute(text("SELECT 1"))


class Readiness:
    """The probes of one process: the database always, the broker when there is one."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bus: object | None = None,
        *,
        timeout_seconds: float = PROBE_TIMEOUT_SECONDS,
    ) -> None:
        self._probes: dict[str, Callable[[], Awaitable[None]]] = {
            "database": lambda: probe_database(sessionmaker)
        }
        if isinstance(bus, Probed):
            self._probes["kafka"] = bus.probe
        self._timeout = timeout_seconds

    async def check(self) -> dict[str, Check]:
        """Probe every dependency at once; each answers within the timeout or is down."""
        names = list(self._probes)
        results = await asyncio.gather(*(self._probe(name) for name in names))
        return dict(zip(names, results, strict=True))

    async def _probe(self, name: str) -> Check:
        dependency = DEPENDENCIES[name]
        try:
            await _within(self._probes[name](), self._timeout)
        except TimeoutError:
            dependency.down(f"no answer within {self._timeout:g} s")
        except Exception as error:  # down, whatever the reason: report it, never raise
            dependency.down(error)
        else:
            dependency.up()
            return {"status": "up"}
        return {
            "status": "down",
            "error": dependency.reason,
            "down_seconds": round(dependency.down_for(), 1),
        }

    async def watch(self) -> None:
        """Probe until cancelled: the gauge and the state-change log lines stay current."""
        while True:
            checks = await self.check()
            down = any(check["status"] != "up" for check in checks.values())
            await asyncio.sleep(WATCH_DOWN_SECONDS if down else WATCH_SECONDS)


_ABANDONED: set[asyncio.Task[None]] = set()  # cancelled probes still winding down


async def _within(probe: Awaitable[None], timeout: float) -> None:
    """``probe``, or TimeoutError after ``timeout`` seconds — a hard deadline: unlike
    ``wait_for`` it does not wait for the cancelled probe to wind down (a driver closing
    the connection to a stalled server can take seconds); that finishes in the background,
    its error collected."""
    task = asyncio.ensure_future(probe)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if task in done:
        return task.result()
    task.cancel()
    _ABANDONED.add(task)
    task.add_done_callback(_collected)
    raise TimeoutError


def _collected(task: asyncio.Task[None]) -> None:
    _ABANDONED.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a probe's late failure is no news


def is_ready(checks: dict[str, Check]) -> bool:
    return all(check["status"] == "up" for check in checks.values())
