"""The onboarding list's page query: summary columns only, in the list's index order.

``ProjectionRepository.list`` loads whole projection rows, stored state JSON included
(~10 KB each), which the list never shows; at 100,000 onboardings that decoding dominated
the list's latency. This query reads the summary columns alone and walks
``ix_onboarding_projections_signed_at_desc_onboarding_id``. Filters and cursors are
``ProjectionRepository``'s own, so the two pages are interchangeable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.storage.projections import (
    LIST_ORDER,
    ProjectionFilter,
    after_list_cursor,
    filter_conditions,
    keyset_page,
)
from shared.storage.tables import ProjectionRecord
from shared.storage.views import LISTED_FIELDS


@dataclass(frozen=True)
class ListPage:
    items: list[dict[str, Any]]  # views.LISTED_FIELDS: an OnboardingSummary without ``state``
    next_cursor: str | None


class OnboardingListRepository:
    """Pages of onboarding summaries ordered by (``signed_at`` desc, ``onboarding_id``)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def page(
        self, filters: ProjectionFilter, *, limit: int, cursor: str | None = None
    ) -> ListPage:
        """Raises ``projections.InvalidCursor`` for a cursor this service did not hand out."""
        p = ProjectionRecord
        stmt = select(*(getattr(p, name) for name in LISTED_FIELDS)).where(
            *filter_conditions(filters)
        )
        if cursor is not None:
            stmt = stmt.where(after_list_cursor(cursor))
        stmt = stmt.order_by(*LIST_ORDER).limit(limit + 1)
        rows = [row._asdict() for row in await self._session.execute(stmt)]
        items, next_cursor = keyset_page(rows, limit, _list_key)
        return ListPage(items=items, next_cursor=next_cursor)


def _list_key(row: dict[str, Any]) -> tuple[datetime, str]:
    return row["signed_at"], row["onboarding_id"]
