"""Property tests: evaluate is a pure function of the set of facts up to ``now``."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.evaluate import evaluate
from shared.domain.facts import Fact

from .factories import PLANS, day, event, evidence, pause, registration, resume

SMB = PLANS["smb"]
USERS = [f"u{n:02d}" for n in range(10)]
EVENTS = [
    ("Kickoff Call Completed", {}),
    ("Success Criteria Agreed", {}),
    ("Executive Sponsor Named", {}),
    ("Integration Connected", {}),
    ("Data Sync Completed", {"status": "success"}),
    ("Data Sync Completed", {"status": "failed"}),
    ("Workflow Run", {"environment": "production"}),
    ("Workflow Run", {"environment": "sandbox"}),
    ("Training Completed", {}),
    ("Logged In", {}),
    ("Logged In", {}),
    ("Logged In", {}),
    ("Record Created", {}),
    ("Record Created", {}),
    ("Report Delivered", {}),
    ("Page Viewed", {}),
]
MANUAL = [
    "kickoff_call",
    "success_criteria_agreed",
    "sponsor_named",
    "training_delivered",
    "sponsor_confirmation",
]

days = st.floats(min_value=0.0, max_value=90.0, allow_nan=False).map(lambda d: round(d, 3))
usage = st.tuples(days, st.sampled_from(EVENTS), st.sampled_from(USERS)).map(
    lambda t: event(t[0], t[1][0], t[2], **t[1][1])
)
confirmations = st.tuples(days, st.sampled_from(MANUAL)).map(lambda t: evidence(t[0], t[1]))


@st.composite
def pauses(draw: st.DrawFn) -> list[Fact]:
    found: list[Fact] = []
    for start in sorted(draw(st.lists(days, max_size=2, unique=True))):
        found.append(pause(start))
        if draw(st.booleans()):
            found.append(resume(start + draw(st.floats(min_value=0.5, max_value=15))))
    return found


histories = st.builds(
    lambda a, b, c: [*a, *b, *c],
    st.lists(usage, max_size=70),
    st.lists(confirmations, max_size=4),
    pauses(),
)
moments = st.floats(min_value=0.0, max_value=120.0, allow_nan=False).map(day)
FAST = settings(max_examples=60, deadline=None)


def _evaluate(facts: list[Fact], now):
    return evaluate(SMB, registration(), facts, now)


@FAST
@given(histories, moments, st.randoms(use_true_random=False))
def test_evaluate_is_deterministic_and_independent_of_fact_order(
    facts: list[Fact], now, rnd: random.Random
) -> None:
    shuffled = list(facts)
    rnd.shuffle(shuffled)
    assert _evaluate(facts, now) == _evaluate(shuffled, now)


@FAST
@given(histories, moments)
def test_duplicated_facts_change_nothing(facts: list[Fact], now) -> None:
    assert _evaluate(facts, now) == _evaluate(facts + facts[::2], now)


@FAST
@given(histories, st.lists(moments, min_size=1, max_size=4))
def test_only_facts_up_to_now_count(facts: list[Fact], nows: list) -> None:
    """Later facts change nothing but the next due moment: the first of them is one."""
    for now in nows:
        state = _evaluate(facts, now)
        past = _evaluate([f for f in facts if f.at <= now], now)
        assert replace(state, next_due_at=past.next_due_at) == past
        ahead = min((f.at for f in facts if f.at > now), default=None)
        assert state.next_due_at == min(
            (m for m in (past.next_due_at, ahead) if m is not None), default=None
        )


@FAST
@given(
    st.lists(usage, max_size=70),
    st.lists(confirmations, max_size=4),
    st.floats(min_value=0.5, max_value=30),
)
def test_a_pause_before_every_sla_moment_shifts_them_all_and_not_ttfv(
    events: list[Fact], confirmed: list[Fact], length: float
) -> None:
    facts = [*events, *confirmed]
    shift = timedelta(days=length)
    now = day(200)
    plain = _evaluate(facts, now)
    paused = _evaluate([*facts, pause(1), resume(1 + length)], now)
    for a, b in zip(plain.milestones, paused.milestones, strict=True):
        assert a.due_at is not None and b.due_at is not None
        assert b.due_at - a.due_at == shift
    signed = registration().at
    day_rules = {r.key: r.day for r in SMB.escalations if r.day is not None}
    for fired in paused.escalations:
        if fired.rule_key in day_rules:
            assert fired.due_at == signed + timedelta(days=day_rules[fired.rule_key]) + shift
    assert paused.ttfv == plain.ttfv
