"""``activity.activity_events`` (one pass, light ``StandIn`` pairs) gives the very moments and
users of ``reference_activity_events`` (the plain statement, real events), in the same
order, for any summaries: as stored, compacted, with and without a champion, cut at any
``now``."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.activity import (
    StandIn,
    activity_events,
    compact,
    reference_activity_events,
    summarize,
    upto,
)
from shared.domain.facts import EventObserved

from .factories import ACCOUNT, day, event

EXAMPLES = 500 if os.environ.get("CI") == "true" else 150
USERS = ["u00", "u01", "u02", "u03", "u04", ""]

moment = st.floats(min_value=0.0, max_value=40.0, allow_nan=False).map(lambda d: round(d, 3))
usage = st.builds(
    lambda at, user: event(at, "Page Viewed", user), moment, st.sampled_from([*USERS, None])
)


def pairs(events: list[EventObserved]) -> list[tuple[object, str | None]]:
    return [(e.at, e.user_id) for e in events]


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    st.lists(usage, max_size=60),
    st.sampled_from(["u00", "u03", "", None]),
    moment,
    st.booleans(),
)
def test_stand_ins_equal_the_reference(
    events: list[EventObserved], champion: str | None, cut: float, compacted: bool
) -> None:
    now = day(cut)
    stored = summarize(e for e in events if e.at.date() <= now.date())
    if compacted:
        stored = compact(stored, champion, now.date())
    today = summarize(e for e in events if e.at.date() == now.date() and e.at <= now)
    days = upto(stored, today, now)
    fast = activity_events(ACCOUNT, days, champion, now)
    reference = reference_activity_events(ACCOUNT, days, champion, now)
    assert [(s.at, s.user_id) for s in fast] == pairs(reference)
    assert all(isinstance(s, StandIn) and s.at <= now for s in fast)


def test_stand_ins_of_a_day_are_its_spans_and_each_users_last_moment() -> None:
    events = [
        event(1.1, "Page Viewed", "u00"),
        event(1.2, "Page Viewed", "u01"),
        event(1.3, "Page Viewed", None),
        event(1.4, "Page Viewed", "u02"),
        event(1.5, "Page Viewed", "u01"),
        event(3.0, "Page Viewed", "u01"),  # after now: not counted
    ]
    now = day(2)
    found = activity_events(ACCOUNT, summarize(events[:5]), "u00", now)
    assert found == [
        StandIn(day(1.1), "u00"),
        StandIn(day(1.2), "u01"),  # the others' first, as the latest-active other (u01)
        StandIn(day(1.3), None),
        StandIn(day(1.4), "u02"),  # u02's last moment
        StandIn(day(1.5), "u01"),  # the others' last, and u01's
    ]
