"""The console's queue: onboarding summaries sorted by a column the reader picks, a page at
an offset, and how many match.

The REST list pages by keyset in one fixed order (``onboarding_list``), which is what a
client walking every onboarding needs; a person scanning a queue wants to sort by health,
TTFV or the next due date and jump to page 3, over at most a few thousand open rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.storage.projections import ProjectionFilter, filter_conditions
from shared.storage.tables import ProjectionRecord
from shared.storage.views import LISTED_FIELDS

Sort = Literal[
    "signed_at",
    "account",
    "health_score",
    "ttfv_days",
    "next_due_at",
    "open_escalations",
    "current_stage",
]
SORTS: tuple[Sort, ...] = (
    "signed_at",
    "account",
    "health_score",
    "ttfv_days",
    "next_due_at",
    "open_escalations",
    "current_stage",
)


@dataclass(frozen=True)
class QueuePage:
    items: list[dict[str, Any]]  # OnboardingSummary's fields without ``state``
    total: int


def _column(sort: Sort) -> Any:
    p = ProjectionRecord
    if sort == "account":
        return func.coalesce(p.account_name, p.account_id)
    return getattr(p, sort)


class QueueRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def page(
        self,
        filters: ProjectionFilter,
        *,
        sort: Sort,
        descending: bool,
        offset: int,
        limit: int,
    ) -> QueuePage:
        """Rows ``offset`` to ``offset + limit`` in the chosen order (ties by id); nulls last."""
        p = ProjectionRecord
        conditions = filter_conditions(filters)
        column = _column(sort)
        order = column.desc().nulls_last() if descending else column.asc().nulls_last()
        stmt = (
            select(*(getattr(p, name) for name in LISTED_FIELDS))
            .where(*conditions)
            .order_by(order, p.onboarding_id)
            .offset(offset)
            .limit(limit)
        )
        rows = [row._asdict() for row in await self._session.execute(stmt)]
        total = await self._session.scalar(select(func.count()).select_from(p).where(*conditions))
        return QueuePage(items=rows, total=int(total or 0))
