"""The console's pages: sign-in, portfolio, queue, looks-done-isn't, escalations and one
onboarding. Each reads the same repositories and builds the same response models as the
REST route it mirrors, so a page's figures are the API's figures."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from services.api.console import charts
from services.api.console.rendering import page
from services.api.console.session import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    ConsoleRefusal,
    ViewerDep,
    read_form,
    same_token,
)
from services.api.dependencies import RuntimeDep, SessionDep
from services.api.errors import ApiError
from services.api.filters import cohort_bounds, cohort_month, known
from services.api.params import OnboardingId, TextFilter
from services.api.report_schemas import (
    at_risk_item,
    decomposition_group,
    escalation_item,
    ttfv_group,
)
from services.api.routes.onboardings import load_detail
from services.api.schemas import OnboardingDetail, OnboardingItem
from shared.domain.facts import OnboardingPaused, OnboardingResumed
from shared.domain.plans import Plan
from shared.storage.console_access import ConsoleSessionRepository, ShareLinkRepository, new_token
from shared.storage.onboardings import OnboardingRepository
from shared.storage.projections import InvalidCursor, ProjectionFilter, ProjectionRepository
from shared.storage.queue import SORTS, QueueRepository, Sort
from shared.storage.reports import GroupBy, ReportRepository

router = APIRouter(include_in_schema=False)
QUEUE_PAGE = 25
LIST_PAGE = 25
GROUPINGS: tuple[GroupBy, ...] = ("segment", "cohort", "csm", "plan")
PARTS = ("handoff", "setup", "activation")


def _cookie_secure(request: Request) -> bool:
    return request.url.scheme == "https"


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, error: str | None = None) -> Response:
    token = new_token()
    response = page(request, "login.html", {"csrf": token, "error": error, "viewer": None})
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=_cookie_secure(request),
        path="/login",
    )
    return response


@router.post("/login", response_class=HTMLResponse)
async def sign_in(request: Request, session: SessionDep) -> Response:
    fields = await read_form(request)
    if not same_token(request.cookies.get(LOGIN_CSRF_COOKIE), fields.get("csrf")):
        raise ConsoleRefusal(403, "sign-in refused: reload the sign-in page and try again")
    started = await ConsoleSessionRepository(session).start(
        fields.get("key", ""), datetime.now(UTC)
    )
    if started is None:
        token = new_token()
        refused = page(
            request,
            "login.html",
            {"csrf": token, "error": "Unknown API key.", "viewer": None},
            status_code=401,
        )
        refused.set_cookie(
            LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/login"
        )
        return refused
    cookie, _ = started
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        httponly=True,
        samesite="strict",
        secure=_cookie_secure(request),
        path="/",
        max_age=12 * 3600,
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def sign_out(request: Request, session: SessionDep, viewer: ViewerDep) -> Response:
    fields = await read_form(request)
    if not same_token(viewer.csrf_token, fields.get("csrf")):
        raise ConsoleRefusal(403, "form refused: it does not carry this session's CSRF token")
    await ConsoleSessionRepository(session).end(viewer.token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _bands(plans: Mapping[str, Plan], group_by: GroupBy) -> dict[str, tuple[float, float]]:
    """The TTFV band each group's plan declares (segments and plans name one)."""
    if group_by == "plan":
        return {p.key: (p.ttfv_target.min_days, p.ttfv_target.max_days) for p in plans.values()}
    if group_by == "segment":
        return {p.segment: (p.ttfv_target.min_days, p.ttfv_target.max_days) for p in plans.values()}
    return {}


@router.get("/", response_class=HTMLResponse)
async def portfolio(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    viewer: ViewerDep,
    group_by: GroupBy = "segment",
) -> Response:
    now = datetime.now(UTC)
    reports = ReportRepository(session)
    total, groups = await reports.ttfv(ProjectionFilter(), group_by, now)
    _, parts = await reports.decomposition(ProjectionFilter(), group_by)
    split = {g.group: decomposition_group(g) for g in parts}
    bands = _bands(runtime.plans, group_by)
    cards = []
    for group in groups:
        figures = ttfv_group(group)
        decomposition = split[group.group]
        band = bands.get(group.group)
        cards.append(
            {
                "ttfv": figures,
                "decomposition": decomposition,
                "band": band,
                "histogram": charts.bar_chart([(b.label, b.count) for b in figures.histogram]),
                "ages": charts.bar_chart([(b.label, b.count) for b in figures.open_by_age]),
                "bars": {
                    p: charts.stacked_bar(
                        [
                            (part, getattr(decomposition, f"{part}_days").model_dump()[f"p{p}"])
                            for part in PARTS
                        ],
                        band,
                    )
                    for p in (50, 75)
                },
            }
        )
    return page(
        request,
        "portfolio.html",
        {
            "viewer": viewer,
            "group_by": group_by,
            "groupings": GROUPINGS,
            "total": ttfv_group(total),
            "cards": cards,
            "as_of": now,
        },
    )


