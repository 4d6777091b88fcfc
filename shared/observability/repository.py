"""The SQL behind the database-derived metrics: one grouped scan of the projections, one
of the open escalations, and the due moments the timers are about to fire."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.storage.tables import EscalationRecord, ProjectionRecord


@dataclass(frozen=True)
class ProjectionGroup:
    """Onboardings alike in every metric label, with their reached TTFVs bucketed."""

    segment: str
    stage: str | None
    status: str
    breach: str
    first_value_reached: bool
    at_risk: bool
    count: int
    ttfv_cumulative: tuple[int, ...]  # reached TTFVs <= each bound (days), ascending
    ttfv_count: int
    ttfv_sum_days: float


class MetricsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def projection_groups(self, bounds_days: Sequence[float]) -> list[ProjectionGroup]:
        """One grouped scan of the projections: counts by every label, and the reached
        TTFVs bucketed by ``bounds_days`` in SQL (no per-onboarding row leaves the database)."""
        p = ProjectionRecord
        reached = p.first_value_at.is_not(None)
        keys = (p.segment, p.current_stage, p.status, p.breach, reached, p.tasks_done_no_value)
        buckets = [func.sum(case((p.ttfv_days <= b, 1), else_=0)) for b in bounds_days]
        stmt = select(
            *keys, func.count(), func.count(p.ttfv_days), func.sum(p.ttfv_days), *buckets
        ).group_by(*keys)
        return [
            ProjectionGroup(
                segment=row[0],
                stage=row[1],
                status=row[2],
                breach=row[3],
                first_value_reached=bool(row[4]),
                at_risk=bool(row[5]),
                count=int(row[6]),
                ttfv_count=int(row[7]),
                ttfv_sum_days=float(row[8] or 0.0),
                ttfv_cumulative=tuple(int(n or 0) for n in row[9:]),
            )
            for row in await self._session.execute(stmt)
        ]

    async def open_escalations(self) -> list[tuple[int, int]]:
        """(level, count) of escalations not resolved."""
        e = EscalationRecord
        stmt = select(e.level, func.count()).where(e.resolved_at.is_(None)).group_by(e.level)
        return [(level, n) for level, n in await self._session.execute(stmt)]

    async def due_moments(self, onboarding_ids: Sequence[str]) -> list[datetime]:
        """The ``next_due_at`` of those onboardings (before a timer re-projects them)."""
        if not onboarding_ids:
            return []
        p = ProjectionRecord
        stmt = select(p.next_due_at).where(
            p.onboarding_id.in_(onboarding_ids), p.next_due_at.is_not(None)
        )
        return [at for at in (await self._session.scalars(stmt)).all() if at is not None]
