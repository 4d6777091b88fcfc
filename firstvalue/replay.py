"""The CLI's side of ``firstvalue plans diff`` and ``firstvalue replay``. Replay itself lives
beside the projection (``shared.projection.replay``); ``plans diff`` folds every onboarding
under two plan sets (a dry run, nothing written), reading only the rule events they name.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from firstvalue.plans_diff import DiffReport, compare
from shared.domain.facts import OnboardingRegistered
from shared.domain.plans import Plan
from shared.projection.folded import fold_page
from shared.projection.replay import count_onboardings, pages, replay_all
from shared.projection.replay_pages import Progress
from shared.storage.onboardings import OnboardingRepository

__all__ = ["count_onboardings", "diff_database", "replay_all"]


async def diff_database(
    sessionmaker: async_sessionmaker[AsyncSession],
    old: Mapping[str, Plan],
    new: Mapping[str, Plan],
    now: datetime,
    on_page: Progress = lambda n: None,
) -> DiffReport:
    """Evaluate every onboarding under ``old`` and ``new`` at ``now``; read-only."""
    report = DiffReport()
    async for ids in pages(sessionmaker):
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