class QueueQuery(BaseModel):
    """The queue's filters as the REST list takes them, plus sort and page; a filter form
    sends every field, so blank ones mean "any" (dropped before this is read)."""

    model_config = ConfigDict(extra="ignore")

    segment: TextFilter | None = None
    plan: TextFilter | None = None
    stage: TextFilter | None = None
    status: Literal["onboarding", "onboarded", "paused"] | None = None
    csm: TextFilter | None = None
    breach: Literal["none", "breach", "severe"] | None = None
    tier: Literal["healthy", "at_risk", "critical"] | None = None
    at_risk: bool | None = None
    cohort: Annotated[
        Annotated[str, AfterValidator(cohort_month)] | None,
        Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$"),
    ] = None
    sort: Sort = "signed_at"
    order: Literal["asc", "desc"] = "desc"
    page: Annotated[int, Field(ge=1, le=100_000)] = 1


@router.get("/queue", response_class=HTMLResponse)
async def queue(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    viewer: ViewerDep,
) -> Response:
    given = {k: v.strip() for k, v in request.query_params.items() if v.strip()}
    error = None
    try:
        q = QueueQuery.model_validate(given)
    except ValidationError as exc:
        error = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        q = QueueQuery()
    segment, plan, stage, status, csm = q.segment, q.plan, q.stage, q.status, q.csm
    breach, tier, at_risk, cohort = q.breach, q.tier, q.at_risk, q.cohort
    sort, order, page_number = q.sort, q.order, q.page
    chosen = {
        "segment": segment,
        "plan": plan,
        "stage": stage,
        "status": status,
        "csm": csm,
        "breach": breach,
        "tier": tier,
        "at_risk": "true" if at_risk else "false" if at_risk is False else None,
        "cohort": cohort,
    }
    items: list[OnboardingItem] = []
    total = 0
    try:
        if error is not None:
            raise ApiError(422, "invalid_request", error)
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
        found = await QueueRepository(session).page(
            filters,
            sort=sort,
            descending=order == "desc",
            offset=(page_number - 1) * QUEUE_PAGE,
            limit=QUEUE_PAGE,
        )
        items = [OnboardingItem.model_validate(row) for row in found.items]
        total = found.total
    except ApiError as exc:
        error = exc.message
    plans = runtime.plans.values()
    return page(
        request,
        "queue.html",
        {
            "viewer": viewer,
            "items": items,
            "total": total,
            "page": page_number,
            "pages": max(1, -(-total // QUEUE_PAGE)),
            "sort": sort,
            "order": order,
            "sorts": SORTS,
            "chosen": chosen,
            "query": {k: v for k, v in chosen.items() if v is not None},
            "segments": sorted({p.segment for p in plans}),
            "plan_keys": sorted(p.key for p in plans),
            "stages": sorted({s.key for p in plans for s in p.stages}),
            "error": error,
        },
        status_code=422 if error else 200,
    )


@router.get("/at-risk", response_class=HTMLResponse)
async def looks_done(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    viewer: ViewerDep,
    cursor: str | None = None,
) -> Response:
    try:
        found = await ProjectionRepository(session).list(
            ProjectionFilter(at_risk=True), limit=LIST_PAGE, cursor=cursor
        )
    except InvalidCursor as exc:
        raise ConsoleRefusal(400, "that page link is not valid any more") from exc
    items = [at_risk_item(s, runtime.plans.get(s.plan_key)) for s in found.items]
    return page(
        request,
        "at_risk.html",
        {"viewer": viewer, "items": items, "next_cursor": found.next_cursor},
    )


@router.get("/escalations", response_class=HTMLResponse)
async def escalations(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    include_resolved: bool = False,
    cursor: str | None = None,
) -> Response:
    try:
        found = await ProjectionRepository(session).escalations(
            open_only=not include_resolved,
            level=None,
            segment=None,
            csm=None,
            limit=LIST_PAGE * 2,
            cursor=cursor,
        )
    except InvalidCursor as exc:
        raise ConsoleRefusal(400, "that page link is not valid any more") from exc
    items = [escalation_item(row) for row in found.items]
    levels: dict[int, list[Any]] = {}
    for item in sorted(items, key=lambda e: (-e.level, e.sla_due_at)):
        levels.setdefault(item.level, []).append(item)
    return page(
        request,
        "escalations.html",
        {
            "viewer": viewer,
            "levels": levels,
            "include_resolved": include_resolved,
            "next_cursor": found.next_cursor,
        },
    )


def _as_of(value: str | None) -> datetime | None:
    """The date picker's day, evaluated at its end (UTC); None for "now"."""
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError as exc:
        raise ConsoleRefusal(422, f"as_of '{value}' is not a date (YYYY-MM-DD)") from exc
    return datetime.combine(day, time(23, 59, 59), tzinfo=UTC)


async def onboarding_view(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    viewer: ViewerDep,
    onboarding_id: OnboardingId,
    as_of_day: str | None = None,
    *,
    notice: str | None = None,
    error: str | None = None,
    new_link: str | None = None,
    status_code: int = 200,
) -> Response:
    """The onboarding page (also rendered by a refused or completed form)."""
    moment = _as_of(as_of_day)
    try:
        shown = await load_detail(session, runtime.plans, onboarding_id, moment)
    except ApiError as exc:
        raise ConsoleRefusal(exc.status, exc.message) from exc
    plan = runtime.plans.get(shown.plan_key)
    pauses = await _pauses(session, onboarding_id, moment)
    links = await ShareLinkRepository(session).for_onboarding(onboarding_id)
    return page(
        request,
        "onboarding.html",
        {
            "viewer": viewer,
            "o": shown,
            "plan": plan,
            "as_of_day": as_of_day or "",
            "track": _timeline(shown, pauses),
            "bar": charts.stacked_bar(
                [(part, getattr(shown.decomposition, f"{part}_days")) for part in PARTS],
                (shown.ttfv.target_min_days, shown.ttfv.target_max_days),
            ),
            "manual": [m.key for m in plan.milestones if m.manual] if plan else [],
            "evidence_default": _evidence_default(shown, plan),
            "pauses": pauses,
            "links": links,
            "new_link": new_link,
            "notice": notice,
            "error": error,
        },
        status_code=status_code,
    )


@router.get("/onboardings/{onboarding_id}", response_class=HTMLResponse)
async def onboarding(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    viewer: ViewerDep,
    onboarding_id: OnboardingId,
    as_of: str | None = None,
    done: str | None = None,
) -> Response:
    notice = {
        "evidence": "Evidence recorded.",
        "pause": "Paused.",
        "resume": "Resumed.",
        "amend": "Amendment recorded.",
        "revoke": "Share link revoked.",
    }.get(done or "")
    return await onboarding_view(
        request, runtime, session, viewer, onboarding_id, as_of, notice=notice
    )


def _evidence_default(o: OnboardingDetail, plan: Plan | None) -> str | None:
    """The milestone the evidence form offers first: a manual outcome still open (the
    sponsor's written confirmation, typically), else any open manual milestone."""
    if plan is None:
        return None
    open_keys = {m.key for m in o.milestones if m.progress != "complete"}
    manual = [m for m in plan.milestones if m.manual and m.key in open_keys]
    manual.sort(key=lambda m: m.kind != "outcome")
    return manual[0].key if manual else None


async def _pauses(
    session: SessionDep, onboarding_id: str, as_of: datetime | None
) -> list[tuple[datetime, datetime | None]]:
    """Every pause (start, end or None while it lasts) from the recorded facts."""
    facts = await OnboardingRepository(session).manual_facts_for_many([onboarding_id], until=as_of)
    spans: list[tuple[datetime, datetime | None]] = []
    for fact in facts[onboarding_id]:
        if isinstance(fact, OnboardingPaused):
            spans.append((fact.at, None))
        elif isinstance(fact, OnboardingResumed) and spans and spans[-1][1] is None:
            spans[-1] = (spans[-1][0], fact.at)
    return spans


def _timeline(o: OnboardingDetail, pauses: list[tuple[datetime, datetime | None]]) -> Any:
    by_stage: dict[str, list[charts.MilestonePoint]] = {s.key: [] for s in o.stages}
    for m in o.milestones:
        by_stage.setdefault(m.stage, []).append(
            charts.MilestonePoint(
                m.title, m.progress, m.completed_at, m.due_at, m.on_time is False or m.overdue
            )
        )
    stages = [
        (
            charts.StageSpan(s.title, s.state, s.entered_at, s.exited_at, s.due_at, s.overdue),
            by_stage.get(s.key, []),
        )
        for s in o.stages
    ]
    markers = [
        ("go-live", o.decomposition.go_live_at),
        ("first value", o.decomposition.first_value_at),
        ("as of", o.as_of),
    ]
    return charts.timeline(o.signed_at, o.as_of, stages, markers, pauses)
