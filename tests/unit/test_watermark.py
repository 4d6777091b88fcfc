"""Announcing by the watermark: the state seen at W is the exact state with later moments
taken out (equal, for every transition, to evaluating at W), and announcing batch by batch
as the watermark advances ends with exactly what one evaluation of everything announces."""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.evaluate import evaluate
from shared.domain.facts import Fact
from shared.domain.state import OnboardingState
from shared.domain.transitions import EscalationResolved, transitions
from shared.domain.watermark import (
    InputProgress,
    PartitionWatermarks,
    announce,
    effective_watermark,
    is_retraction,
    visible_at,
)

from .factories import PLANS, day, event, registration, stalled_in_setup
from .test_folding_properties import manual, moment, usage

EXAMPLES = 200 if os.environ.get("CI") == "true" else 50


def _ids(state_old: OnboardingState | None, state: OnboardingState) -> list[str]:
    return [t.id for t in transitions(state_old, state)]


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    st.sampled_from(sorted(PLANS)),
    st.lists(usage, max_size=80),
    st.lists(manual, max_size=4),
    st.floats(min_value=0.0, max_value=130.0),  # from signature: the watermark never precedes it
    st.floats(min_value=0.0, max_value=60.0),
)
def test_the_state_seen_at_w_announces_what_evaluating_at_w_does(
    plan_key: str, events: list[Fact], manuals: list[Fact], w_day: float, ahead: float
) -> None:
    plan, reg = PLANS[plan_key], registration(plan_key)
    facts = events + manuals
    w, now = day(w_day), day(w_day + ahead)
    seen = visible_at(evaluate(plan, reg, facts, now), w)
    assert _ids(None, seen) == _ids(None, evaluate(plan, reg, facts, w))


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    st.sampled_from(sorted(PLANS)),
    st.lists(moment.flatmap(lambda at: usage.map(lambda e: (at, e))), max_size=80),
    st.lists(st.integers(0, 80), max_size=6),
    st.floats(min_value=0.0, max_value=30.0),
    st.floats(min_value=0.0, max_value=20.0),
)
def test_announcing_batch_by_batch_by_the_watermark_equals_one_evaluation(
    plan_key: str,
    timed: list[tuple[float, Fact]],
    cuts: list[int],
    lateness: float,
    then: float,
) -> None:
    """Facts read in event-time order (each within the allowed lateness of the latest read),
    cut into batches, each batch projected at a clock far ahead (catching up a history) and
    announced by its watermark: nothing announced is ever retracted, and once the watermark
    reaches the clock the announced ids are exactly those of one evaluation of everything
    from nothing."""
    plan, reg = PLANS[plan_key], registration(plan_key)
    facts = sorted((e for _, e in timed), key=lambda f: f.at)
    cuts = sorted(c for c in cuts if c <= len(facts))
    batches = [facts[a:b] for a, b in zip([0, *cuts], [*cuts, len(facts)], strict=True)]
    now = day(140 + then)
    marks = PartitionWatermarks(timedelta(days=lateness))
    announced: OnboardingState | None = None
    said: list[str] = []
    read: list[Fact] = []
    for batch in batches:
        read += batch
        marks.observe(0, (f.at for f in batch))
        w = marks.watermark([0], now) or reg.at
        floor = announced.as_of if announced is not None else None
        out = announce(announced, evaluate(plan, reg, read, now), w, floor)
        assert not any(is_retraction(t) for t in out.transitions)
        said += [t.id for t in out.transitions]
        announced = out.announced
    final = evaluate(plan, reg, read, now)
    out = announce(announced, final, now)  # idle: the watermark follows the clock
    said += [t.id for t in out.transitions]
    assert out.held_at is None
    assert sorted(said) == sorted(_ids(None, final))
    assert len(said) == len(set(said))


def test_an_escalation_beyond_the_watermark_is_held_and_never_announced_if_undone() -> None:
    plan, reg = PLANS["smb"], registration("smb")
    now = day(120)
    early = stalled_in_setup(until=10)
    state = evaluate(plan, reg, early, now)  # catching up: the clock is far ahead
    assert state.escalations  # at the clock, setup looks missed
    first = announce(None, state, day(10))
    assert not any(t.at > day(10) for t in first.transitions)
    assert first.held_at is not None and first.held_at > day(10)
    fixed = [
        *early,
        event(11, "Integration Connected"),
        event(11.5, "Data Sync Completed", status="success"),
        event(12, "Workflow Run", environment="production"),
    ]
    later = announce(first.announced, evaluate(plan, reg, fixed, now), day(12))
    assert all(t.at <= day(12) for t in later.transitions)
    assert not any(is_retraction(t) for t in later.transitions)


