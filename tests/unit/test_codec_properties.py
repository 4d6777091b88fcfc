"""``codec.state_to_dict`` (orjson's encoder, decoded back) writes exactly the document of
``reference_state_to_dict`` (value by value in Python) for any state ``evaluate`` derives,
over every shipped plan, and falls back to the reference where orjson would write a value
otherwise."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.codec import reference_state_to_dict, state_to_dict
from shared.domain.evaluate import evaluate
from shared.domain.facts import Fact
from shared.domain.state import OnboardingState

from .factories import PLANS, amend, day, event, evidence, pause, registration, resume
from .test_properties import EVENTS, MANUAL, USERS

EXAMPLES = 300 if os.environ.get("CI") == "true" else 80

moment = st.floats(min_value=-2.0, max_value=120.0, allow_nan=False).map(lambda d: round(d, 6))
usage = st.tuples(moment, st.sampled_from(EVENTS), st.sampled_from([*USERS, None])).map(
    lambda t: event(t[0], t[1][0], t[2], **t[1][1])
)
manual = st.one_of(
    st.builds(lambda at, key: evidence(at, key), moment, st.sampled_from(MANUAL)),
    st.builds(pause, moment),
    st.builds(resume, moment),
    st.builds(
        lambda at, due: amend(at, "integration_connected", due_day=due, title="Connected"),
        moment,
        st.integers(1, 60),
    ),
)
histories = st.builds(
    lambda a, b: [*a, *b], st.lists(usage, max_size=80), st.lists(manual, max_size=8)
)


def derived(plan_key: str, facts: list[Fact], now: float) -> OnboardingState:
    return evaluate(PLANS[plan_key], registration(plan_key), facts, day(now))


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.sampled_from(sorted(PLANS)), histories, moment)
def test_state_documents_equal_the_reference(plan_key: str, facts: list[Fact], now: float) -> None:
    state = derived(plan_key, facts, now)
    assert state_to_dict(state) == reference_state_to_dict(state)


@settings(max_examples=EXAMPLES // 4, deadline=None)
@given(st.sampled_from(sorted(PLANS)), histories, moment, st.integers(-12, 12))
def test_moments_not_in_utc_are_written_in_utc_as_the_reference_writes_them(
    plan_key: str, facts: list[Fact], now: float, hours: int
) -> None:
    state = derived(plan_key, facts, now)
    elsewhere = timezone(timedelta(hours=hours)) if hours else UTC
    shifted = replace(
        state,
        as_of=state.as_of.astimezone(elsewhere),
        signed_at=state.signed_at.replace(tzinfo=None),  # naive: taken as local time
    )
    assert state_to_dict(shifted) == reference_state_to_dict(shifted)
    assert state_to_dict(shifted)["as_of"] == state.as_of.isoformat()


def test_values_orjson_writes_otherwise_take_the_reference() -> None:
    state = derived("smb", [event(1, "Logged In", "u01")], 3)
    odd = replace(state, amendments=frozenset())  # type: ignore[arg-type]
    assert state_to_dict(odd) == reference_state_to_dict(odd)
    assert state_to_dict(odd)["amendments"] == []


def test_a_title_that_reads_like_a_local_time_is_kept_as_written() -> None:
    facts = [amend(1, "integration_connected", title="2026-01-01T09:00:00")]
    state = derived("smb", facts, 3)
    assert state_to_dict(state) == reference_state_to_dict(state)
    assert state_to_dict(state)["as_of"] == datetime.isoformat(day(3))
