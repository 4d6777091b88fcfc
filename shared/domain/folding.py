"""Milestone progress from the stored projection plus the few events that can change it.

``evaluate`` walks every matching event of every rule. The projector does not need to:

- A milestone complete at ``c`` depends only on its window's events up to ``c``; more events
  can only complete it earlier (counts and distinct users only grow), never later. So if no
  event stored since the last projection (``Prior.fresh``) matches its rule at or before
  ``c``, its window's opening is unchanged and ``c <= now``, the stored progress *is* the
  answer. Otherwise only events up to ``c`` need reading.
- An incomplete anchored milestone (a window, or none: since signature) depends on the
  events in its window up to ``now``: unchanged when no fresh event matches there, no
  previously seen event lay between the last projection and ``now`` (``Prior.ahead``), and
  the opening is the same.
- An incomplete ``rolling`` milestone did not complete up to the last projection, so it can
  only complete at a later event, whose window starts at most ``days`` before: its events
  from ``last projection - days`` on suffice.
- Manual evidence: a milestone with confirmations is reused only if they are the same ones
  and its rule has no rolling window; else its window is read whole.

What cannot be answered from the prior or the events read so far becomes a ``Span`` to
read (``needs``); the shell reads them and evaluates again (anchors such as go-live come
from earlier milestones, so a second round may ask for more). The same facts give the same
state as ``evaluate``: property tests hold the two equal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from shared.domain.activity import ActivityDay, activity_events
from shared.domain.evaluate import Inputs, ProgressOf, derive, inputs
from shared.domain.facts import EventObserved, EvidenceRecorded, Fact, OnboardingRegistered
from shared.domain.milestones import NOT_STARTED, RuleProgress, completion
from shared.domain.plans import Milestone, Plan
from shared.domain.rules import matches
from shared.domain.state import MilestoneStatus, OnboardingState


def rules_digest(plan: Plan) -> str:
    """Identifies what stored progress depends on: each milestone's rule and manual flag."""
    text = repr([(m.key, m.rule, m.manual) for m in plan.milestones])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def rule_names(plans: Iterable[Plan]) -> frozenset[str]:
    """Every event name these plans' rules can match."""
    return frozenset(n for p in plans for m in p.milestones if m.rule for n in m.rule.events)


@dataclass(frozen=True)
class Prior:
    """The stored projection and what has been stored since it was made."""

    state: OnboardingState  # made at ``state.as_of`` under a plan with the same rules
    fresh: Sequence[EventObserved]  # every event stored since (any time), rule names at least
    ahead: datetime | None  # the earliest event after ``state.as_of`` when it was made


@dataclass(frozen=True)
class Span:
    """A read: the events named ``names`` with ``since <= at <= until``."""

    names: tuple[str, ...]
    since: datetime
    until: datetime


@dataclass
class Loaded:
    """The events read so far (by name, then id), and the spans they cover."""

    spans: list[Span] = field(default_factory=list)
    events: dict[str, dict[str, EventObserved]] = field(default_factory=dict)

    def add(self, span: Span, events: Iterable[EventObserved]) -> None:
        self.spans.append(span)
        for e in events:
            self.events.setdefault(e.name, {})[e.id] = e

    def covers(self, name: str, since: datetime, until: datetime) -> bool:
        return any(name in s.names and s.since <= since and until <= s.until for s in self.spans)

    def matching(self, m: Milestone, since: datetime, until: datetime) -> list[EventObserved]:
        rule = m.rule
        assert rule is not None
        found = [
            e
            for name in rule.events
            for e in self.events.get(name, {}).values()
            if since <= e.at <= until and matches(rule, e)
        ]
        return sorted(found, key=lambda e: (e.at, e.id))


def _kept(status: MilestoneStatus) -> RuleProgress:
    return RuleProgress(
        status.completed_at,
        status.count,
        status.distinct_users,
        status.event_ids,
        status.window_opens_at,
        status.window_closes_at,
        status.confirmations,
    )


def _empty_trail(now: datetime, days: int) -> RuleProgress:
    """A rolling rule with no matching event in its trailing window (``rule_progress``'s
    answer then)."""
    return RuleProgress(None, 0, 0, (), now - timedelta(days=days), now)


