"""Milestone progress: when a milestone completes, from matching events and manual evidence.

Matching events are walked in ``(at, id)`` order; the milestone completes at the event where
both thresholds (count and distinct users) first hold over the events that count. Which
events count is the rule's window: ``[anchor, anchor + days]`` for anchored windows (nothing
counts while the anchor is not known yet), the preceding ``days`` days for ``rolling``, and
everything since signature when there is no window. Manual evidence completes a ``manual``
milestone at its earliest confirmation; with both, the earlier completion wins.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared.domain.facts import EventObserved, EvidenceRecorded
from shared.domain.plans import EventRule, Milestone
from shared.domain.state import Progress

EVIDENCE_CAP = 50


@dataclass(frozen=True)
class RuleProgress:
    """Where one milestone stands: completion moment and what was counted."""

    completed_at: datetime | None
    count: int
    distinct_users: int
    event_ids: tuple[str, ...]
    window_opens_at: datetime | None
    window_closes_at: datetime | None
    confirmations: tuple[EvidenceRecorded, ...] = ()
    drops_at: datetime | None = None  # rolling: when the oldest counted event leaves the window

    @property
    def progress(self) -> Progress:
        if self.completed_at is not None:
            return "complete"
        return "in_progress" if self.count else "not_started"


NOT_STARTED = RuleProgress(None, 0, 0, (), None, None)


def _evidence(counted: Sequence[EventObserved]) -> tuple[str, ...]:
    """Up to ``EVIDENCE_CAP`` ids: each user's first event and the last one, then the latest.

    Those are what met the thresholds; the rest only pads the count.
    """
    if len(counted) <= EVIDENCE_CAP:
        return tuple(e.id for e in counted)
    seen: set[str | None] = set()
    key_events = []
    for event in counted:
        if event.user_id not in seen:
            seen.add(event.user_id)
            key_events.append(event)
    chosen = {e.id: e for e in key_events[: EVIDENCE_CAP - 1]}
    chosen[counted[-1].id] = counted[-1]
    for event in reversed(counted):
        if len(chosen) >= EVIDENCE_CAP:
            break
        chosen.setdefault(event.id, event)
    return tuple(e.id for e in sorted(chosen.values(), key=lambda e: (e.at, e.id)))


def _users(events: Sequence[EventObserved]) -> int:
    return len({e.user_id for e in events if e.user_id is not None})


def _met(rule: EventRule, count: int, users: int) -> bool:
    return count >= rule.min_count and users >= rule.min_distinct_users


def _anchored(
    rule: EventRule, events: Sequence[EventObserved], opens: datetime, closes: datetime | None
) -> RuleProgress:
    counted: list[EventObserved] = []
    users: set[str] = set()
    for event in events:
        if event.at < opens or (closes is not None and event.at > closes):
            continue
        counted.append(event)
        if event.user_id is not None:
            users.add(event.user_id)
        if _met(rule, len(counted), len(users)):
            return RuleProgress(
                event.at, len(counted), len(users), _evidence(counted), opens, closes
            )
    return RuleProgress(None, len(counted), len(users), _evidence(counted), opens, closes)


def _rolling(
    rule: EventRule, events: Sequence[EventObserved], since: datetime, now: datetime, days: int
) -> RuleProgress:
    span = timedelta(days=days)
    window: deque[EventObserved] = deque()
    users: Counter[str] = Counter()
    for event in (e for e in events if e.at >= since):
        window.append(event)
        if event.user_id is not None:
            users[event.user_id] += 1
        while window[0].at < event.at - span:
            gone = window.popleft()
            if gone.user_id is not None:
                users[gone.user_id] -= 1
                if not users[gone.user_id]:
                    del users[gone.user_id]
        if _met(rule, len(window), len(users)):
            return RuleProgress(
                event.at, len(window), len(users), _evidence(window), event.at - span, event.at
            )
    recent = [e for e in events if e.at >= max(since, now - span)]
    drops = recent[0].at + span if recent else None
    return RuleProgress(
        None, len(recent), _users(recent), _evidence(recent), now - span, now, drops_at=drops
    )


def rule_progress(
    rule: EventRule,
    events: Sequence[EventObserved],
    signed_at: datetime,
    anchor_at: datetime | None,
    now: datetime,
) -> RuleProgress:
    """Progress of ``rule`` over ``events`` (its matching events, sorted by ``(at, id)``).

    ``anchor_at`` is the moment the rule's window is anchored to (signature, go-live or
    stage entry); ``None`` when that moment has not happened yet.
    """
    window = rule.within
    if window is None:
        return _anchored(rule, events, signed_at, None)
    if window.anchor == "rolling":
        return _rolling(rule, events, signed_at, now, window.days)
    if anchor_at is None:
        return NOT_STARTED
    return _anchored(rule, events, anchor_at, anchor_at + timedelta(days=window.days))


def completion(
    milestone: Milestone,
    events: Sequence[EventObserved],
    evidence: Sequence[EvidenceRecorded],
    signed_at: datetime,
    anchor_at: datetime | None,
    now: datetime,
) -> RuleProgress:
    """A milestone's progress from its rule and (if ``manual``) its confirmations."""
    found = (
        rule_progress(milestone.rule, events, signed_at, anchor_at, now)
        if milestone.rule is not None
        else NOT_STARTED
    )
    if not milestone.manual or not evidence:
        return found
    confirmations = tuple(sorted(evidence, key=lambda e: (e.at, e.id)))
    confirmed_at = confirmations[0].at
    if found.completed_at is not None and found.completed_at <= confirmed_at:
        return replace(found, confirmations=confirmations)
    before = (
        rule_progress(
            milestone.rule,
            [e for e in events if e.at <= confirmed_at],
            signed_at,
            anchor_at,
            confirmed_at,
        )
        if milestone.rule is not None
        else NOT_STARTED
    )
    return replace(
        before,
        completed_at=confirmed_at,
        confirmations=confirmations,
        window_opens_at=found.window_opens_at,
        window_closes_at=found.window_closes_at,
        drops_at=None,
    )
