"""An unfinished rolling rule's progress from an aggregate of its trailing window.

A ``rolling`` rule ("5 users within any 7 days") that has not completed shows what its
trailing window holds at ``now``: how many matching events, how many distinct users, which
ids (``milestones._evidence``: each user's first event, the last one, then the latest, up
to ``EVIDENCE_CAP``) and when the oldest leaves the window. That needs no event walk: a
count, a distinct count, each user's first event (the earliest ``EVIDENCE_CAP - 1``) and
the latest ``EVIDENCE_CAP`` events of the window answer it exactly — a few rows whatever
the window holds, which the database computes (``account_events.trails``).

Whether the rule completes at one of the events that arrived since the last projection
(the only moments it can, docs/projection.md) is bounded the same way: over the span that
holds every such event's window, fewer events than ``min_count`` or fewer users than
``min_distinct_users`` mean no window in it meets the rule, and only otherwise are the
events read and walked.

``trail_stats`` computes the aggregate from events (the reference, and SQLite's path);
property tests hold it, and the database's, to ``milestones.rule_progress``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.domain.facts import EventObserved
from shared.domain.milestones import EVIDENCE_CAP, RuleProgress

Moment = tuple[datetime, str]  # an event's (time, id): the order events are walked in


@dataclass(frozen=True)
class Trail:
    """A read: the events named ``names`` in ``[since, until]`` aggregated, and counted
    over the wider ``[wide, until]`` (``wide <= since``) for the completion bound."""

    names: tuple[str, ...]
    wide: datetime
    since: datetime
    until: datetime


@dataclass(frozen=True)
class TrailStats:
    """A ``Trail``'s answer."""

    wide_count: int
    wide_users: int
    count: int
    users: int
    firsts: tuple[Moment, ...]  # the earliest EVIDENCE_CAP - 1 users' first events (None too)
    latest: tuple[Moment, ...]  # the latest EVIDENCE_CAP events; all of them when fewer


def trail_stats(trail: Trail, events: Iterable[EventObserved]) -> TrailStats:
    """The aggregate of ``events`` (any; those outside the trail are ignored, ids once)."""
    wide = {e.id: e for e in events if e.name in trail.names and trail.wide <= e.at <= trail.until}
    inside = sorted((e for e in wide.values() if e.at >= trail.since), key=lambda e: (e.at, e.id))
    firsts: dict[str | None, Moment] = {}
    for e in inside:
        firsts.setdefault(e.user_id, (e.at, e.id))
    return TrailStats(
        wide_count=len(wide),
        wide_users=len({e.user_id for e in wide.values() if e.user_id is not None}),
        count=len(inside),
        users=len({e.user_id for e in inside if e.user_id is not None}),
        firsts=tuple(sorted(firsts.values())[: EVIDENCE_CAP - 1]),
        latest=tuple((e.at, e.id) for e in inside[-EVIDENCE_CAP:]),
    )


def could_complete(stats: TrailStats, min_count: int, min_users: int) -> bool:
    """Whether some window within the trail's wide span may meet the thresholds."""
    return stats.wide_count >= min_count and stats.wide_users >= min_users


def trail_progress(stats: TrailStats, now: datetime, days: int) -> RuleProgress:
    """The unfinished rolling rule's progress at ``now``, from the trail
    ``[max(signature, now - days), now]`` (what ``milestones._rolling`` answers then)."""
    span = timedelta(days=days)
    drops = stats.firsts[0][0] + span if stats.count else None
    return RuleProgress(
        None, stats.count, stats.users, _evidence(stats), now - span, now, drops_at=drops
    )


def _evidence(stats: TrailStats) -> tuple[str, ...]:
    """``milestones._evidence`` of the window's events, from its firsts and latest."""
    if stats.count <= EVIDENCE_CAP:
        return tuple(i for _, i in stats.latest)
    chosen = dict.fromkeys(stats.firsts)
    chosen[stats.latest[-1]] = None
    for moment in reversed(stats.latest):
        if len(chosen) >= EVIDENCE_CAP:
            break
        chosen.setdefault(moment)
    return tuple(i for _, i in sorted(chosen))
