"""Transitions: each change announced once, with a deterministic id."""

from __future__ import annotations

from shared.domain.evaluate import evaluate
from shared.domain.transitions import (
    RETRACTED,
    EscalationOpened,
    EscalationRaised,
    EscalationResolved,
    FirstValueReached,
    StageEntered,
    StageExited,
    SuccessfullyOnboarded,
    transitions,
)

from .factories import (
    PLANS,
    day,
    event,
    evidence,
    kickoff_done,
    registration,
    setup_done,
    stalled_in_setup,
)

SMB = PLANS["smb"]
HISTORY = [
    *stalled_in_setup(until=60),
    *setup_done(20),
    event(21, "Training Completed"),
    *[event(22, "Logged In", f"u{n:02d}") for n in range(8)],
    *[event(23, "Record Created", f"u{n:02d}") for n in range(5)],
    event(25, "Report Delivered"),
    evidence(30, "sponsor_confirmation"),
]


def _at(n: float):
    return evaluate(SMB, registration(), HISTORY, day(n))


def test_first_projection_announces_everything_so_far() -> None:
    found = transitions(None, _at(40))
    kinds = [type(t) for t in found]
    assert kinds.count(StageEntered) == 4 and kinds.count(StageExited) == 4
    assert kinds.count(FirstValueReached) == 1 and kinds.count(SuccessfullyOnboarded) == 1
    opened = [t for t in found if isinstance(t, EscalationOpened)]
    resolved = [t for t in found if isinstance(t, EscalationResolved)]
    assert [t.rule_key for t in opened] == ["technical_completion_late"]
    assert [t.at for t in resolved] == [day(20)]
    assert [t.at for t in found] == sorted(t.at for t in found)


def test_step_by_step_each_transition_appears_exactly_once() -> None:
    moments = [0.5, 3, 14.5, 20, 22, 25, 30, 40]
    seen: list[str] = []
    previous = None
    for n in moments:
        state = _at(n)
        seen += [t.id for t in transitions(previous, state)]
        previous = state
    assert len(seen) == len(set(seen))
    assert set(seen) == {t.id for t in transitions(None, _at(40))}


def test_no_change_no_transition() -> None:
    state = _at(25)
    assert transitions(state, state) == []
    assert transitions(state, _at(25)) == []


def test_ids_are_deterministic_and_to_dict_is_json_ready() -> None:
    a, b = transitions(None, _at(40)), transitions(None, _at(40))
    assert [t.id for t in a] == [t.id for t in b]
    assert all(len(t.id) == 24 for t in a)
    first_value = next(t for t in a if isinstance(t, FirstValueReached)).to_dict()
    assert first_value["type"] == "FirstValueReached"
    assert first_value["at"] == day(25).isoformat()
    assert first_value["ttfv_days"] == 25.0
    assert first_value["onboarding_id"] == "acme-smb"


def test_stage_exit_precedes_the_next_entry_at_the_same_moment() -> None:
    found = transitions(None, evaluate(SMB, registration(), kickoff_done(1), day(2)))
    assert [(type(t).__name__, getattr(t, "stage", None)) for t in found] == [
        ("StageEntered", "kickoff"),
        ("StageExited", "kickoff"),
        ("StageEntered", "setup"),
    ]


def _walk(facts, moments):
    seen = []
    previous = None
    for n in moments:
        state = evaluate(SMB, registration(), facts, day(n))
        seen += transitions(previous, state)
        previous = state
    return seen


def test_stalled_setup_opens_then_raises_the_ladder_each_once() -> None:
    found = _walk(stalled_in_setup(until=70), [n / 2 for n in range(0, 141)])
    escalations = [t for t in found if isinstance(t, EscalationOpened | EscalationRaised)]
    assert [(type(t).__name__, t.rule_key, t.level, t.at) for t in escalations] == [
        ("EscalationOpened", "technical_completion_late", 1, day(14)),
        ("EscalationRaised", "success_milestone_late", 2, day(45)),
        ("EscalationRaised", "nothing_met", 3, day(60)),
    ]
    raised = [t for t in escalations if isinstance(t, EscalationRaised)]
    assert [t.from_level for t in raised] == [1, 2]
    assert raised[1].to_dict()["type"] == "EscalationRaised"
    assert raised[1].to_dict()["action"] == "at_risk_save_play"
    assert raised[1].reason.startswith("nothing_met: none of")
    again = _walk(stalled_in_setup(until=70), [0, 70])
    assert {t.id for t in again if isinstance(t, EscalationOpened | EscalationRaised)} == {
        t.id for t in escalations
    }


def test_completing_the_milestone_publishes_its_resolution_with_the_reason() -> None:
    facts = [*stalled_in_setup(until=70), *setup_done(30)]
    found = _walk(facts, [10, 20, 29, 31, 40])
    resolved = [t for t in found if isinstance(t, EscalationResolved)]
    assert [(t.rule_key, t.at, t.resolution) for t in resolved] == [
        ("technical_completion_late", day(30), "stage setup exited")
    ]
    assert resolved[0].to_dict()["resolution"] == "stage setup exited"


def test_a_late_fact_that_erases_an_open_escalation_retracts_it_once() -> None:
    """Setup was done on day 10, but its events arrive on day 20, after the day-14
    escalation was announced: the escalation never fell due, and whoever acted on it hears
    so (as a resolution with the retraction reason), once."""
    stalled = [*stalled_in_setup(until=70)]
    announced = evaluate(SMB, registration(), stalled, day(20))
    assert [e.rule_key for e in announced.escalations] == ["technical_completion_late"]
    corrected = evaluate(SMB, registration(), [*stalled, *setup_done(10)], day(20))
    assert corrected.escalations == ()
    found = transitions(announced, corrected)
    retracted = [t for t in found if isinstance(t, EscalationResolved)]
    assert [(t.rule_key, t.fired_at, t.at, t.resolution) for t in retracted] == [
        ("technical_completion_late", day(14), day(20), RETRACTED)
    ]
    assert transitions(corrected, corrected) == []  # announced once


def test_an_escalation_after_the_new_moment_is_not_retracted() -> None:
    later = evaluate(SMB, registration(), stalled_in_setup(until=70), day(20))
    earlier = evaluate(SMB, registration(), stalled_in_setup(until=70), day(10))
    assert not [t for t in transitions(later, earlier) if isinstance(t, EscalationResolved)]
