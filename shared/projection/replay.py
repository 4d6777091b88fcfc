"""``firstvalue replay``: re-project every onboarding at ``now`` under the loaded plans, in
this process (a few pages in flight) or, on PostgreSQL, in several (``replay_processes``).
Each projection folds from the stored one and reads only the events the plans' rules name
and the activity summaries (docs/projection.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.domain.plans import Plan
from shared.projection.replay_pages import (
    IN_FLIGHT,
    Progress,
    all_ids,
    count_onboardings,
    pages,
    replay_range,
)
from shared.projection.replay_processes import replay_in_processes

__all__ = ["all_ids", "count_onboardings", "pages", "replay_all", "replay_range"]


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
        return await replay_in_processes(sessionmaker, plans, now, on_page, workers)
    return await replay_range(
        sessionmaker, plans, now, on_page, in_flight=IN_FLIGHT if postgres else 1
    )
