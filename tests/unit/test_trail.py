"""An unfinished rolling rule's progress from its trail aggregate equals the event walk."""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.facts import EventObserved
from shared.domain.milestones import EVIDENCE_CAP, rule_progress
from shared.domain.plans import EventRule, Window
from shared.domain.trail import Trail, could_complete, trail_progress, trail_stats

from .factories import ACCOUNT, SIGNED, day

EXAMPLES = 300 if os.environ.get("CI") == "true" else 80

# Ids that sort differently by code point than by a locale's rules (case, digits, dashes).
ids = st.text(alphabet="aB9-_zZ0", min_size=1, max_size=6)
events = st.lists(
    st.builds(
        lambda i, name, user, at: EventObserved(
            i, ACCOUNT, user, name, day(round(at, 3)), {"n": 1}
        ),
        ids,
        st.sampled_from(["Logged In", "Logged In", "Record Created", "Page Viewed"]),
        st.sampled_from([None, *(f"u{n}" for n in range(70))]),
        st.floats(min_value=-2.0, max_value=20.0, allow_nan=False),
    ),
    max_size=240,
    unique_by=lambda e: e.id,
)


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    events,
    st.floats(min_value=0.0, max_value=22.0),
    st.integers(1, 9),
    st.sampled_from([("Logged In",), ("Logged In", "Record Created")]),
)
def test_trail_progress_equals_the_rolling_walk_when_no_window_meets_the_rule(
    found: list[EventObserved], now_day: float, days: int, names: tuple[str, ...]
) -> None:
    now = day(now_day)
    # Unreachable thresholds: the rule is unfinished, as the trail path requires.
    rule = EventRule(names, min_count=10_000, within=Window(days=days, anchor="rolling"))
    matching = sorted(
        (e for e in found if e.name in names and SIGNED <= e.at <= now), key=lambda e: (e.at, e.id)
    )
    walked = rule_progress(rule, matching, SIGNED, SIGNED, now)
    since = max(SIGNED, now - timedelta(days=days))
    stats = trail_stats(Trail(names, since, since, now), found)
    assert not could_complete(stats, rule.min_count, rule.min_distinct_users)
    assert trail_progress(stats, now, days) == walked


def test_more_events_than_the_evidence_cap_keep_each_users_first_and_the_latest() -> None:
    names = ("Logged In",)
    found = [
        EventObserved(f"e{n:03d}", ACCOUNT, f"u{n % 60}", "Logged In", day(1 + n / 100))
        for n in range(150)
    ]
    now = day(3)
    rule = EventRule(names, min_distinct_users=500, within=Window(days=7, anchor="rolling"))
    stats = trail_stats(Trail(names, SIGNED, SIGNED, now), found)
    progress = trail_progress(stats, now, 7)
    assert (stats.count, stats.users) == (150, 60)
    assert len(progress.event_ids) == EVIDENCE_CAP
    assert progress.event_ids[:49] == tuple(f"e{n:03d}" for n in range(49))
    assert progress.event_ids[-1] == "e149"
    assert progress == rule_progress(rule, found, SIGNED, SIGNED, now)


def test_the_wide_span_bounds_every_window_in_it() -> None:
    names = ("Logged In",)
    found = [EventObserved(f"e{n}", ACCOUNT, f"u{n}", "Logged In", day(n * 2.0)) for n in range(10)]
    trail = Trail(names, day(0), day(12), day(18))
    stats = trail_stats(trail, found)
    assert (stats.wide_count, stats.wide_users, stats.count, stats.users) == (10, 10, 4, 4)
    assert could_complete(stats, 1, 10)
    assert not could_complete(stats, 1, 11)
