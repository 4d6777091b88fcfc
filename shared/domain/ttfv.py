"""Time to first value and its decomposition into handoff, setup and activation.

TTFV is the customer's clock (signature → first-value milestone) and is never paused. Over
the target band's upper bound is a ``breach``; at 2× or more it is ``severe`` — the earliest
churn signal. An onboarding that has not reached first value is judged on elapsed days.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.domain.plans import TTFVTarget
from shared.domain.state import TTFV, Breach, Decomposition

DAY = timedelta(days=1)


def days_between(start: datetime, end: datetime) -> float:
    return (end - start) / DAY


def breach_level(days: float, target: TTFVTarget) -> Breach:
    if days >= 2 * target.max_days:
        return "severe"
    return "breach" if days > target.max_days else "none"


def breach_moments(signed_at: datetime, target: TTFVTarget) -> tuple[datetime, datetime]:
    """When an open onboarding's elapsed days cross into ``breach`` and into ``severe``."""
    return (
        signed_at + timedelta(days=target.max_days) + timedelta(microseconds=1),
        signed_at + timedelta(days=2 * target.max_days),
    )


def ttfv(
    signed_at: datetime, reached_at: datetime | None, now: datetime, target: TTFVTarget
) -> TTFV:
    days = days_between(signed_at, reached_at) if reached_at is not None else None
    elapsed = days if days is not None else days_between(signed_at, now)
    return TTFV(
        reached_at=reached_at,
        days=days,
        elapsed_days=elapsed,
        target_min_days=target.min_days,
        target_max_days=target.max_days,
        breach=breach_level(elapsed, target),
    )


def _span(start: datetime | None, end: datetime | None) -> float | None:
    return days_between(start, end) if start is not None and end is not None else None


def decompose(
    signed_at: datetime,
    first_engagement_at: datetime | None,
    go_live_at: datetime | None,
    first_value_at: datetime | None,
) -> Decomposition:
    """TTV = handoff (→ first engagement) + setup (→ go-live) + activation (→ first value)."""
    handoff = _span(signed_at, first_engagement_at)
    setup = _span(first_engagement_at, go_live_at)
    activation = _span(go_live_at, first_value_at)
    parts = (handoff, setup, activation)
    total = sum(p for p in parts if p is not None) if None not in parts else None
    return Decomposition(
        first_engagement_at=first_engagement_at,
        go_live_at=go_live_at,
        first_value_at=first_value_at,
        handoff_days=handoff,
        setup_days=setup,
        activation_days=activation,
        total_days=total,
    )
