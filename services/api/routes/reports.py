"""Reports: the TTFV distribution by group, its decomposition and the completion rates, and
the "tasks done, no first value" list."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from services.api.auth import ReadKey
from services.api.dependencies import RuntimeDep, SessionDep
from services.api.errors import READ_ERRORS
from services.api.filters import Cohort, Cursor, Filter, Limit, ReportFilter, cohort_bounds, known
from services.api.report_schemas import (
    AtRiskPage,
    DecompositionReport,
    GroupBy,
    TTFVReport,
    at_risk_item,
    decomposition_group,
    ttfv_group,
)
from shared.storage.projections import ProjectionFilter, ProjectionRepository
from shared.storage.reports import ReportRepository

router = APIRouter(prefix="/v1/reports", tags=["reports"], responses=READ_ERRORS)


@router.get("/ttfv", response_model=TTFVReport)
async def ttfv_report(
    session: SessionDep,
    _key: ReadKey,
    *,
    group_by: GroupBy = "segment",
    filters: ReportFilter,
) -> TTFVReport:
    """TTFV p50/p75/p90/max, reached and open counts, breaches and histograms per group."""
    now = datetime.now(UTC)
    total, groups = await ReportRepository(session).ttfv(filters, group_by, now)
    return TTFVReport(
        group_by=group_by,
        as_of=now,
        percentile_method="nearest-rank",
        total=ttfv_group(total),
        groups=[ttfv_group(g) for g in groups],
    )


@router.get("/decomposition", response_model=DecompositionReport)
async def decomposition_report(
    session: SessionDep,
    _key: ReadKey,
    *,
    group_by: GroupBy = "segment",
    filters: ReportFilter,
) -> DecompositionReport:
    """Where the time goes: p50/p75/p90 of handoff, setup and activation per group, with the
    onboarding completion rate (first value within the band) and the milestone completion
    rate (completed within SLA / all)."""
    total, groups = await ReportRepository(session).decomposition(filters, group_by)
    return DecompositionReport(
        group_by=group_by,
        as_of=datetime.now(UTC),
        percentile_method="nearest-rank",
        total=decomposition_group(total),
        groups=[decomposition_group(g) for g in groups],
    )


@router.get("/at-risk", response_model=AtRiskPage)
async def at_risk(
    runtime: RuntimeDep,
    session: SessionDep,
    _key: ReadKey,
    segment: Filter = None,
    plan: Filter = None,
    csm: Filter = None,
    stage: Filter = None,
    cohort: Cohort = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> AtRiskPage:
    """Looks done, isn't: every vendor task complete, first value missing; newest first."""
    known(runtime.plans, segment=segment, plan=plan, stage=stage)
    filters = ProjectionFilter(
        segment=segment,
        plan_key=plan,
        csm=csm,
        stage=stage,
        at_risk=True,
        **cohort_bounds(cohort),
    )
    page = await ProjectionRepository(session).list(filters, limit=limit, cursor=cursor)
    return AtRiskPage(
        items=[at_risk_item(s, runtime.plans.get(s.plan_key)) for s in page.items],
        next_cursor=page.next_cursor,
    )
