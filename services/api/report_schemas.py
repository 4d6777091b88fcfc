"""Response models of the reports, the escalation list and the write endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from services.api.schemas import EscalationOut, OnboardingDetail, escalation_fields
from shared.domain.plans import Plan
from shared.reports import decomposition as decompositions
from shared.reports import ttfv as reports
from shared.storage.reports import GroupBy
from shared.storage.views import EscalationRow, OnboardingSummary


class BucketOut(BaseModel):
    label: str = Field(description="'lower-upper' (lower < days <= upper) or 'lower+'")
    lower_days: float
    upper_days: float | None
    count: int


class PercentilesOut(BaseModel):
    """Nearest-rank percentiles of TTFV (days) over onboardings that reached first value."""

    p50: float | None
    p75: float | None
    p90: float | None
    max: float | None


class BreachesOut(BaseModel):
    """Onboardings by TTFV breach level; open ones are judged on their elapsed days."""

    none: int
    breach: int
    severe: int


class TTFVGroupOut(BaseModel):
    group: str
    onboardings: int
    reached: int = Field(description="onboardings that reached first value")
    open: int = Field(description="onboardings still without first value")
    ttfv_days: PercentilesOut
    breaches: BreachesOut
    open_by_age: list[BucketOut] = Field(description="open onboardings by days since signature")
    histogram: list[BucketOut] = Field(description="TTFV (days) of those that reached it")


class TTFVReport(BaseModel):
    group_by: GroupBy
    as_of: datetime = Field(description="the moment open onboardings' ages are measured at")
    percentile_method: Literal["nearest-rank"]
    total: TTFVGroupOut
    groups: list[TTFVGroupOut]


class SpanOut(BaseModel):
    """Nearest-rank percentiles (days) of one part of TTV, over the onboardings it is known for."""

    count: int = Field(description="onboardings whose span is known (both ends reached)")
    p50: float | None
    p75: float | None
    p90: float | None


class RateOut(BaseModel):
    rate: float | None = Field(description="numerator / denominator; None when nothing counts")
    numerator: int
    denominator: int


class DecompositionGroupOut(BaseModel):
    group: str
    onboardings: int
    handoff_days: SpanOut = Field(description="signature → first CS engagement")
    setup_days: SpanOut = Field(description="first CS engagement → go-live")
    activation_days: SpanOut = Field(description="go-live → first value")
    onboarding_completion: RateOut = Field(
        description="first value reached within the plan's band / onboardings settled "
        "(first value reached, or the band's upper bound passed without it)"
    )
    milestone_completion: RateOut = Field(
        description="milestones completed within their SLA / all milestones of the group"
    )


class DecompositionReport(BaseModel):
    group_by: GroupBy
    as_of: datetime
    percentile_method: Literal["nearest-rank"]
    total: DecompositionGroupOut
    groups: list[DecompositionGroupOut]


class MissingOutcome(BaseModel):
    milestone_key: str
    title: str
    first_value: bool = Field(description="this is the plan's first-value milestone")
    progress: str
    due_at: datetime | None
    overdue: bool


class AtRiskItem(BaseModel):
    """Looks done, isn't: every vendor task complete, first value not reached."""

    onboarding_id: str
    account_id: str
    account_name: str | None
    plan_key: str
    segment: str
    owner: str | None = Field(description="the onboarding's CSM")
    current_stage: str | None
    stage_owner: str | None = Field(description="owner role of the current stage")
    signed_at: datetime
    elapsed_days: float = Field(description="days since signature, as of the projection")
    breach: str
    health_score: float
    health_tier: str
    missing_outcomes: list[MissingOutcome]


class AtRiskPage(BaseModel):
    items: list[AtRiskItem]
    next_cursor: str | None


class EscalationItem(EscalationOut):
    """An escalation in the list: the detail's escalation shape, and whose it is."""

    onboarding_id: str
    account_id: str
    segment: str
    csm: str | None


class EscalationPageOut(BaseModel):
    items: list[EscalationItem]
    next_cursor: str | None


class WriteResult(BaseModel):
    fact_id: str
    recorded: bool = Field(description="false: this very fact was recorded before; nothing changed")
    onboarding: OnboardingDetail


def _days(value: float | None) -> float | None:
    """Days to two decimals (≈15 minutes), as the onboarding detail shows TTFV."""
    return None if value is None else round(value, 2)


def ttfv_group(group: reports.GroupDistribution) -> TTFVGroupOut:
    return TTFVGroupOut(
        group=group.group,
        onboardings=group.onboardings,
        reached=group.reached,
        open=group.open,
        ttfv_days=PercentilesOut(
            p50=_days(group.percentiles[50]),
            p75=_days(group.percentiles[75]),
            p90=_days(group.percentiles[90]),
            max=_days(group.max_days),
        ),
        breaches=BreachesOut(**group.breaches),
        open_by_age=[_bucket(b) for b in group.open_by_age],
        histogram=[_bucket(b) for b in group.histogram],
    )


def decomposition_group(group: decompositions.GroupDecomposition) -> DecompositionGroupOut:
    def span(part: str) -> SpanOut:
        figures = group.spans[part]
        p = figures.percentiles
        return SpanOut(count=figures.count, p50=_days(p[50]), p75=_days(p[75]), p90=_days(p[90]))

    def rate(r: decompositions.Rate) -> RateOut:
        value = r.value
        return RateOut(
            rate=None if value is None else round(value, 4),
            numerator=r.numerator,
            denominator=r.denominator,
        )

    return DecompositionGroupOut(
        group=group.group,
        onboardings=group.onboardings,
        handoff_days=span("handoff"),
        setup_days=span("setup"),
        activation_days=span("activation"),
        onboarding_completion=rate(group.onboarding_completion),
        milestone_completion=rate(group.milestone_completion),
    )


def _bucket(bucket: reports.Bucket) -> BucketOut:
    return BucketOut(
        label=bucket.label, lower_days=bucket.lower, upper_days=bucket.upper, count=bucket.count
    )


def at_risk_item(summary: OnboardingSummary, plan: Plan | None) -> AtRiskItem:
    """The at-risk row, its missing outcomes read from the stored state."""
    state = summary.state
    first_value = plan.first_value if plan is not None else None
    missing = [
        MissingOutcome(
            milestone_key=m["key"],
            title=m["title"],
            first_value=m["key"] == first_value,
            progress=m["progress"],
            due_at=m["due_at"],
            overdue=m["overdue"],
        )
        for m in state["milestones"]
        if m["kind"] == "outcome" and m["progress"] != "complete"
    ]
    missing.sort(key=lambda m: (not m.first_value, m.due_at is None, m.due_at or summary.signed_at))
    stage = next((s for s in state["stages"] if s["key"] == summary.current_stage), None)
    return AtRiskItem(
        onboarding_id=summary.onboarding_id,
        account_id=summary.account_id,
        account_name=summary.account_name,
        plan_key=summary.plan_key,
        segment=summary.segment,
        owner=summary.csm,
        current_stage=summary.current_stage,
        stage_owner=stage["owner"] if stage else None,
        signed_at=summary.signed_at,
        elapsed_days=state["ttfv"]["elapsed_days"],
        breach=summary.breach,
        health_score=summary.health_score,
        health_tier=summary.health_tier,
        missing_outcomes=missing,
    )


def escalation_item(row: EscalationRow) -> EscalationItem:
    return EscalationItem(
        onboarding_id=row.onboarding_id,
        account_id=row.account_id,
        segment=row.segment,
        csm=row.csm,
        **escalation_fields(row),
    )
