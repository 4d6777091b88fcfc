"""SLA clocks and pauses: a formal pause stops the SLA clock, so due moments move later.

Pauses come from ``OnboardingPaused`` / ``OnboardingResumed`` facts in time order. A due
moment is pushed by the length of every pause that starts before it (the running due moment,
since one pause can push it past the start of the next); an open pause that starts before it
holds it open-ended (``None``: not due while paused). TTFV is the customer's clock and is
never shifted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.domain.facts import Fact, OnboardingPaused, OnboardingResumed


@dataclass(frozen=True)
class Pause:
    """A pause ``[start, end)``; ``end`` is ``None`` while it is still open."""

    start: datetime
    end: datetime | None = None

    def length(self, now: datetime) -> timedelta:
        return max((self.end or now) - self.start, timedelta(0))


def pauses(facts: Iterable[Fact], now: datetime) -> tuple[Pause, ...]:
    """Pair pause and resume facts (``at <= now``) in time order.

    A pause while paused and a resume while not paused are ignored, so repeated clicks
    and retried commands cannot corrupt the clock.
    """
    relevant = sorted(
        {
            f.id: f
            for f in facts
            if isinstance(f, OnboardingPaused | OnboardingResumed) and f.at <= now
        }.values(),
        key=lambda f: (f.at, f.id),
    )
    found: list[Pause] = []
    start: datetime | None = None
    for fact in relevant:
        if isinstance(fact, OnboardingPaused) and start is None:
            start = fact.at
        elif isinstance(fact, OnboardingResumed) and start is not None:
            if fact.at > start:
                found.append(Pause(start, fact.at))
            start = None
    if start is not None:
        found.append(Pause(start))
    return tuple(found)


def shift(
    nominal_due: datetime, pauses: Iterable[Pause], start: datetime | None = None
) -> datetime | None:
    """``nominal_due`` pushed by every pause that starts before the running due moment.

    ``start`` is when the clock started (signature, stage entry, last event): time paused
    before it does not count. Returns ``None`` if an open pause holds the clock, else a
    moment at or after ``nominal_due`` (pauses only push it later).
    """
    if not pauses:  # most onboardings never pause: nothing to sort
        return nominal_due
    due = nominal_due
    for pause in sorted(pauses, key=lambda p: p.start):
        begin = pause.start if start is None else max(pause.start, start)
        if pause.end is not None and pause.end <= begin:
            continue
        if begin >= due:
            break
        if pause.end is None:
            return None
        due += pause.end - begin
    return due


def paused_days(pauses: Iterable[Pause], now: datetime) -> float:
    """Total paused time up to ``now``, in days."""
    return sum((p.length(now) for p in pauses), timedelta(0)) / timedelta(days=1)
