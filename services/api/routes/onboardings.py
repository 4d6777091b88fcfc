"""Read side of onboardings: the filtered, paginated list and one onboarding's detail."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.auth import ReadKey
from services.api.dependencies import RuntimeDep, SessionDep
from services.api.errors import READ_ERRORS, ApiError
from services.api.filters import Cohort, Cursor, Filter, Limit, cohort_bounds, known
from services.api.params import Moment, OnboardingId
from services.api.schemas import OnboardingDetail, OnboardingItem, OnboardingPage, detail
from shared.domain.plans import Plan
from shared.projection.folded import state_as_of
from shared.storage.onboarding_list import OnboardingListRepository
from shared.storage.onboardings import OnboardingRepository
from shared.storage.projections import ProjectionFilter, ProjectionRepository

router = APIRouter(prefix="/v1/onboardings", tags=["onboardings"], responses=READ_ERRORS)


@router.get("", response_model=OnboardingPage)
async def list_onboardings(
    runtime: RuntimeDep,
    session: SessionDep,
    _key: ReadKey,
    segment: Filter = None,
    plan: Filter = None,
    stage: Filter = None,
    status: Literal["onboarding", "onboarded", "paused"] | None = None,
    csm: Filter = None,
    breach: Literal["none", "breach", "severe"] | None = None,
    tier: Literal["healthy", "at_risk", "critical"] | None = None,
    at_risk: Annotated[
        bool | None, Query(description="only onboardings whose tasks are done but not value")
    ] = None,
    cohort: Cohort = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    known(runtime.plans, segment=segment, plan=plan, stage=stage)
    filters = ProjectionFilter(
        segment=segment,
        plan_key=plan,
        stage=stage,
        status=status,
        csm=csm,
        breach=breach,
        tier=tier,
        at_risk=at_risk,
        **cohort_bounds(cohort),
    )
    page = await OnboardingListRepository(session).page(filters, limit=limit, cursor=cursor)
    items = [OnboardingItem.model_validate(row) for row in page.items]
    return _json(OnboardingPage(items=items, next_cursor=page.next_cursor))


@router.get("/{onboarding_id}", response_model=OnboardingDetail)
async def get_onboarding(
    onboarding_id: OnboardingId,
    runtime: RuntimeDep,
    session: SessionDep,
    _key: ReadKey,
    as_of: Annotated[
        Moment | None,
        Query(description="ISO-8601 moment (UTC if no offset): evaluate the facts up to then"),
    ] = None,
) -> Response:
    return _json(await load_detail(session, runtime.plans, onboarding_id, as_of))


async def load_detail(
    session: AsyncSession,
    plans: Mapping[str, Plan],
    onboarding_id: str,
    as_of: datetime | None = None,
) -> OnboardingDetail:
    """One onboarding's detail: the stored projection, or its facts evaluated at ``as_of``
    (the REST route and the console read it here); 404 when there is no such onboarding."""
    if as_of is None:
        stored = await ProjectionRepository(session).state_dict(onboarding_id)
        if stored is None:
            raise _not_found(onboarding_id)
        return detail(stored, plans.get(stored["plan_key"]))
    registration = await OnboardingRepository(session).registration(onboarding_id)
    if registration is None:
        raise _not_found(onboarding_id)
    if registration.at > as_of:
        raise ApiError(
            404,
            "not_found",
            f"onboarding '{onboarding_id}' did not exist yet at {as_of.isoformat()} "
            f"(contract signed {registration.at.isoformat()})",
        )
    plan = _plan(plans, registration.plan_key)
    return detail(await state_as_of(session, registration, plan, as_of), plan)


def _json(model: BaseModel) -> Response:
    """The model as JSON, already valid: FastAPI would otherwise dump and re-validate it
    against ``response_model`` (the schema it documents), doubling the cost of a detail or
    of a page of 50 items."""
    return Response(content=model.model_dump_json(), media_type="application/json")


def _plan(plans: Mapping[str, Plan], key: str) -> Plan:
    plan = plans.get(key)
    if plan is None:
        raise ApiError(409, "unknown_plan", f"plan '{key}' is not configured on this server")
    return plan


def _not_found(onboarding_id: str) -> ApiError:
    return ApiError(404, "not_found", f"no onboarding '{onboarding_id}'")
