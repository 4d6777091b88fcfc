"""The derived state of one onboarding at one moment: what ``evaluate`` returns.

Every figure carries what it came from (evidence, SLA moments, contributions) so that the
API can explain it without recomputing anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from shared.domain.facts import EvidenceRecorded, MilestoneAmended

Progress = Literal["not_started", "in_progress", "complete"]
Breach = Literal["none", "breach", "severe"]
Tier = Literal["healthy", "at_risk", "critical"]
Status = Literal["onboarding", "onboarded", "paused"]
StageState = Literal["pending", "active", "exited"]
EscalationState = Literal["open", "raised", "resolved"]


def escalation_state(resolved_at: datetime | None, raised_from: int | None) -> EscalationState:
    """``resolved`` once resolved, else ``raised`` when it raised the ladder (it did not
    open it), else ``open``."""
    if resolved_at is not None:
        return "resolved"
    return "raised" if raised_from is not None else "open"


LadderState = Literal["none", "open", "raised", "resolved"]


@dataclass(frozen=True)
class MilestoneStatus:
    key: str
    title: str
    kind: str
    weight: int
    stage: str
    due_at: datetime | None  # None while a pause holds the SLA clock open-ended
    progress: Progress
    completed_at: datetime | None
    on_time: bool | None  # None until complete
    overdue: bool  # not complete and past due at ``as_of``
    count: int  # matching events counted so far (inside the window)
    distinct_users: int
    required_count: int
    required_users: int
    window_opens_at: datetime | None
    window_closes_at: datetime | None
    event_ids: tuple[str, ...]  # the events that completed it (or progress so far)
    confirmations: tuple[EvidenceRecorded, ...]  # manual evidence
    rule: str  # human-readable description of how it completes
    description: str


@dataclass(frozen=True)
class StageStatus:
    key: str
    title: str
    owner: str
    state: StageState
    entered_at: datetime | None
    criterion_met_at: datetime | None
    exited_at: datetime | None
    due_at: datetime | None  # entered_at + max_days, pause-shifted
    overdue: bool


@dataclass(frozen=True)
class HealthContribution:
    milestone_key: str
    weight: int
    status: str  # complete_on_time, complete_late, complete_very_late, in_progress_overdue, ...
    value: float  # 1.0, 0.5, 0.25, 0.0
    points: float  # weight * value


@dataclass(frozen=True)
class Health:
    score: float  # 0..100, one decimal
    tier: Tier
    points: float
    weights: int
    contributions: tuple[HealthContribution, ...]


@dataclass(frozen=True)
class TTFV:
    reached_at: datetime | None
    days: float | None  # first value - signature, in days (None until reached)
    elapsed_days: float  # days so far (= days once reached)
    target_min_days: float
    target_max_days: float
    breach: Breach  # for open onboardings, judged on elapsed days


@dataclass(frozen=True)
class Decomposition:
    """TTV = handoff delay + setup duration + activation time (None where not yet known)."""

    first_engagement_at: datetime | None
    go_live_at: datetime | None
    first_value_at: datetime | None
    handoff_days: float | None
    setup_days: float | None
    activation_days: float | None
    total_days: float | None


@dataclass(frozen=True)
class EscalationStatus:
    """One rule that fired: why (``reason``), when, and when and why it stopped holding."""

    rule_key: str
    kind: str
    level: int
    action: str
    title: str
    due_at: datetime  # the SLA moment it fired at
    fired_at: datetime
    resolved_at: datetime | None
    reason: str
    ladder: str | None = None  # the ladder it is a rung of (``"sla"``: the plan's day rules)
    raised_from: int | None = None  # the ladder's open level it raised (None: it opened)
    resolution: str | None = None  # why it resolved, e.g. "stage setup exited"

    @property
    def open(self) -> bool:
        return self.resolved_at is None

    @property
    def state(self) -> EscalationState:
        return escalation_state(self.resolved_at, self.raised_from)


@dataclass(frozen=True)
class EscalationLadder:
    """Where the SLA escalation ladder (the plan's day rules, by level) stands at ``as_of``.

    An episode runs from a rung firing while none was open until no rung is open; ``state``
    is ``raised`` once a higher rung fired inside the current episode.
    """

    state: LadderState = "none"
    level: int = 0  # the highest open rung's level (0: none open)
    rule_key: str | None = None  # the highest open rung (the last to resolve, once resolved)
    action: str | None = None
    reason: str | None = None  # why that rung fired
    opened_at: datetime | None = None  # when the current (or last) episode opened
    raised_at: datetime | None = None  # the last time it went up a level in that episode
    resolved_at: datetime | None = None  # when that episode's last open rung resolved


@dataclass(frozen=True)
class Signals:
    last_event_at: datetime | None
    silent_days: float  # days since the last event (or signature)
    champion_quiet: bool
    single_threaded: bool  # only one user active in the current (adoption) stage
    active_users_14d: int


@dataclass(frozen=True)
class PauseStatus:
    paused: bool
    paused_since: datetime | None
    paused_days: float  # total paused time up to as_of


@dataclass(frozen=True)
class MilestoneDefinition:
    """What an amendment can change in a milestone, as it stood."""

    title: str
    description: str
    due_day: int


@dataclass(frozen=True)
class AmendmentApplied(MilestoneAmended):
    """An amendment with the definition it replaced, so the prior one stays visible."""

    previous: MilestoneDefinition | None = None  # None: the milestone is not in the plan


@dataclass(frozen=True)
class OnboardingState:
    onboarding_id: str
    account_id: str
    account_name: str | None
    plan_key: str
    plan_version: int
    segment: str
    csm: str | None
    signed_at: datetime
    as_of: datetime
    status: Status
    current_stage: str | None  # None once the last stage has exited
    onboarded_at: datetime | None
    stages: tuple[StageStatus, ...]
    milestones: tuple[MilestoneStatus, ...]
    ttfv: TTFV
    decomposition: Decomposition
    health: Health
    completion_rate: float  # milestones completed within SLA / all milestones
    escalations: tuple[EscalationStatus, ...]
    signals: Signals
    pause: PauseStatus
    tasks_done_no_value: bool  # every task milestone complete, first value not
    amendments: tuple[AmendmentApplied, ...]  # in time order, each with what it replaced
    next_due_at: datetime | None  # the next moment time alone changes this state
    ladder: EscalationLadder = EscalationLadder()

    @property
    def open_escalations(self) -> tuple[EscalationStatus, ...]:
        return tuple(e for e in self.escalations if e.open)
