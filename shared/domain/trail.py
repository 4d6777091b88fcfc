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

Summed each time, the trail costs what the window holds; a window that a live stream fills
grows until it is ``days`` long. So the aggregate is kept per user as a ``Tally`` with the
fold record and slid forward (``slid``) by the few rows that changed (``Slide``).
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
    tally: Tally | None = None  # the window per user, to keep and slide (None: too many)


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
        tally=tally_of(inside, trail.since, trail.until),
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


# --- Sliding a kept tally -------------------------------------------------------------
#
# The trail above is summed by the database over the whole window on every projection, so
# under a live stream its cost follows the window (up to ``days`` of events), not the
# batch. A ``Tally`` is the same aggregate kept in the fold record, per user, so the next
# projection slides it: it adds the events stored since and removes those that left,
# reading only the rows that changed (docs/projection.md, invariant 5).

User = str | None  # user-less events are one group, as ``trail_stats`` keys them
TALLY_USERS = 256  # the users a tally holds at most; a busier window is summed each time


@dataclass(frozen=True)
class Tally:
    """A rolling rule's window as of a projection: its matching events numbered up to
    the fold record's insert number with ``since <= at <= until``, per user their count
    and first event, and the latest ``EVIDENCE_CAP``."""

    since: datetime
    until: datetime
    count: int
    users: dict[User, tuple[int, Moment]]
    latest: tuple[Moment, ...]

    def stats(self, beyond: Iterable[tuple[Moment, User]]) -> TrailStats:
        """The trail's answer from the tally and ``beyond``: the events of the trail's wide
        span that are earlier than ``since``."""
        outside = list(beyond)
        users = {u for u in self.users if u is not None}
        return TrailStats(
            wide_count=self.count + len(outside),
            wide_users=len(users | {u for _, u in outside if u is not None}),
            count=self.count,
            users=len(users),
            firsts=tuple(sorted(first for _, first in self.users.values())[: EVIDENCE_CAP - 1]),
            latest=self.latest,
        )


def tally_of(events: Iterable[EventObserved], since: datetime, until: datetime) -> Tally | None:
    """The tally of ``events`` (already the rule's, numbered up to the record's number) in
    ``[since, until]``; None above ``TALLY_USERS`` users."""
    inside = sorted((e for e in events if since <= e.at <= until), key=lambda e: (e.at, e.id))
    users: dict[User, tuple[int, Moment]] = {}
    for e in inside:
        count, first = users.get(e.user_id, (0, (e.at, e.id)))
        users[e.user_id] = (count + 1, first)
    if len(users) > TALLY_USERS:
        return None
    latest = tuple((e.at, e.id) for e in inside[-EVIDENCE_CAP:])
    return Tally(since, until, len(inside), users, latest)


@dataclass(frozen=True)
class Slide:
    """A read that slides a kept tally from ``[since0, until0]`` to ``[since1, until1]``:
    the rule's events numbered up to ``seq`` (the tally's) in ``[reach, since1)`` (those
    in ``[since0, until0]`` left, the rest only count in the wide span), in
    ``(until0, until1]`` from ``since1`` on (stored before, later than the tally), and for
    each user with an event that left, its first in ``[since1, until1]``."""

    names: tuple[str, ...]
    seq: int
    reach: datetime
    since0: datetime
    since1: datetime
    until0: datetime
    until1: datetime


@dataclass(frozen=True)
class SlideRows:
    """A ``Slide``'s answer: (moment, user) of each event read, and each user's next."""

    before: tuple[tuple[Moment, User], ...]  # in [reach, since1), in (time, id) order
    entered: tuple[tuple[Moment, User], ...]  # in (until0, until1] from since1, in order
    nexts: dict[User, Moment | None]


def slide_rows(slide: Slide, numbered: Iterable[tuple[EventObserved, int]]) -> SlideRows:
    """``Slide``'s answer from the events and their insert numbers (the reference, and
    SQLite's path)."""
    mine = [e for e, n in numbered if n <= slide.seq and e.name in slide.names]
    before = [e for e in mine if slide.reach <= e.at < slide.since1]
    entered = [e for e in mine if slide.until0 < e.at <= slide.until1 and e.at >= slide.since1]
    left = in_order(((e.at, e.id), e.user_id) for e in before)
    later = (((e.at, e.id), e.user_id) for e in mine if slide.since1 <= e.at <= slide.until1)
    return SlideRows(
        left, in_order(((e.at, e.id), e.user_id) for e in entered), next_firsts(slide, left, later)
    )


def next_firsts(
    slide: Slide, before: Iterable[tuple[Moment, User]], later: Iterable[tuple[Moment, User]]
) -> dict[User, Moment | None]:
    """Each user with an event in ``before`` that left the tally's window, and its first
    row of ``later`` (None: none): one rule whether ``later`` is the window's events or
    one probe per such user."""
    nexts: dict[User, Moment | None] = {
        user: None for moment, user in before if slide.since0 <= moment[0] <= slide.until0
    }
    for moment, user in sorted(later):
        if user in nexts and nexts[user] is None:
            nexts[user] = moment
    return nexts


def in_order(rows: Iterable[tuple[Moment, User]]) -> tuple[tuple[Moment, User], ...]:
    """Rows in (time, id) order: one answer however they were read."""
    return tuple(sorted(rows, key=lambda r: r[0]))


def slid(
    tally: Tally, rows: SlideRows, fresh: Iterable[EventObserved], since: datetime, until: datetime
) -> Tally | None:
    """``tally`` slid to ``[since, until]`` by ``rows`` (its ``Slide``) and ``fresh`` (the
    rule's events numbered after the tally's number, up to the new one); None when the
    result would hold more than ``TALLY_USERS`` users (or the rows do not fit the tally)."""
    users = dict(tally.users)
    count = tally.count
    gone: set[Moment] = set()
    for moment, user in rows.before:
        if not tally.since <= moment[0] <= tally.until:
            continue  # never in the tally: only the wide span counts it
        held = users.get(user)
        if held is None:
            return None
        gone.add(moment)
        count -= 1
        users[user] = (held[0] - 1, held[1])
    for user, (left, first) in list(users.items()):
        if not left:
            del users[user]
        elif first[0] < since:
            following = rows.nexts.get(user)
            if following is None:
                return None
            users[user] = (left, following)
    added = list(rows.entered)
    added += [((e.at, e.id), e.user_id) for e in fresh if since <= e.at <= until]
    for moment, user in added:
        held = users.get(user)
        users[user] = (1, moment) if held is None else (held[0] + 1, min(held[1], moment))
        count += 1
    if len(users) > TALLY_USERS:
        return None
    kept = [m for m in tally.latest if m not in gone]
    latest = tuple(sorted({*kept, *(m for m, _ in added)})[-EVIDENCE_CAP:])
    return Tally(since, until, count, users, latest)
