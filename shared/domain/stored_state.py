"""The stored-state document: an ``OnboardingState`` as ``codec.state_to_dict`` writes it.

Projections keep this JSON, the API's detail reads it without rebuilding the dataclasses
(several times cheaper), and SQL reports read parts of it. These types name its keys once,
so a reader's ``stored["plan_key"]`` is checked by mypy instead of trusted. They mirror the
dataclasses of ``shared.domain.state`` field for field (a unit test holds them equal);
moments are ISO-8601 UTC strings and tuples lists. Keys written only by newer versions are
``NotRequired``: a state stored before them still reads.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

from shared.domain.state import (
    Breach,
    LadderState,
    Progress,
    StageState,
    Status,
    Tier,
)


class StoredConfirmation(TypedDict):
    id: str
    onboarding_id: str
    milestone_key: str
    at: str
    confirmed_by: str
    channel: str
    quote: str | None
    link: str | None
    recorded_by: str | None


class StoredMilestone(TypedDict):
    key: str
    title: str
    kind: str
    weight: int
    stage: str
    due_at: str | None
    progress: Progress
    completed_at: str | None
    on_time: bool | None
    overdue: bool
    count: int
    distinct_users: int
    required_count: int
    required_users: int
    window_opens_at: str | None
    window_closes_at: str | None
    event_ids: list[str]
    confirmations: list[StoredConfirmation]
    rule: str
    description: str


class StoredStage(TypedDict):
    key: str
    title: str
    owner: str
    state: StageState
    entered_at: str | None
    criterion_met_at: str | None
    exited_at: str | None
    due_at: str | None
    overdue: bool


class StoredContribution(TypedDict):
    milestone_key: str
    weight: int
    status: str
    value: float
    points: float


class StoredHealth(TypedDict):
    score: float
    tier: Tier
    points: float
    weights: int
    contributions: list[StoredContribution]


class StoredTTFV(TypedDict):
    reached_at: str | None
    days: float | None  # rounded to two decimals (``codec``)
    elapsed_days: float  # rounded to two decimals (``codec``)
    target_min_days: float
    target_max_days: float
    breach: Breach


class StoredDecomposition(TypedDict):
    first_engagement_at: str | None
    go_live_at: str | None
    first_value_at: str | None
    handoff_days: float | None
    setup_days: float | None
    activation_days: float | None
    total_days: float | None


class StoredEscalation(TypedDict):
    rule_key: str
    kind: str
    level: int
    action: str
    title: str
    due_at: str
    fired_at: str
    resolved_at: str | None
    reason: str
    ladder: NotRequired[str | None]
    raised_from: NotRequired[int | None]
    resolution: NotRequired[str | None]


class StoredLadder(TypedDict):
    state: LadderState
    level: int
    rule_key: str | None
    action: str | None
    reason: str | None
    opened_at: str | None
    raised_at: str | None
    resolved_at: str | None


class StoredSignals(TypedDict):
    last_event_at: str | None
    silent_days: float
    champion_quiet: bool
    single_threaded: bool
    active_users_14d: int


class StoredPause(TypedDict):
    paused: bool
    paused_since: str | None
    paused_days: float


class StoredDefinition(TypedDict):
    title: str
    description: str
    due_day: int


class StoredAmendment(TypedDict):
    id: str
    onboarding_id: str
    at: str
    milestone_key: str
    author: str
    reason: str
    title: str | None
    description: str | None
    due_day: int | None
    previous: StoredDefinition | None


class StoredState(TypedDict):
    onboarding_id: str
    account_id: str
    account_name: str | None
    plan_key: str
    plan_version: int
    segment: str
    csm: str | None
    signed_at: str
    as_of: str
    status: Status
    current_stage: str | None
    onboarded_at: str | None
    stages: list[StoredStage]
    milestones: list[StoredMilestone]
    ttfv: StoredTTFV
    decomposition: StoredDecomposition
    health: StoredHealth
    completion_rate: float
    escalations: list[StoredEscalation]
    signals: StoredSignals
    pause: StoredPause
    tasks_done_no_value: bool
    amendments: list[StoredAmendment]
    next_due_at: str | None
    ladder: NotRequired[StoredLadder]
