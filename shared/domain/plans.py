"""The onboarding plan: milestones, stages, escalations and targets, as frozen data.

Plans are written in YAML (see ``plan_loader``) and validated at load; everything here is
plain data that the evaluator reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

MilestoneKind = Literal["task", "outcome"]
FilterOp = Literal["eq", "ne", "in", "not_in", "exists", "gt", "gte", "lt", "lte", "contains"]
Anchor = Literal["signature", "go_live", "stage_entry", "rolling"]
EscalationKind = Literal[
    "milestone_missing", "stage_not_exited", "none_complete", "silence", "champion_quiet"
]


@dataclass(frozen=True)
class PropertyFilter:
    """One condition on an event property; ``property`` is a dot path into properties."""

    property: str
    op: FilterOp
    value: Any = None


@dataclass(frozen=True)
class Window:
    """Only events within ``days`` of ``anchor`` count.

    ``signature``/``go_live``/``stage_entry`` windows start at that moment; a ``rolling``
    window means the thresholds must be met inside any span of ``days`` days.
    """

    days: int
    anchor: Anchor = "signature"


@dataclass(frozen=True)
class EventRule:
    """How a milestone completes from usage events."""

    events: tuple[str, ...]
    where: tuple[PropertyFilter, ...] = ()
    min_count: int = 1
    min_distinct_users: int = 1
    within: Window | None = None


@dataclass(frozen=True)
class Milestone:
    """A checkpoint: a vendor ``task`` or a customer-observable ``outcome``."""

    key: str
    title: str
    kind: MilestoneKind
    weight: int
    due_day: int  # SLA: days after contract signature
    stage: str  # the stage that lists it
    rule: EventRule | None = None
    manual: bool = False  # may be completed by manual evidence
    description: str = ""
    business_days: bool = False


@dataclass(frozen=True)
class Stage:
    """An ordered stage; it exits at the later of its criterion and the previous exit."""

    key: str
    title: str
    owner: str
    max_days: int  # SLA for time spent in the stage
    exit_all: tuple[str, ...] = ()
    exit_any: tuple[str, ...] = ()
    business_days: bool = False


@dataclass(frozen=True)
class EscalationRule:
    """A day-based rule; fires at its due moment if its condition still holds.

    - ``milestone_missing``: ``milestones[0]`` not complete by ``day``
    - ``stage_not_exited``: ``stage`` not exited by ``day``
    - ``none_complete``: none of ``milestones`` complete by ``day``
    - ``silence``: no events from the account for ``quiet_days``
    - ``champion_quiet``: the champion silent for ``quiet_days`` while others are active
    """

    key: str
    kind: EscalationKind
    level: int
    action: str
    title: str = ""
    day: int | None = None
    milestones: tuple[str, ...] = ()
    stage: str | None = None
    quiet_days: int | None = None
    business_days: bool = False


@dataclass(frozen=True)
class TTFVTarget:
    """Target band for time to first value, in days."""

    min_days: float
    max_days: float


@dataclass(frozen=True)
class Calendar:
    """Business-day calendar: weekend weekdays (Mon=0) and holidays."""

    weekend: frozenset[int] = frozenset({5, 6})
    holidays: frozenset[date] = frozenset()


@dataclass(frozen=True)
class Plan:
    """A versioned onboarding plan for one segment."""

    key: str
    version: int
    title: str
    segment: str
    ttfv_target: TTFVTarget
    stages: tuple[Stage, ...]
    milestones: tuple[Milestone, ...]
    first_value: str  # milestone key: TTFV stops there
    onboarded_stage: str  # its exit means Successfully Onboarded
    go_live_stage: str  # its exit is technical completion (go-live)
    first_engagement: str  # milestone key: first CS engagement (TTV decomposition)
    escalations: tuple[EscalationRule, ...] = ()
    calendar: Calendar = field(default_factory=Calendar)
    description: str = ""

    def milestone(self, key: str) -> Milestone:
        for m in self.milestones:
            if m.key == key:
                return m
        raise KeyError(key)

    def stage(self, key: str) -> Stage:
        for s in self.stages:
            if s.key == key:
                return s
        raise KeyError(key)
