"""The database side of ``firstvalue plans diff`` and ``firstvalue replay``: page through
every onboarding, load its facts, and either evaluate it under two plan sets (diff: a dry
run, nothing written) or re-project it under the current plans (replay: the projector's
own path, one transaction per page, transitions queued in the outbox).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from firstvalue.plans_diff import DiffReport, compare
from services.milestones.projector import project_many
from shared.domain.evaluate import evaluate
from shared.domain.plans import Plan
from shared.storage.onboardings import OnboardingRepository

PAGE = 200
Progress = Callable[[int], object]  # called with how many onboardings a page held


async def _pages(
    sessionmaker: async_sessionmaker[AsyncSession], size: int = PAGE
) -> AsyncIterator[list[str]]:
    after: str | None = None
    while True:
        async with sessionmaker() as session:
            ids = await OnboardingRepository(session).ids(after, size)
        if ids:
            yield ids
        if len(ids) < size:
            return
        after = ids[-1]


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
        async with sessionmaker() as session:
            onboardings = OnboardingRepository(session)
            for onboarding_id in ids:
                loaded = await onboardings.facts_for(onboarding_id)
                if loaded is None:
                    continue  # removed since the page was read
                registration, facts = loaded
                before, after = old.get(registration.plan_key), new.get(registration.plan_key)
                if before is None or after is None:
                    side = "OLD" if before is None else "NEW"
                    report.skipped[f"plan {registration.plan_key!r} not in {side}"] += 1
                    continue
                report.add(
                    compare(
                        evaluate(before, registration, facts, now),
                        evaluate(after, registration, facts, now),
                    )
                )
        on_page(len(ids))
    report.diffs.sort(key=lambda d: (d.plan_key, d.account_name or "", d.onboarding_id))
    return report


async def replay_all(
    sessionmaker: async_sessionmaker[AsyncSession],
    plans: Mapping[str, Plan],
    now: datetime,
    on_page: Progress = lambda n: None,
) -> int:
    """Re-project every onboarding at ``now`` (``projector.project_many``, a transaction per
    page); returns how many were projected (one whose plan is not loaded is skipped)."""
    projected = 0
    async for ids in _pages(sessionmaker):
        async with sessionmaker() as session, session.begin():
            projected += len(await project_many(session, plans, ids, now))
        on_page(len(ids))
    return projected
