"""The API's own response models: what dashboards read, decoupled from rows and core types.

Detail responses explain every figure: evidence per milestone, SLA moments per stage and
escalation, the health score's per-milestone contributions, TTFV's decomposition.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.domain import codec
from shared.domain.plans import Plan
from shared.domain.state import EscalationStatus, OnboardingState
from shared.domain.stored_state import StoredMilestone, StoredState


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
    """Signature → first-value milestone, in days; never paused (the customer's clock)."""

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
    """score = points / weights × 100 over milestones complete or due; each contribution is
    weight × value (1.0 on time, 0.5 late within 2× SLA, 0.25 in progress and overdue,
    0.0 not started and overdue). Tiers: ≥80 healthy, 60–79 at risk, <60 critical."""

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
    sla_due_at: datetime = Field(description="the SLA moment the rule is written against")
    fired_at: datetime
    resolved_at: datetime | None
    open: bool
    reason: str
    resolution: str | None = Field(default=None, description="why it resolved, once it has")
    ladder: str | None = Field(default=None, description="the ladder it is a rung of")
    raised_from: int | None = Field(
        default=None, description="the ladder's open level this rung raised (None: it opened)"
    )


class LadderOut(_Out):
    """Where the SLA escalation ladder stands: the highest open rung and its episode."""

    state: str
    level: int
    rule_key: str | None
    action: str | None
    reason: str | None
    opened_at: datetime | None
    raised_at: datetime | None
    resolved_at: datetime | None


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


class MilestoneDefinitionOut(_Out):
    title: str
    description: str
    due_day: int


class AmendmentOut(_Out):
    """A recorded change; ``previous`` is the definition it replaced (nothing is edited)."""

    id: str
    at: datetime
    milestone_key: str
    author: str
    reason: str
    title: str | None
    description: str | None
    due_day: int | None
    previous: MilestoneDefinitionOut | None = None


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
    escalation_ladder: LadderOut | None
    signals: SignalsOut
    pause: PauseOut
    amendments: list[AmendmentOut]
    next_due_at: datetime | None

    def with_summary(self) -> OnboardingDetail:
        """This detail with ``summary``: one sentence a CSM can read aloud."""
        return self.model_copy(update={"summary": self._summary()})

    def _summary(self) -> str:
        first_value = self.first_value
        outcome = f"first value ({first_value.title})" if first_value else "first value"
        stage = self.current_stage or "onboarding"
        if self.successfully_onboarded.at is not None:
            return f"Successfully onboarded on {self.successfully_onboarded.at.date().isoformat()}."
        if self.tasks_done_no_value:
            return f"Looks done, isn't: every vendor task is complete but {outcome} is missing."
        if first_value is not None and first_value.reached and first_value.reached_at:
            return f"In {stage}: reached {outcome} on {first_value.reached_at.date().isoformat()}."
        parts = [f"In {stage}: {outcome} not reached yet"]
        if self.ttfv.breach != "none":
            parts.append(f"TTFV {self.ttfv.breach} at {self.ttfv.elapsed_days:.0f} days")
        if self.pause.paused:
            parts.append("paused")
        return ", ".join(parts) + "."


def detail(state: OnboardingState | StoredState, plan: Plan | None) -> OnboardingDetail:
    """The detail response for ``state`` (or its stored JSON form, ``codec.state_to_dict``);
    ``plan`` (if still configured) names first value.

    Built from the JSON form: pydantic validates it in a fraction of a millisecond, whereas
    rebuilding the dataclasses first (``codec.state_from_dict``) costs several.
    """
    data = codec.state_to_dict(state) if isinstance(state, OnboardingState) else state
    milestones = [_milestone(m) for m in data["milestones"]]
    onboarded_at = data["onboarded_at"]
    ladder = data.get("ladder")
    shown = {
        "summary": "",
        "successfully_onboarded": SuccessfullyOnboarded(
            value="Yes" if onboarded_at else "No",
            at=onboarded_at,  # ISO-8601: pydantic parses moments
        ),
        "first_value": _first_value(milestones, plan),
        "milestones": milestones,
        "escalations": [
            EscalationOut(**escalation_fields(codec.escalation_from_dict(e)))
            for e in data["escalations"]
        ],
        "escalation_ladder": LadderOut.model_validate(ladder) if ladder else None,
    }
    # The other fields are the stored state's own, by name (its extra keys are ignored).
    return OnboardingDetail.model_validate({**data, **shown}).with_summary()


def escalation_fields(e: EscalationStatus) -> dict[str, Any]:
    """``EscalationOut``'s fields for one escalation, in a detail or listed (where
    ``EscalationItem`` adds whose it is): the SLA moment it fired at is ``sla_due_at``."""
    return {
        "rule_key": e.rule_key,
        "kind": e.kind,
        "level": e.level,
        "action": e.action,
        "title": e.title,
        "sla_due_at": e.due_at,
        "fired_at": e.fired_at,
        "resolved_at": e.resolved_at,
        "open": e.open,
        "reason": e.reason,
        "resolution": e.resolution,
        "ladder": e.ladder,
        "raised_from": e.raised_from,
    }


def _milestone(m: StoredMilestone) -> MilestoneOut:
    evidence = Evidence(
        event_ids=list(m["event_ids"]),
        confirmations=[Confirmation.model_validate(c) for c in m["confirmations"]],
    )
    return MilestoneOut.model_validate({**m, "evidence": evidence})


def _first_value(milestones: list[MilestoneOut], plan: Plan | None) -> FirstValue | None:
    if plan is None:
        return None
    status = next((m for m in milestones if m.key == plan.first_value), None)
    if status is None:
        return None
    return FirstValue(
        milestone_key=status.key,
        title=status.title,
        reached=status.progress == "complete",
        reached_at=status.completed_at,
    )
