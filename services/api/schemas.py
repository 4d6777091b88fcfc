"""The API's own response models: what dashboards read, decoupled from rows and core types.

Detail responses explain every figure: evidence per milestone, SLA moments per stage and
escalation, the health score's per-milestone contributions, TTFV's decomposition.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.domain.plans import Plan
from shared.domain.state import MilestoneStatus, OnboardingState
from shared.storage.projections import OnboardingSummary


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class OnboardingItem(_Out):
    """One row of the onboarding list."""

    onboarding_id: str
    account_id: str
    account_name: str | None
    plan_key: str
    plan_version: int
    segment: str
    csm: str | None
    status: str
    current_stage: str | None
    signed_at: datetime
    first_value_at: datetime | None
    ttfv_days: float | None
    breach: str
    health_score: float
    health_tier: str
    onboarded_at: datetime | None
    tasks_done_no_value: bool
    open_escalations: int
    max_escalation_level: int | None
    next_due_at: datetime | None
    updated_at: datetime


class OnboardingPage(BaseModel):
    items: list[OnboardingItem]
    next_cursor: str | None


class Confirmation(_Out):
    """Manual evidence: who confirmed, when, how, and the proof."""

    id: str
    at: datetime
    confirmed_by: str
    channel: str
    quote: str | None
    link: str | None
    recorded_by: str | None


class Evidence(BaseModel):
    event_ids: list[str]
    confirmations: list[Confirmation]


class MilestoneOut(BaseModel):
    key: str
    title: str
    kind: str
    weight: int
    stage: str
    rule: str
    description: str
    progress: str
    due_at: datetime | None
    completed_at: datetime | None
    on_time: bool | None
    overdue: bool
    count: int
    distinct_users: int
    required_count: int
    required_users: int
    window_opens_at: datetime | None
    window_closes_at: datetime | None
    evidence: Evidence


class StageOut(_Out):
    key: str
    title: str
    owner: str
    state: str
    entered_at: datetime | None
    criterion_met_at: datetime | None
    exited_at: datetime | None
    due_at: datetime | None
    overdue: bool


class FirstValue(BaseModel):
    """Plainly: has the customer reached the outcome they bought for?"""

    milestone_key: str
    title: str
    reached: bool
    reached_at: datetime | None


class SuccessfullyOnboarded(BaseModel):
    value: Literal["Yes", "No"]
    at: datetime | None


class TTFVOut(_Out):
    reached_at: datetime | None
    days: float | None
    elapsed_days: float
    target_min_days: float
    target_max_days: float
    breach: str


class DecompositionOut(_Out):
    first_engagement_at: datetime | None
    go_live_at: datetime | None
    first_value_at: datetime | None
    handoff_days: float | None
    setup_days: float | None
    activation_days: float | None
    total_days: float | None


class ContributionOut(_Out):
    milestone_key: str
    weight: int
    status: str
    value: float
    points: float


class HealthOut(_Out):
    score: float
    tier: str
    points: float
    weights: int
    contributions: list[ContributionOut]


class EscalationOut(BaseModel):
    rule_key: str
    kind: str
    level: int
    action: str
    title: str
    sla_due_at: datetime  # the SLA moment the rule is written against
    fired_at: datetime
    resolved_at: datetime | None
    open: bool
    reason: str


class SignalsOut(_Out):
    last_event_at: datetime | None
    silent_days: float
    champion_quiet: bool
    single_threaded: bool
    active_users_14d: int


class PauseOut(_Out):
    paused: bool
    paused_since: datetime | None
    paused_days: float


class AmendmentOut(_Out):
    id: str
    at: datetime
    milestone_key: str
    author: str
    reason: str
    title: str | None
    description: str | None
    due_day: int | None


class OnboardingDetail(BaseModel):
    """One onboarding, as evaluated at ``as_of``, with the evidence behind every figure."""

    onboarding_id: str
    account_id: str
    account_name: str | None
    plan_key: str
    plan_version: int
    segment: str
    csm: str | None
    signed_at: datetime
    as_of: datetime
    status: str
    summary: str
    current_stage: str | None
    successfully_onboarded: SuccessfullyOnboarded
    first_value: FirstValue | None
    tasks_done_no_value: bool
    ttfv: TTFVOut
    decomposition: DecompositionOut
    health: HealthOut
    completion_rate: float
    stages: list[StageOut]
    milestones: list[MilestoneOut]
    escalations: list[EscalationOut]
    signals: SignalsOut
    pause: PauseOut
    amendments: list[AmendmentOut]
    next_due_at: datetime | None


def item(summary: OnboardingSummary) -> OnboardingItem:
    return OnboardingItem.model_validate(summary)


def detail(state: OnboardingState, plan: Plan | None) -> OnboardingDetail:
    """The detail response for ``state``; ``plan`` (if still configured) names first value."""
    first_value = _first_value(state, plan)
    return OnboardingDetail(
        onboarding_id=state.onboarding_id,
        account_id=state.account_id,
        account_name=state.account_name,
        plan_key=state.plan_key,
        plan_version=state.plan_version,
        segment=state.segment,
        csm=state.csm,
        signed_at=state.signed_at,
        as_of=state.as_of,
        status=state.status,
        summary=_summary(state, first_value),
        current_stage=state.current_stage,
        successfully_onboarded=SuccessfullyOnboarded(
            value="Yes" if state.onboarded_at else "No", at=state.onboarded_at
        ),
        first_value=first_value,
        tasks_done_no_value=state.tasks_done_no_value,
        ttfv=TTFVOut.model_validate(state.ttfv),
        decomposition=DecompositionOut.model_validate(state.decomposition),
        health=HealthOut.model_validate(state.health),
        completion_rate=state.completion_rate,
        stages=[StageOut.model_validate(s) for s in state.stages],
        milestones=[_milestone(m) for m in state.milestones],
        escalations=[
            EscalationOut(
                rule_key=e.rule_key,
                kind=e.kind,
                level=e.level,
                action=e.action,
                title=e.title,
                sla_due_at=e.due_at,
                fired_at=e.fired_at,
                resolved_at=e.resolved_at,
                open=e.open,
                reason=e.reason,
            )
            for e in state.escalations
        ],
        signals=SignalsOut.model_validate(state.signals),
        pause=PauseOut.model_validate(state.pause),
        amendments=[AmendmentOut.model_validate(a) for a in state.amendments],
        next_due_at=state.next_due_at,
    )


def _milestone(m: MilestoneStatus) -> MilestoneOut:
    data = {name: getattr(m, name) for name in MilestoneOut.model_fields if name != "evidence"}
    evidence = Evidence(
        event_ids=list(m.event_ids),
        confirmations=[Confirmation.model_validate(c) for c in m.confirmations],
    )
    return MilestoneOut(**data, evidence=evidence)


def _first_value(state: OnboardingState, plan: Plan | None) -> FirstValue | None:
    if plan is None:
        return None
    status = next((m for m in state.milestones if m.key == plan.first_value), None)
    if status is None:
        return None
    return FirstValue(
        milestone_key=status.key,
        title=status.title,
        reached=status.progress == "complete",
        reached_at=status.completed_at,
    )


def _summary(state: OnboardingState, first_value: FirstValue | None) -> str:
    """One sentence a CSM can read aloud."""
    outcome = f"first value ({first_value.title})" if first_value else "first value"
    if state.onboarded_at is not None:
        return f"Successfully onboarded on {state.onboarded_at.date().isoformat()}."
    if state.tasks_done_no_value:
        return f"Looks done, isn't: every vendor task is complete but {outcome} is missing."
    if first_value is not None and first_value.reached and first_value.reached_at:
        reached = f"reached {outcome} on {first_value.reached_at.date().isoformat()}"
        return f"In {state.current_stage or 'onboarding'}: {reached}."
    parts = [f"In {state.current_stage or 'onboarding'}: {outcome} not reached yet"]
    if state.ttfv.breach != "none":
        parts.append(f"TTFV {state.ttfv.breach} at {state.ttfv.elapsed_days:.0f} days")
    if state.pause.paused:
        parts.append("paused")
    return ", ".join(parts) + "."
