"""Escalations across onboardings: what fired, by which rule, against which SLA, for whom."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.api.auth import ReadKey
from services.api.dependencies import RuntimeDep, SessionDep
from services.api.errors import READ_ERRORS
from services.api.filters import Cursor, Filter, Limit, known
from services.api.report_schemas import EscalationPageOut, escalation_item
from shared.storage.projections import ProjectionRepository

router = APIRouter(prefix="/v1/escalations", tags=["escalations"], responses=READ_ERRORS)


@router.get("", response_model=EscalationPageOut)
async def list_escalations(
    runtime: RuntimeDep,
    session: SessionDep,
    _key: ReadKey,
    include_resolved: Annotated[
        bool, Query(description="also list escalations that have been resolved")
    ] = False,
    level: Annotated[int | None, Query(ge=1, le=9)] = None,
    segment: Filter = None,
    csm: Filter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> EscalationPageOut:
    """Open escalations (or all), most recently fired first."""
    known(runtime.plans, segment=segment)
    page = await ProjectionRepository(session).escalations(
        open_only=not include_resolved,
        level=level,
        segment=segment,
        csm=csm,
        limit=limit,
        cursor=cursor,
    )
    return EscalationPageOut(
        items=[escalation_item(row) for row in page.items], next_cursor=page.next_cursor
    )