def progress_source(
    registration: OnboardingRegistered,
    prior: Prior | None,
    loaded: Loaded,
    now: datetime,
    needs: list[Span],
) -> ProgressOf:
    """A ``ProgressOf`` that reuses ``prior`` where it still holds, computes from ``loaded``
    where that covers the window, and else records the ``Span`` it lacks in ``needs``."""
    signed = registration.at
    before = {s.key: s for s in prior.state.milestones} if prior else {}
    then = prior.state.as_of if prior else None

    def fresh_hit(m: Milestone, until: datetime) -> bool:
        assert prior is not None and m.rule is not None
        return any(e.at <= until and matches(m.rule, e) for e in prior.fresh)

    def progress_of(
        m: Milestone, anchor: datetime | None, evidence: Sequence[EvidenceRecorded]
    ) -> RuleProgress:
        rule = m.rule
        window = rule.within if rule else None
        rolling = window is not None and window.anchor == "rolling"
        span_days = window.days if window is not None else 0
        if rule is None or (window is not None and not rolling and anchor is None):
            return completion(m, [], evidence, signed, anchor, now)
        confirmations = tuple(sorted(evidence, key=lambda e: (e.at, e.id)))
        was = before.get(m.key)
        manual = m.manual and (bool(confirmations) or bool(was and was.confirmations))
        if was is not None and manual and (rolling or was.confirmations != confirmations):
            was = None  # new evidence, or a rolling window that moves with it: read whole
        opens = signed if rolling or window is None else anchor
        assert opens is not None
        closes = None if window is None or rolling else opens + timedelta(days=window.days)
        until = now if closes is None else min(now, closes)
        since = opens
        if was is not None and then is not None:
            done = was.completed_at
            same_window = rolling or was.window_opens_at == opens
            if done is not None and same_window:
                if done <= now and not fresh_hit(m, done):
                    return _kept(was)
                if not manual:
                    until = min(until, done)  # more events only complete it earlier
            elif done is None and same_window and now >= then:
                quiet = prior is not None and (prior.ahead is None or prior.ahead > until)
                if not rolling and quiet and not fresh_hit(m, until):
                    return _kept(was)
                if rolling and not manual and not fresh_hit(m, then):
                    if was.count == 0 and quiet and not fresh_hit(m, now):
                        return _empty_trail(now, span_days)  # nothing in any window since
                    since = max(signed, then - timedelta(days=span_days))
        if not all(loaded.covers(n, since, until) for n in rule.events):
            needs.append(Span(rule.events, since, until))
            return NOT_STARTED
        return completion(m, loaded.matching(m, since, until), evidence, signed, anchor, now)

    return progress_of


def trailing(
    plan: Plan, registration: OnboardingRegistered, prior: OnboardingState, now: datetime
) -> list[Span]:
    """The spans a fold from ``prior`` will ask for whatever else changed: each unfinished
    rolling rule's events from ``prior.as_of - days`` (read up front: one round, not two)."""
    before = {s.key: s for s in prior.milestones}
    found = []
    for m in plan.milestones:
        rule, was = m.rule, before.get(m.key)
        window = rule.within if rule else None
        if rule is None or window is None or window.anchor != "rolling" or was is None:
            continue
        if was.completed_at is None and was.count and now >= prior.as_of:
            since = max(registration.at, prior.as_of - timedelta(days=window.days))
            found.append(Span(rule.events, since, now))
    return found


def signal_inputs(
    registration: OnboardingRegistered,
    manual: Iterable[Fact],
    days: Sequence[ActivityDay],
    events_ahead: datetime | None,
    now: datetime,
) -> Inputs:
    """What ``fold`` needs besides rule progress, the same in every round of one fold: the
    manual facts and the activity summaries' stand-in events split as ``evaluate`` splits
    them, and the first fact after ``now`` (``events_ahead``: the account's first event)."""
    stand_ins = activity_events(registration.account_id, days, registration.champion_user_id, now)
    given = inputs(registration, [*manual, *stand_ins], now)
    ahead = min((m for m in (given.ahead, events_ahead) if m is not None), default=None)
    return replace(given, ahead=ahead)


def fold_inputs(
    plan: Plan,
    registration: OnboardingRegistered,
    given: Inputs,
    prior: Prior | None,
    loaded: Loaded,
    now: datetime,
) -> tuple[OnboardingState | None, list[Span]]:
    """``fold`` from ``signal_inputs`` made once (the shell folds a page in rounds)."""
    needs: list[Span] = []
    progress_of = progress_source(registration, prior, loaded, now, needs)
    state = derive(plan, registration, given, progress_of, now)
    return (None, needs) if needs else (state, [])


def fold(
    plan: Plan,
    registration: OnboardingRegistered,
    manual: Iterable[Fact],
    days: Sequence[ActivityDay],
    prior: Prior | None,
    loaded: Loaded,
    events_ahead: datetime | None,
    now: datetime,
) -> tuple[OnboardingState | None, list[Span]]:
    """``evaluate`` of this onboarding from its manual facts, its account's activity
    summaries (up to ``now``, see ``activity.upto``), the prior projection and the rule
    events read so far; ``events_ahead``: its account's earliest event after ``now``.

    Returns the state, or ``None`` and the spans still to read."""
    given = signal_inputs(registration, manual, days, events_ahead, now)
    return fold_inputs(plan, registration, given, prior, loaded, now)
