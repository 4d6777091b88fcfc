"""Activity summaries: what silence, champion-quiet, single-threaded and weekly-active
signals need from an account's events, in a size that grows with days, not events.

Those signals look only at event times and users: every gap between events (silence), the
champion's gaps and whether others were active within them (champion-quiet), each user's
last event (active users, single-threaded). Every rule that fires on a gap needs at least
one whole day of quiet (``quiet_days >= 1``), and two events of one user on one UTC day are
less than a day apart, so only the first and the last event of each (user, day) can start
or end a gap that matters. ``summarize`` keeps exactly those two moments per (user, day);
``activity_events`` turns the summaries back into a few real (time, user) pairs that give
the signals and escalations the same answer as every event would (``StandIn``: the two
fields signals read, ``Activity``, and nothing else).

A day that straddles ``now`` (some of its events after ``now``) cannot stand in for the
events up to ``now``: the caller replaces it by the summary of that day's events up to
``now`` (``straddles`` tells when).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import NamedTuple, Protocol

from shared.domain.facts import EventObserved

NAME = "firstvalue:activity"  # the name of the stand-in events (only signals read them)


class Activity(Protocol):
    """What signals and escalations read of an event: when, and whose."""

    @property
    def at(self) -> datetime: ...

    @property
    def user_id(self) -> str | None: ...


class StandIn(NamedTuple):
    """A stand-in event of the summaries (``activity_events``): a moment and its user."""

    at: datetime
    user_id: str | None


@dataclass(frozen=True)
class ActivityDay:
    """One user's (or the user-less events') activity on one UTC day."""

    user_id: str | None
    day: date
    first_at: datetime
    last_at: datetime
    events: int = 1


def summarize(events: Iterable[EventObserved]) -> list[ActivityDay]:
    """The (user, day) summaries of these events (each id counted once)."""
    found: dict[tuple[str | None, date], ActivityDay] = {}
    for e in {e.id: e for e in events}.values():
        key = (e.user_id, e.at.date())
        seen = found.get(key)
        found[key] = (
            ActivityDay(e.user_id, key[1], e.at, e.at)
            if seen is None
            else ActivityDay(
                e.user_id,
                key[1],
                min(seen.first_at, e.at),
                max(seen.last_at, e.at),
                seen.events + 1,
            )
        )
    return sorted(found.values(), key=_order)


def _order(d: ActivityDay) -> tuple[date, str, datetime]:
    return d.day, d.user_id or "", d.first_at


def straddles(days: Iterable[ActivityDay], now: datetime) -> bool:
    """Some (user, day) has events on both sides of ``now``."""
    return any(d.first_at <= now < d.last_at for d in days)


def upto(
    days: Iterable[ActivityDay], today: Iterable[ActivityDay], now: datetime
) -> list[ActivityDay]:
    """The summaries of the events up to ``now``: ``days`` for every day before ``now``'s,
    ``today`` (the summary of ``now``'s day up to ``now``, read from the events) for it."""
    return [*(d for d in days if d.day < now.date()), *today]


def activity_events(
    account_id: str, days: Sequence[ActivityDay], champion: str | None, now: datetime
) -> list[StandIn]:
    """Stand-in events, all at or before ``now``, distinct and sorted by ``(at, user)``
    (user-less first), with the same signals as the real ones (``account_id``: whose they
    are; ``StandIn`` carries only what signals read).

    Per day: the first and last event of the user-less events, of the champion, and of
    everyone else (as the latest-active other user, whose own last event is later, so no
    user's last moment moves); and each other user's last event. The account's first and
    last of a day are among those (silence needs only the times; no signal reads a
    user-less event otherwise), so no user-less stand-in repeats a moment. ``days`` must
    not straddle ``now`` (see ``upto``). ``reference_activity_events`` states the same
    plainly, with real ``EventObserved``; this is one pass over the rows (the projector
    makes these for every onboarding it folds).
    """
    spans: dict[tuple[int, date], tuple[datetime, datetime]] = {}  # (group, day): first, last
    last_by_user: dict[str, datetime] = {}
    for d in days:
        first, last, user = d.first_at, d.last_at, d.user_id
        if last > now:
            continue
        if user is None:
            group = 0
        elif user == champion:
            group = 1
        else:
            group = 2
            seen = last_by_user.get(user)
            if seen is None or last > seen:
                last_by_user[user] = last
        key = (group, d.day)
        span = spans.get(key)
        if span is None:
            spans[key] = (first, last)
        elif first < span[0] or last > span[1]:
            spans[key] = (min(first, span[0]), max(last, span[1]))
    latest_other = max(last_by_user, key=lambda u: (last_by_user[u], u), default=None)
    users = (None, champion, latest_other)
    moments = {(users[g], at) for (g, _), span in spans.items() for at in span}
    moments.update(last_by_user.items())
    ordered = sorted((at, user or "", user is not None, user) for user, at in moments)
    return [StandIn(at, user) for at, _, _, user in ordered]


def reference_activity_events(
    account_id: str, days: Sequence[ActivityDay], champion: str | None, now: datetime
) -> list[EventObserved]:
    """Stand-in events, all at or before ``now``, of ``account_id``, distinct and sorted by
    ``(at, id)``, with the same signals as the real ones: the simple statement of what
    ``activity_events`` makes in one pass (a property test holds the two equal).

    Per day: the first and last event of the user-less events, of the champion, and of
    everyone else (as the latest-active other user, whose own last event is later, so no
    user's last moment moves); and each other user's last event. The account's first and
    last of a day are among those (silence needs only the times; no signal reads a
    user-less event otherwise), so no user-less stand-in repeats a moment. ``days`` must
    not straddle ``now`` (see ``upto``).
    """
    seen = [d for d in days if d.last_at <= now]
    others = [d for d in seen if d.user_id is not None and d.user_id != champion]
    last_by_user: dict[str, datetime] = {}
    for d in others:
        assert d.user_id is not None
        last_by_user[d.user_id] = max(d.last_at, last_by_user.get(d.user_id, d.last_at))
    latest_other = max(last_by_user, key=lambda u: (last_by_user[u], u), default=None)
    moments: dict[tuple[str | None, datetime], None] = {}
    for group, user in (
        ([d for d in seen if d.user_id is None], None),
        ([d for d in seen if champion is not None and d.user_id == champion], champion),
        (others, latest_other),
    ):
        for first, last in _by_day(group).values():
            moments[(user, first)] = None
            moments[(user, last)] = None
    for user, last in last_by_user.items():
        moments[(user, last)] = None
    ordered = sorted(moments, key=lambda m: (m[1], m[0] or ""))
    return [  # ids numbered in that order (zero-padded: sorted by (at, id) as they come)
        EventObserved(f"{NAME}:{n:07d}", account_id, user, NAME, at)
        for n, (user, at) in enumerate(ordered)
    ]


Spans = dict[date, tuple[datetime, datetime]]  # per day: the first and the last moment


def compact(days: Iterable[ActivityDay], champion: str | None, today: date) -> list[ActivityDay]:
    """Fewer summaries with the same stand-in events' answers: for every day before
    ``today``, the account's span (user-less), the champion's, and everyone else's as the
    latest-active other user; each other user's last moment; ``today``'s rows as they are.
    About three rows a day whatever the number of users (what the projector reads)."""
    days = list(days)
    before = [d for d in days if d.day < today]
    others = [d for d in before if d.user_id is not None and d.user_id != champion]
    last: dict[str, datetime] = {}
    for d in others:
        assert d.user_id is not None
        last[d.user_id] = max(d.last_at, last.get(d.user_id, d.last_at))
    mine = [d for d in before if champion is not None and d.user_id == champion]
    return compacted(
        champion,
        _by_day(before),
        _by_day(mine),
        _by_day(others),
        last,
        [d for d in days if d.day == today],
    )


def compacted(
    champion: str | None,
    account: Spans,
    champions: Spans,
    others: Spans,
    last: dict[str, datetime],
    today: Iterable[ActivityDay],
) -> list[ActivityDay]:
    """``compact``'s rows from its groups (the database may group them): the spans per day
    of the account, the champion and everyone else, each other user's last moment, and
    ``today``'s rows as they are."""
    latest = max(last, key=lambda u: (last[u], u), default=None)
    rows = [
        ActivityDay(user, day, first, end)
        for spans, user in ((account, None), (champions, champion), (others, latest))
        for day, (first, end) in spans.items()
    ]
    rows += [ActivityDay(u, at.date(), at, at) for u, at in last.items()]
    return sorted([*rows, *today], key=_order)


def _by_day(days: Iterable[ActivityDay]) -> dict[date, tuple[datetime, datetime]]:
    span: dict[date, tuple[datetime, datetime]] = {}
    for d in days:
        first, last = span.get(d.day, (d.first_at, d.last_at))
        span[d.day] = (min(first, d.first_at), max(last, d.last_at))
    return span