def test_a_late_fact_retracts_at_once_what_was_announced_at_the_clock() -> None:
    """Announced at the clock (the input idle), then a fact later than the allowed lateness
    undoes the escalation, carried by a watermark below its moment: it is retracted now, not
    cut from the view (and so never again compared, leaving it open downstream)."""
    plan, reg = PLANS["smb"], registration("smb")
    now = day(20)
    early = stalled_in_setup(until=10)
    state = evaluate(plan, reg, early, now)
    at_clock = announce(None, state, now)
    assert at_clock.held_at is None
    (opened,) = [e for e in state.escalations if e.rule_key == "technical_completion_late"]
    fixed = [
        *early,
        event(11, "Integration Connected"),
        event(11.5, "Data Sync Completed", status="success"),
        event(12, "Workflow Run", environment="production"),
    ]
    late = announce(at_clock.announced, evaluate(plan, reg, fixed, now), day(12))
    retracted = [t for t in late.transitions if isinstance(t, EscalationResolved)]
    assert all(is_retraction(t) for t in retracted)
    assert [(t.rule_key, t.fired_at) for t in retracted] == [(opened.rule_key, opened.fired_at)]
    assert opened.fired_at > day(12) and late.held_at is None


def test_watermarks_take_the_lowest_partition_and_never_pass_the_clock() -> None:
    marks = PartitionWatermarks(timedelta(seconds=30))
    assert marks.watermark([0, 1], day(5)) is None
    marks.observe(0, [day(3), day(4)])
    marks.observe(1, [day(2)])
    marks.observe(0, [day(1)])  # an older event does not move it back
    assert marks.watermark([0, 1], day(5)) == day(2) - timedelta(seconds=30)
    assert marks.watermark([0], day(5)) == day(4) - timedelta(seconds=30)
    assert marks.watermark([0], day(3)) == day(3)  # skew: never ahead of the clock


def test_an_idle_input_follows_the_clock() -> None:
    idle = timedelta(seconds=30)
    assert effective_watermark(day(1), day(10), day(10) + timedelta(seconds=5), idle) == day(1)
    assert effective_watermark(day(1), day(10), day(10) + idle, idle) == day(10) + idle
    assert effective_watermark(None, None, day(3), idle) == day(3)


def test_an_onboarding_not_heard_from_lately_waits_for_the_input_while_it_is_active() -> None:
    idle = timedelta(seconds=15)
    progress = InputProgress(idle)
    now = day(40)
    assert progress.watermark(now) == now  # nothing heard: idle, the clock
    progress.hear(day(3), now)  # a history streaming in: event time day 3
    progress.hear(day(2), now + timedelta(seconds=1))  # a slower partition's batch
    later = now + timedelta(seconds=10)
    assert progress.watermark(later) == day(2)
    # an account silent in the stream for a while is held by the input's watermark
    quiet = effective_watermark(day(1), now - timedelta(minutes=5), later, idle, day(2))
    assert quiet == day(2)
    assert progress.watermark(now + timedelta(seconds=16)) == now + timedelta(seconds=16)


def test_while_ingest_has_a_backlog_silence_does_not_make_the_input_idle() -> None:
    idle = timedelta(seconds=15)
    now = day(40)
    streaming = InputProgress(idle)  # ingest stops mid-stream
    streaming.hear(day(3), now)
    streaming.hear(day(2), now + timedelta(seconds=1))
    streaming.ingest_lagging(True, now + timedelta(minutes=1))
    assert streaming.watermark(now + timedelta(hours=1)) == day(2)  # where it was last heard
    streaming.ingest_lagging(False, now + timedelta(hours=2))  # read again, caught up
    assert streaming.watermark(now + timedelta(hours=2)) == now + timedelta(hours=2)
    quiet = InputProgress(idle)  # caught up and idle, then ingest stops on new events
    quiet.ingest_lagging(False, now)
    assert quiet.watermark(now + timedelta(seconds=20)) == now + timedelta(seconds=20)
    quiet.ingest_lagging(True, now + timedelta(seconds=30))
    assert quiet.watermark(now + timedelta(hours=1)) == now  # last seen caught up
    unknown = InputProgress(idle)  # started on a backlog, nothing known: the clock
    unknown.ingest_lagging(True, now)
    assert unknown.watermark(now + timedelta(hours=1)) == now + timedelta(hours=1)
