"""An unfinished rolling rule's progress from its trail aggregate equals the event walk."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.facts import EventObserved
from shared.domain.milestones import EVIDENCE_CAP, rule_progress
from shared.domain.plans import EventRule, Window
from shared.domain.trail import (
    Slide,
    Trail,
    could_complete,
    slid,
    slide_rows,
    tally_of,
    trail_progress,
    trail_stats,
)

from .factories import ACCOUNT, SIGNED, day

EXAMPLES = 300 if os.environ.get("CI") == "true" else 80

# Ids that sort differently by code point than by a locale's rules (case, digits, dashes).
ids = st.text(alphabet="aB9-_zZ0", min_size=1, max_size=6)


def one_event(users: int) -> st.SearchStrategy[EventObserved]:
    """An event of one of ``users`` users (or none), at a time with ties likely."""
    return st.builds(
        lambda i, name, user, at: EventObserved(
            i, ACCOUNT, user, name, day(round(at, 3)), {"n": 1}
        ),
        ids,
        st.sampled_from(["Logged In", "Logged In", "Record Created", "Page Viewed"]),
        st.sampled_from([None, *(f"u{n}" for n in range(users))]),
        st.floats(min_value=-2.0, max_value=20.0, allow_nan=False),
    )


events = st.lists(
    one_event(70),
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


numbered_events = st.lists(
    st.tuples(one_event(12), st.integers(1, 6)),  # an event and its insert number
    max_size=200,
    unique_by=lambda pair: pair[0].id,
)


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    numbered_events,
    st.floats(min_value=0.0, max_value=18.0),
    st.floats(min_value=0.0, max_value=3.0),
    st.floats(min_value=0.0, max_value=1.0),
    st.integers(1, 9),
    st.integers(0, 6),
    st.integers(0, 6),
    st.sampled_from([("Logged In",), ("Logged In", "Record Created")]),
)
def test_a_slid_tally_equals_the_tally_of_the_window_it_slid_to(
    found: list[tuple[EventObserved, int]],
    then_day: float,
    step: float,
    back: float,
    days: int,
    seq0: int,
    more: int,
    names: tuple[str, ...],
) -> None:
    """Kept at ``then`` with the events numbered up to ``seq0``, slid by its rows and the
    events numbered after it: the same tally, and trail answer, as summing the new window."""
    span = timedelta(days=days)
    then, now = day(then_day), day(then_day + step)
    seq1 = seq0 + more
    since0, since1 = max(SIGNED, then - span), max(SIGNED, now - span)
    rule_events = [(e, n) for e, n in found if e.name in names]
    kept = tally_of([e for e, n in rule_events if n <= seq0], since0, then)
    if kept is None:
        return
    fresh = [e for e, n in rule_events if seq0 < n <= seq1]
    wide = max(SIGNED, min(since0, since1 - timedelta(days=back)))
    slide = Slide(names, seq0, min(wide, since0), since0, since1, then, now)
    rows = slide_rows(slide, found)
    moved = slid(kept, rows, fresh, since1, now)
    upto = [e for e, n in rule_events if n <= seq1]
    assert moved == tally_of(upto, since1, now)
    if moved is None:
        return
    beyond = [r for r in rows.before if r[0][0] >= wide]
    beyond += [((e.at, e.id), e.user_id) for e in fresh if wide <= e.at < since1]
    expected = trail_stats(Trail(names, wide, since1, now), upto)
    assert moved.stats(beyond) == replace(expected, tally=None)
    assert expected.tally == moved


def test_a_user_whose_first_event_left_takes_its_next_one() -> None:
    names = ("Logged In",)
    found = [
        (EventObserved("a1", ACCOUNT, "u1", "Logged In", day(1)), 1),
        (EventObserved("a2", ACCOUNT, "u1", "Logged In", day(3)), 1),
        (EventObserved("b1", ACCOUNT, "u2", "Logged In", day(2)), 1),
        (EventObserved("b2", ACCOUNT, "u2", "Logged In", day(6)), 2),
    ]
    kept = tally_of([e for e, n in found if n <= 1], SIGNED, day(4))
    assert kept is not None and kept.users["u1"] == (2, (day(1), "a1"))
    since1 = day(2.5)
    slide = Slide(names, 1, SIGNED, SIGNED, since1, day(4), day(6))
    rows = slide_rows(slide, found)
    assert rows.nexts == {"u1": (day(3), "a2"), "u2": None}
    moved = slid(kept, rows, [found[3][0]], since1, day(6))
    assert moved is not None
    assert moved.users == {"u1": (1, (day(3), "a2")), "u2": (1, (day(6), "b2"))}
    assert moved == tally_of([e for e, _ in found], since1, day(6))
