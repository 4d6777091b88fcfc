"""Replay's pages: every onboarding id in keyset pages, and ``replay_range``, which
re-projects the onboardings of one id range at ``now`` through the projector's own path
(one transaction per page, transitions queued in the outbox), a few pages in flight.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.domain.plans import Plan
from shared.projection.projector import project_many
from shared.storage.onboardings import OnboardingRepository

PAGE = 500  # onboardings per transaction: a few statements each
IN_FLIGHT = 2  # pages projected at once per process (PostgreSQL)
Progress = Callable[[int], object]  # called with how many onboardings a page held
YOUNG = 10_000  # allocations between young collections while replaying (Python's default: 700)


async def pages(
    sessionmaker: async_sessionmaker[AsyncSession],
    size: int = PAGE,
    *,
    after: str | None = None,
    through: str | None = None,
) -> AsyncIterator[list[str]]:
    while True:
        async with sessionmaker() as session:
            ids = await OnboardingRepository(session).ids(after, size, through=through)
        if ids:
            yield ids
        if len(ids) < size:
            return
        after = ids[-1]


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Run the cycle collector's young generation every ``YOUNG`` allocations instead of
    every 700 while a replay runs, then restore it. A page allocates hundreds of thousands
    of short-lived objects (rows, events, stand-ins, states) that reference counting
    frees; each collection only walks them, and that walking was about a fifth of
    replay's CPU. Cycles are still collected, later."""
    threshold = gc.get_threshold()
    gc.set_threshold(max(YOUNG, threshold[0]), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)


async def all_ids(sessionmaker: async_sessionmaker[AsyncSession]) -> list[str]:
    """Every onboarding id in id order (keyset pages: no table scan held open)."""
    return [i async for page in pages(sessionmaker, 10_000) for i in page]


async def count_onboardings(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """How many onboardings there are (keyset pages of ids: no table scan held open)."""
    return sum([len(page) async for page in pages(sessionmaker, 10_000)])


async def replay_range(
    sessionmaker: async_sessionmaker[AsyncSession],
    plans: Mapping[str, Plan],
    now: datetime,
    on_page: Progress = lambda n: None,
    *,
    after: str | None = None,
    through: str | None = None,
    in_flight: int = 1,
) -> int:
    """``replay_all`` over the ids after ``after`` up to ``through`` (None: no bound), in
    this process. With ``in_flight`` > 1 (PostgreSQL; SQLite has one writer) that many pages
    are projected at once, each on its own connection: pages are disjoint and lock in id
    order, so they never deadlock, and Python evaluates one page while the server reads or
    writes another."""
    queue = aiter(pages(sessionmaker, after=after, through=through))
    turn = asyncio.Lock()  # one reader of the id pages at a time

    async def worker() -> int:
        projected = 0
        while True:
            async with turn:
                ids = await anext(queue, None)
            if ids is None:
                return projected
            async with sessionmaker() as session, session.begin():
                projected += len(await project_many(session, plans, ids, now))
            on_page(len(ids))

    with fewer_collections():
        return sum(await asyncio.gather(*(worker() for _ in range(max(1, in_flight)))))
