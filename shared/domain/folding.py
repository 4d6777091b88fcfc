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
- An incomplete ``rolling`` milestone did not complete up to the last projection with the
  events stored then, so a window that completes now ends at a later event or holds an
  event stored since (a late one too), and starts at most ``days`` before the last
  projection or the earliest such event: its events from there on suffice (``_reach``).
  Most often an aggregate of them does (``trail``): when no window in that span can meet
  the rule, the progress at ``now`` is the trailing window's count, users and evidence,
  which the database sums up, or which the tally kept with the prior gives once slid
  forward by the events that left the window and came into it (``Slide``).
- Manual evidence: a milestone with confirmations is reused only if they are the same ones
  and its rule has no rolling window; else its window is read whole.

What cannot be answered from the prior or the events read so far becomes a ``Span`` to
read (``needs``); the shell reads them and evaluates again (anchors such as go-live come
from earlier milestones, so a second round may ask for more). The same facts give the same
state as ``evaluate``: property tests hold the two equal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from shared.domain.activity import ActivityDay, activity_events
from shared.domain.evaluate import Inputs, ProgressOf, derive, inputs
from shared.domain.facts import EventObserved, EvidenceRecorded, Fact, OnboardingRegistered
from shared.domain.milestones import NOT_STARTED, RuleProgress, completion
from shared.domain.plans import Milestone, Plan
from shared.domain.rules import matches
from shared.domain.state import MilestoneStatus, OnboardingState
from shared.domain.trail import (
    Slide,
    SlideRows,
    Tally,
    Trail,
    TrailStats,
    could_complete,
    slid,
    trail_progress,
)

SLIDE_SPAN = timedelta(hours=6)  # the most event time a slide reads; beyond it, sum again


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
    seq: int = 0  # the account's insert number it was made at (``fresh``: numbered after)
    tallies: Mapping[str, Tally] = field(default_factory=dict)  # by milestone, made with it


@dataclass(frozen=True)
class Span:
    """A read: the events named ``names`` with ``since <= at <= until``."""

    names: tuple[str, ...]
    since: datetime
    until: datetime


Need = Span | Trail | Slide  # a read a fold asks the shell for


@dataclass(frozen=True)
class Folding:
    """A fold's outcome: the state and the tallies of its unfinished rolling rules (by
    milestone, to keep in the fold record), or no state and the reads it still needs."""

    state: OnboardingState | None
    needs: list[Need]
    tallies: dict[str, Tally]


@dataclass
class Loaded:
    """The events read so far (by name, then id), the spans they cover, and the trails
    (aggregates) read so far."""

    spans: list[Span] = field(default_factory=list)
    events: dict[str, dict[str, EventObserved]] = field(default_factory=dict)
    trails: dict[Trail, TrailStats] = field(default_factory=dict)
    slides: dict[Slide, SlideRows] = field(default_factory=dict)

    def add(self, span: Span, events: Iterable[EventObserved]) -> None:
        self.spans.append(span)
        for e in events:
            self.events.setdefault(e.name, {})[e.id] = e

    def add_trail(self, trail: Trail, stats: TrailStats) -> None:
        self.trails[trail] = stats

    def add_slide(self, slide: Slide, rows: SlideRows) -> None:
        self.slides[slide] = rows

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


def _reach(m: Milestone, signed: datetime, prior: Prior) -> datetime:
    """Where the windows of the unfinished rolling milestone ``m`` that can complete now
    begin: it did not complete up to the prior's moment with the events stored then, so a
    window that does now ends at a later event or holds an event stored since; either way
    it starts at most ``days`` before the prior's moment or the earliest such event."""
    rule = m.rule
    assert rule is not None and rule.within is not None
    then = prior.state.as_of
    late = min((e.at for e in prior.fresh if e.at < then and matches(rule, e)), default=then)
    return max(signed, late - timedelta(days=rule.within.days))


def _trail(m: Milestone, signed: datetime, prior: Prior, now: datetime) -> Trail | None:
    """The aggregate that answers the unfinished rolling milestone ``m``, folded from
    ``prior`` at ``now``, where one can: its rule filters no property and it takes no
    manual evidence. Every window that can complete then holds a matching event stored
    since (late ones too), or ends at an event stored before and later than the prior's
    moment (the earliest of those is ``prior.ahead``), at or before ``now``; the trail's
    wide span holds every such window."""
    rule = m.rule
    assert rule is not None and rule.within is not None
    if m.manual or rule.where or now < prior.state.as_of:
        return None
    span = timedelta(days=rule.within.days)
    since = max(signed, now - span)
    ends = [e.at for e in prior.fresh if e.at <= now and matches(rule, e)]
    if prior.ahead is not None and prior.ahead <= now:
        ends.append(prior.ahead)
    wide = max(signed, min(ends) - span) if ends else since
    return Trail(rule.events, min(wide, since), since, now)


def _slide(m: Milestone, trail: Trail, prior: Prior, now: datetime) -> Slide | None:
    """The read that slides ``m``'s tally kept with ``prior`` to ``trail``'s window, where
    it reads less than summing the trail would: at most ``SLIDE_SPAN`` of event time left
    behind (the wide span's earlier events included) or come since."""
    kept = prior.tallies.get(m.key)
    then = prior.state.as_of
    if kept is None or kept.until != then or now - then > SLIDE_SPAN:
        return None
    reach = min(trail.wide, kept.since)
    if trail.since - reach > SLIDE_SPAN:
        return None
    return Slide(trail.names, prior.seq, reach, kept.since, trail.since, then, now)


