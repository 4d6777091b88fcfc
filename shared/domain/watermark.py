"""Event-time progress and what it lets the pipeline announce (docs/watermark.md).

A *watermark* W says "every fact with a moment ≤ W has been read". Ingest derives it per
input partition from the event times it has read (the latest one minus an allowed
lateness, never ahead of the clock); the milestones service keeps the state exact at the
clock but announces only what the state shows up to the watermark, because what lies
beyond it may still be undone by input not yet read.

Pure: no clock, no I/O. Evaluation is causal in event time (a moment ≤ W in a state depends
only on facts ≤ W), so the state "as seen at W" is the exact state with every moment after W
taken out — no second evaluation needed (``visible_at``; tested against ``evaluate``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from shared.domain.state import OnboardingState
from shared.domain.transitions import RETRACTED, EscalationResolved, Transition, transitions


@dataclass
class PartitionWatermarks:
    """The latest event time read per input partition (monotone), and the watermark it
    supports: that time minus ``lateness``, never ahead of ``now`` (clock skew)."""

    lateness: timedelta
    latest: dict[int, datetime] = field(default_factory=dict)

    def observe(self, partition: int, event_times: Iterable[datetime]) -> None:
        newest = max(event_times, default=None)
        if newest is None:
            return
        known = self.latest.get(partition)
        if known is None or newest > known:
            self.latest[partition] = newest

    def watermark(self, partitions: Iterable[int], now: datetime) -> datetime | None:
        """The watermark over ``partitions`` (the lowest of theirs); None when none of
        them has been read yet."""
        marks = [self.latest[p] for p in partitions if p in self.latest]
        if not marks:
            return None
        return min(min(marks) - self.lateness, now)


@dataclass
class InputProgress:
    """The watermarks one process has heard in the last ``idle``: the lowest of them is how
    far the whole input is complete while it is active (a batch's watermark is the lowest of
    its partitions'; a partition in no recent batch is caught up). Nothing heard for
    ``idle``: the input is caught up and idle, and its watermark is the clock.

    Unless ingest is known to have a backlog (``ingest_lagging``: events on the input topic
    it has not read — ingest down or stalled): silence then means nothing, and the watermark
    stays where ingest was last heard from — the lowest of its last ``idle`` of notices, or,
    had it gone quiet before, the last moment it was seen caught up. With neither known
    (a process started on a backlog) it is the clock, as without the check."""

    idle: timedelta
    heard: deque[tuple[datetime, datetime]] = field(default_factory=deque)  # (at, watermark)
    lagging: bool = False
    caught_up_at: datetime | None = None  # when ingest was last seen with nothing unread

    def hear(self, watermark: datetime, at: datetime) -> None:
        self.heard.append((at, watermark))

    def ingest_lagging(self, lagging: bool, now: datetime) -> None:
        """What ingest's consumer lag on the input topic says at ``now``."""
        self.lagging = lagging
        if not lagging:
            self.caught_up_at = now

    def watermark(self, now: datetime) -> datetime:
        # While ingest has a backlog, the window ends at the last notice heard, not the clock.
        end = self.heard[-1][0] if self.lagging and self.heard else now
        while self.heard and end - self.heard[0][0] >= self.idle:
            self.heard.popleft()
        if self.heard:
            return min(min(w for _, w in self.heard), now)
        if self.lagging and self.caught_up_at is not None:
            return min(self.caught_up_at, now)
        return now


def effective_watermark(
    watermark: datetime | None,
    heard_at: datetime | None,
    now: datetime,
    idle: timedelta,
    input_watermark: datetime | None = None,
) -> datetime:
    """The watermark to announce by at ``now``, given the last one heard for an onboarding
    and when it was heard: one heard within ``idle`` stands; otherwise the input's as a
    whole (``InputProgress.watermark``: the clock once the input is idle). Nothing heard at
    all (the HTTP path, manual facts, a backfill) counts as complete up to the input's."""
    if watermark is None or heard_at is None or now - heard_at >= idle:
        return now if input_watermark is None else min(input_watermark, now)
    return min(watermark, now)


def visible_at(state: OnboardingState, moment: datetime) -> OnboardingState:
    """``state`` as it stood at ``moment`` for everything transitions are made of: stage
    entries and exits, first value, onboarded, escalations fired and resolved — each moment
    after ``moment`` taken out. ``as_of`` becomes ``min(moment, state.as_of)``."""
    if moment >= state.as_of:
        return state

    def upto(at: datetime | None) -> datetime | None:
        return at if at is not None and at <= moment else None

    stages = tuple(
        replace(s, entered_at=upto(s.entered_at), exited_at=upto(s.exited_at)) for s in state.stages
    )
    ttfv = state.ttfv if upto(state.ttfv.reached_at) else replace(state.ttfv, reached_at=None)
    escalations = tuple(
        e
        if e.resolved_at is None or e.resolved_at <= moment
        else replace(e, resolved_at=None, resolution=None)
        for e in state.escalations
        if e.fired_at <= moment
    )
    return replace(
        state,
        as_of=moment,
        stages=stages,
        ttfv=ttfv,
        onboarded_at=upto(state.onboarded_at),
        escalations=escalations,
    )


def latest_moment(state: OnboardingState) -> datetime | None:
    """The latest moment ``visible_at`` would cut: stage entries and exits, first value,
    onboarded, escalations fired and resolved (None: none yet)."""
    moments = [m for s in state.stages for m in (s.entered_at, s.exited_at) if m is not None]
    moments += [m for m in (state.ttfv.reached_at, state.onboarded_at) if m is not None]
    for e in state.escalations:
        moments += [e.fired_at] if e.resolved_at is None else [e.fired_at, e.resolved_at]
    return max(moments, default=None)


def is_retraction(transition: Transition) -> bool:
    return isinstance(transition, EscalationResolved) and transition.resolution == RETRACTED


@dataclass(frozen=True)
class Announcement:
    """What to announce now, what is now announced, and the earliest held moment."""

    transitions: list[Transition]
    announced: OnboardingState
    held_at: datetime | None  # the earliest transition still beyond the watermark


def announce(
    announced: OnboardingState | None,
    state: OnboardingState,
    watermark: datetime,
    floor: datetime | None = None,
) -> Announcement:
    """The transitions from what was announced to ``state`` as seen at ``watermark``; the
    rest is held until the watermark passes ``held_at`` (then ``announce`` again, with the
    state of that moment: only what still holds comes out). Never by a moment earlier than
    ``floor``, the watermark the last announcement was made by (an input's watermark seen
    from elsewhere may lag): what was announced stays announced, and is not announced
    twice. Nor by one earlier than the latest moment of ``announced`` itself: it was
    announced by a watermark at least that late (the clock, say, once the input was idle),
    so a fact arriving later than that is a late fact — an escalation of ``announced`` it
    undoes is retracted now, not lost below the view."""
    announced_up_to = None if announced is None else latest_moment(announced)
    for bound in (floor, announced_up_to):
        if bound is not None and bound > watermark:
            watermark = bound
    seen = visible_at(state, watermark)
    held = [t.at for t in transitions(seen, state) if not is_retraction(t)]
    return Announcement(transitions(announced, seen), seen, min(held, default=None))
