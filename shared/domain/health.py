"""Onboarding health: Σ(weight × status) / Σ(weights) × 100 over milestones complete or due.

Status values follow the health-score worked example: complete on time 1.0, complete late
within 2× SLA 0.5, complete later than that 0.25, in progress and overdue 0.25, not started
and overdue 0.0. Milestones neither complete nor due yet do not count; with none counted the
score is 100.0 (nothing has gone wrong yet).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from shared.domain.state import Health, HealthContribution, Tier

STATUS_VALUES: dict[str, float] = {
    "complete_on_time": 1.0,
    "complete_late": 0.5,
    "complete_very_late": 0.25,
    "in_progress_overdue": 0.25,
    "not_started_overdue": 0.0,
}


def _status(
    completed_at: datetime | None,
    due_at: datetime | None,
    late_limit_at: datetime | None,
    in_progress: bool,
    now: datetime,
) -> str | None:
    if completed_at is not None:
        if due_at is None or completed_at <= due_at:
            return "complete_on_time"
        if late_limit_at is None or completed_at <= late_limit_at:
            return "complete_late"
        return "complete_very_late"
    if due_at is None or now < due_at:
        return None
    return "in_progress_overdue" if in_progress else "not_started_overdue"


def contribution(
    key: str,
    weight: int,
    completed_at: datetime | None,
    due_at: datetime | None,
    late_limit_at: datetime | None,
    in_progress: bool,
    now: datetime,
) -> HealthContribution | None:
    """How one milestone counts towards health, or ``None`` if it does not count yet."""
    status = _status(completed_at, due_at, late_limit_at, in_progress, now)
    if status is None:
        return None
    value = STATUS_VALUES[status]
    return HealthContribution(key, weight, status, value, weight * value)


def score(contributions: Iterable[HealthContribution]) -> float:
    """The weighted score, 0..100 with one decimal; 100.0 when nothing counts yet."""
    counted = list(contributions)
    weights = sum(c.weight for c in counted)
    if not weights:
        return 100.0
    return round(sum(c.points for c in counted) / weights * 100, 1)


def tier(value: float) -> Tier:
    """≥80 healthy, 60–79.9 at risk, below 60 critical."""
    if value >= 80:
        return "healthy"
    return "at_risk" if value >= 60 else "critical"


def health(contributions: Iterable[HealthContribution]) -> Health:
    counted = tuple(contributions)
    value = score(counted)
    return Health(
        score=value,
        tier=tier(value),
        points=sum(c.points for c in counted),
        weights=sum(c.weight for c in counted),
        contributions=counted,
    )