def _slid_stats(
    m: Milestone, trail: Trail, slide: Slide, rows: SlideRows, prior: Prior
) -> tuple[Tally, TrailStats] | None:
    """The tally slid by ``rows`` and the events stored since, and the trail's answer
    from it (None: it does not slide; sum the trail instead)."""
    rule = m.rule
    assert rule is not None
    fresh = [e for e in prior.fresh if matches(rule, e)]
    tally = slid(prior.tallies[m.key], rows, fresh, slide.since1, slide.until1)
    if tally is None:
        return None
    beyond = [r for r in rows.before if r[0][0] >= trail.wide]
    beyond += [((e.at, e.id), e.user_id) for e in fresh if trail.wide <= e.at < trail.since]
    return tally, tally.stats(beyond)


def progress_source(
    registration: OnboardingRegistered,
    prior: Prior | None,
    loaded: Loaded,
    now: datetime,
    needs: list[Need],
    tallies: dict[str, Tally],
) -> ProgressOf:
    """A ``ProgressOf`` that reuses ``prior`` where it still holds, computes from ``loaded``
    where that covers the window, and else records the ``Span``, ``Trail`` or ``Slide`` it
    lacks in ``needs``; the tallies of unfinished rolling rules it made go to ``tallies``."""
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
                if rolling and not manual:
                    if was.count == 0 and quiet and not fresh_hit(m, now):
                        empty = _empty_trail(now, span_days)  # nothing in any window since
                        assert empty.window_opens_at is not None
                        tallies[m.key] = Tally(max(signed, empty.window_opens_at), now, 0, {}, ())
                        return empty
                    assert prior is not None
                    trail = _trail(m, signed, prior, now)
                    stats = None
                    slide = _slide(m, trail, prior, now) if trail is not None else None
                    if trail is not None and slide is not None:
                        rows = loaded.slides.get(slide)
                        if rows is None:
                            needs.append(slide)
                            return NOT_STARTED
                        made = _slid_stats(m, trail, slide, rows, prior)
                        if made is not None:
                            tallies[m.key], stats = made
                    if trail is not None and stats is None:
                        stats = loaded.trails.get(trail)
                        if stats is None:
                            needs.append(trail)
                            return NOT_STARTED
                        if stats.tally is not None:
                            tallies[m.key] = stats.tally
                    if stats and not could_complete(stats, rule.min_count, rule.min_distinct_users):
                        return trail_progress(stats, now, span_days)
                    since = _reach(m, signed, prior)
        if not all(loaded.covers(n, since, until) for n in rule.events):
            needs.append(Span(rule.events, since, until))
            return NOT_STARTED
        return completion(m, loaded.matching(m, since, until), evidence, signed, anchor, now)

    return progress_of


def trailing(
    plan: Plan, registration: OnboardingRegistered, prior: Prior, now: datetime
) -> list[Need]:
    """The reads a fold from ``prior`` will ask for whatever else changed (read up front:
    one round, not two): each unfinished rolling rule's slide of its kept tally, or its
    trail, or where none answers it, its events from ``prior.as_of - days``."""
    then = prior.state.as_of
    before = {s.key: s for s in prior.state.milestones}
    found: list[Need] = []
    for m in plan.milestones:
        rule, was = m.rule, before.get(m.key)
        window = rule.within if rule else None
        if rule is None or window is None or window.anchor != "rolling" or was is None:
            continue
        if was.completed_at is None and was.count and now >= then:
            trail = _trail(m, registration.at, prior, now)
            if trail is None:
                found.append(Span(rule.events, _reach(m, registration.at, prior), now))
            else:
                found.append(_slide(m, trail, prior, now) or trail)
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
    given = inputs(registration, manual, now)  # the stand-ins are already as ``inputs`` keeps
    ahead = min((m for m in (given.ahead, events_ahead) if m is not None), default=None)
    return replace(given, events=stand_ins, ahead=ahead)


def fold_inputs(
    plan: Plan,
    registration: OnboardingRegistered,
    given: Inputs,
    prior: Prior | None,
    loaded: Loaded,
    now: datetime,
) -> Folding:
    """``fold`` from ``signal_inputs`` made once (the shell folds a page in rounds)."""
    needs: list[Need] = []
    tallies: dict[str, Tally] = {}
    progress_of = progress_source(registration, prior, loaded, now, needs, tallies)
    state = derive(plan, registration, given, progress_of, now)
    if needs:
        return Folding(None, needs, {})
    open_ = {s.key for s in state.milestones if s.completed_at is None}
    return Folding(state, [], {k: t for k, t in tallies.items() if k in open_})


def fold(
    plan: Plan,
    registration: OnboardingRegistered,
    manual: Iterable[Fact],
    days: Sequence[ActivityDay],
    prior: Prior | None,
    loaded: Loaded,
    events_ahead: datetime | None,
    now: datetime,
) -> Folding:
    """``evaluate`` of this onboarding from its manual facts, its account's activity
    summaries (up to ``now``, see ``activity.upto``), the prior projection and the rule
    events read so far; ``events_ahead``: its account's earliest event after ``now``.

    Returns the state and the tallies to keep with it, or ``None`` and the reads still to
    make."""
    given = signal_inputs(registration, manual, days, events_ahead, now)
    return fold_inputs(plan, registration, given, prior, loaded, now)
