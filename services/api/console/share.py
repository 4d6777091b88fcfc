"""The customer's share page: their plan as they agreed it — stages, outcomes, what is done
and when, what is next and when it is due — reached by a link, with no key.

Built field by field from the onboarding's detail into ``CustomerPlan``, which has no place
for anything internal (health score, escalations, CSM, evidence notes, amendment reasons):
what is not copied here cannot leak onto the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response

from services.api.console.rendering import page
from services.api.console.session import ConsoleRefusal
from services.api.dependencies import RuntimeDep, SessionDep
from services.api.params import PlainText
from services.api.schemas import OnboardingDetail, detail
from shared.storage.console_access import ShareLinkRepository
from shared.storage.projections import ProjectionRepository

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class CustomerStep:
    title: str
    description: str
    outcome: bool  # an agreed outcome, not a task
    done_at: datetime | None
    due_at: datetime | None


@dataclass(frozen=True)
class CustomerStage:
    title: str
    state: str
    due_at: datetime | None
    steps: tuple[CustomerStep, ...]


@dataclass(frozen=True)
class CustomerPlan:
    account: str
    plan_title: str
    signed_at: datetime
    as_of: datetime
    onboarded_at: datetime | None
    first_value_title: str | None
    first_value_at: datetime | None
    stages: tuple[CustomerStage, ...]
    next_steps: tuple[CustomerStep, ...]  # not done yet, soonest due first


def customer_plan(o: OnboardingDetail, plan_title: str) -> CustomerPlan:
    steps = {
        m.key: CustomerStep(m.title, m.description, m.kind == "outcome", m.completed_at, m.due_at)
        for m in o.milestones
    }
    stage_of = {m.key: m.stage for m in o.milestones}
    stages = tuple(
        CustomerStage(
            s.title,
            s.state,
            s.due_at,
            tuple(step for key, step in steps.items() if stage_of[key] == s.key),
        )
        for s in o.stages
    )
    upcoming = sorted(
        (s for s in steps.values() if s.done_at is None),
        key=lambda s: (s.due_at is None, s.due_at or o.as_of),
    )
    return CustomerPlan(
        account=o.account_name or o.account_id,
        plan_title=plan_title,
        signed_at=o.signed_at,
        as_of=o.as_of,
        onboarded_at=o.successfully_onboarded.at,
        first_value_title=o.first_value.title if o.first_value else None,
        first_value_at=o.first_value.reached_at if o.first_value else None,
        stages=stages,
        next_steps=tuple(upcoming[:5]),
    )


@router.get("/share/{token}", response_class=HTMLResponse, name="share_page")
async def share_page(
    token: Annotated[PlainText, Path(min_length=1, max_length=255)],
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
) -> Response:
    link = await ShareLinkRepository(session).resolve(token)
    if link is None or link.revoked_at is not None:
        raise ConsoleRefusal(404, "This link is not valid: it was revoked, or never existed.")
    stored = await ProjectionRepository(session).state_dict(link.onboarding_id)
    if stored is None:
        raise ConsoleRefusal(404, "This plan is not available yet.")
    plan = runtime.plans.get(stored["plan_key"])
    shown = customer_plan(detail(stored, plan), plan.title if plan else stored["plan_key"])
    return page(request, "share.html", {"p": shown, "viewer": None})
