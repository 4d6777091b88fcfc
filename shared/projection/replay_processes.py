"""``firstvalue replay --workers N``: the onboarding ids split into N contiguous ranges, each
replayed by its own process with its own engine — evaluating a state is CPU-bound Python,
so one process uses one core however many pages it has in flight.

Ranges are disjoint and each page locks its registrations in id order, so the processes
never wait on or deadlock with each other. Processes are spawned, not forked: a fork would
inherit the parent's event loop and open connections. Progress comes back over a queue.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.domain.plans import Plan
from shared.projection.replay_pages import IN_FLIGHT, Progress, all_ids, replay_range
from shared.storage.engine import create_engine, create_sessionmaker

POLL_SECONDS = 0.5  # how often the parent checks that its workers are alive


class ReplayWorkerFailed(RuntimeError):
    """A replay process failed or died; the ranges of the others may have completed."""


def ranges(ids: list[str], parts: int) -> list[tuple[str | None, str]]:
    """``(after, through)`` bounds of up to ``parts`` contiguous, near-equal slices of the
    sorted ``ids``: a slice holds the ids ``> after`` (None: from the start) and
    ``<= through``."""
    if not ids:
        return []
    parts = max(1, min(parts, len(ids)))
    bounds: list[tuple[str | None, str]] = []
    after: str | None = None
    for k in range(1, parts + 1):
        through = ids[len(ids) * k // parts - 1]
        bounds.append((after, through))
        after = through
    return bounds


async def replay_in_processes(
    sessionmaker: async_sessionmaker[AsyncSession],
    plans: Mapping[str, Plan],
    now: datetime,
    on_page: Progress,
    workers: int,
) -> int:
    """``replay.replay_all`` over ``workers`` processes; returns how many were projected."""
    url = sessionmaker.kw["bind"].url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")
    messages: Any = context.Queue()
    processes = [
        context.Process(
            target=_run_range,
            args=(url, dict(plans), now, after, through, messages),
            name=f"firstvalue-replay-{n}",
            daemon=True,
        )
        for n, (after, through) in enumerate(ranges(await all_ids(sessionmaker), workers))
    ]
    for process in processes:
        process.start()
    projected, running = 0, len(processes)
    try:
        while running:
            try:
                kind, value = await asyncio.to_thread(messages.get, True, POLL_SECONDS)
            except queue.Empty:
                dead = [p for p in processes if p.exitcode not in (None, 0)]
                if dead:
                    failed = f"{dead[0].name} exited with {dead[0].exitcode}"
                    raise ReplayWorkerFailed(failed) from None
                continue
            if kind == "page":
                on_page(value)
            elif kind == "done":
                projected += value
                running -= 1
            else:
                raise ReplayWorkerFailed(value)
    finally:
        for process in processes:
            if process.is_alive() and running:
                process.terminate()
            await asyncio.to_thread(process.join)
    return projected


def _run_range(
    url: str,
    plans: dict[str, Plan],
    now: datetime,
    after: str | None,
    through: str,
    messages: Any,
) -> None:
    """A worker process: replay one range with its own engine, reporting pages and the total
    on ``messages``."""

    async def replay() -> int:
        engine = create_engine(url, application_name="firstvalue-replay")
        try:
            return await replay_range(
                create_sessionmaker(engine),
                plans,
                now,
                lambda n: messages.put(("page", n)),
                after=after,
                through=through,
                in_flight=IN_FLIGHT,
            )
        finally:
            await engine.dispose()

    try:
        projected = asyncio.run(replay())
    except BaseException as error:
        messages.put(("error", f"replay of ({after!r}, {through!r}] failed: {error!r}"))
        raise
    messages.put(("done", projected))
