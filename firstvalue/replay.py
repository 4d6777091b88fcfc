"""The database side of ``firstvalue plans diff`` and ``firstvalue replay``: page through
every onboarding and either fold it under two plan sets (diff: a dry run, nothing written)
or re-project it under the current plans (replay: the projector's own path, one transaction
per page, transitions queued in the outbox). Both read only the rule events the plans name
and the accounts' activity summaries, never whole histories.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from firstvalue.plans_diff import DiffReport, compare
from shared.domain.facts import OnboardingRegistered
from shared.domain.plans import Plan
from shared.projection.folded import fold_page
from shared.projection.projector import project_many
from shared.storage.onboardings import OnboardingRepository

PAGE = 500  # onboardings per transaction: a few statements each
IN_FLIGHT = 2  # pages projected at once per process (PostgreSQL)
Progress = Callable[[int], object]  # called with how many onboardings a page held


async def _pages(
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


async def all_ids(sessionmaker: async_sessionmaker[AsyncSession]) -> list[str]:
    """Every onboarding id in id order (keyset pages: no table scan held open)."""
    return [i async for page in _pages(sessionmaker, 10_000) for i in page]


async def count_onboardings(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """How many onboardings there are (keyset pages of ids: no table scan held open)."""
    return sum([len(page) async for page in _pages(sessionmaker, 10_000)])


async def diff_database(
    sessionmaker: async_sessionmaker[AsyncSession],
    old: Mapping[str, Plan],
    new: Mapping[str, Plan],
    now: datetime,
    on_page: Progress = lambda n: None,
) -> DiffReport:
    """Evaluate every onboarding under ``old`` and ``new`` at ``now``; read-only."""
    report = DiffReport()
    async for ids in _pages(sessionmaker):
        pairs: list[tuple[OnboardingRegistered, Plan, Plan]] = []
        async with sessionmaker() as session:
            registrations = await OnboardingRepository(session).registrations(ids)
            for registration in registrations.values():  # gone since: left out
                before, after = old.get(registration.plan_key), new.get(registration.plan_key)
                if before is None or after is None:
                    side = "OLD" if before is None else "NEW"
                    report.skipped[f"plan {registration.plan_key!r} not in {side}"] += 1
                    continue
                pairs.append((registration, before, after))
            # Folded from no prior: only the events the plans' rules and signals need.
            olds = await fold_page(session, [(r, b) for r, b, _ in pairs], {}, {}, now)
            news = await fold_page(session, [(r, a) for r, _, a in pairs], {}, {}, now)
        for was, will in zip(olds, news, strict=True):
            report.add(compare(was.state, will.state))
        on_page(len(ids))
    report.diffs.sort(key=lambda d: (d.plan_key, d.account_name or "", d.onboarding_id))
    return report


async def replay_all(
    sessionmaker: async_sessionmaker[AsyncSession],
    plans: Mapping[str, Plan],
    now: datetime,
    on_page: Progress = lambda n: None,
    *,
    workers: int = 1,
) -> int:
    """Re-project every onboarding at ``now`` (``projector.project_many``, a transaction per
    page); returns how many were projected (one whose plan is not loaded is skipped).

    ``workers`` > 1 (PostgreSQL only) splits the ids into that many contiguous ranges, each
    replayed by its own process (``replay_processes``): evaluation is CPU-bound Python."""
    bind = sessionmaker.kw.get("bind")
    postgres = bind is not None and bind.dialect.name == "postgresql"
    if workers > 1 and postgres:
        from firstvalue.replay_processes import replay_in_processes

        return await replay_in_processes(sessionmaker, plans, now, on_page, workers)
    return await replay_range(
        sessionmaker, plans, now, on_page, in_flight=IN_FLIGHT if postgres else 1
    )


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
    pages = aiter(_pages(sessionmaker, after=after, through=through))
    turn = asyncio.Lock()  # one reader of the id pages at a time

    async def worker() -> int:
        projected = 0
        while True:
            async with turn:
                ids = await anext(pages, None)
            if ids is None:
                return projected
            async with sessionmaker() as session, session.begin():
                projected += len(await project_many(session, plans, ids, now))
            on_page(len(ids))

    return sum(await asyncio.gather(*(worker() for _ in range(max(1, in_flight)))))
