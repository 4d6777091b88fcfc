"""evaluate end to end: gating, status, signals, amendments, and what counts as input."""

from __future__ import annotations

import json
from dataclasses import replace

from shared.domain.codec import state_to_dict
from shared.domain.evaluate import evaluate
from shared.domain.facts import EventObserved
from shared.domain.state import MilestoneDefinition

from .factories import (
    ACCOUNT,
    PLANS,
    SIGNED,
    amend,
    chatter,
    day,
    event,
    evidence,
    kickoff_done,
    pause,
    registration,
    resume,
    setup_done,
)

SMB = PLANS["smb"]


def _state(facts, now: float):
    return evaluate(SMB, registration(), facts, day(now))


def _milestone(state, key: str):
    return next(m for m in state.milestones if m.key == key)


def test_a_fresh_onboarding_is_in_kickoff() -> None:
    state = _state([], 1)
    assert (state.status, state.current_stage, state.onboarded_at) == (
        "onboarding",
        "kickoff",
        None,
    )
    assert [s.state for s in state.stages] == ["active", "pending", "pending", "pending"]
    assert state.stages[0].entered_at == SIGNED
    assert state.health.score == 100.0


def test_early_evidence_counts_when_the_gate_opens() -> None:
    facts = [*setup_done(3), *kickoff_done(6)]  # setup finished before kickoff was
    setup = _state(facts, 10).stages[1]
    assert setup.criterion_met_at == day(3)
    assert setup.entered_at == setup.exited_at == day(6)


def test_any_of_exit_uses_the_first_completion() -> None:
    from shared.domain.stages import criterion_met_at

    stage = replace(SMB.stage("kickoff"), exit_all=(), exit_any=("kickoff_call", "sponsor_named"))
    assert criterion_met_at(stage, {"kickoff_call": day(4), "sponsor_named": day(2)}) == day(2)
    both = replace(stage, exit_all=("success_criteria_agreed",))
    assert criterion_met_at(
        both, {"sponsor_named": day(2), "success_criteria_agreed": day(5)}
    ) == day(5)
    assert criterion_met_at(both, {"sponsor_named": day(2)}) is None


def test_facts_of_other_accounts_and_onboardings_and_the_future_are_ignored() -> None:
    other_account = EventObserved("x1", "globex", "u00", "Kickoff Call Completed", day(1), {})
    other_onboarding = replace(evidence(1, "kickoff_call"), onboarding_id="acme-enterprise")
    future = event(30, "Kickoff Call Completed")
    kickoff = next(m for m in _state([other_account, other_onboarding, future], 10).milestones)
    assert kickoff.progress == "not_started"


def test_tasks_done_without_first_value_is_flagged() -> None:
    tasks = [*kickoff_done(1), *setup_done(5), event(6, "Training Completed")]
    assert _state(tasks, 10).tasks_done_no_value
    assert not _state([*tasks, event(9, "Report Delivered")], 10).tasks_done_no_value
    assert not _state(kickoff_done(1), 10).tasks_done_no_value


def test_completion_rate_counts_milestones_met_within_sla() -> None:
    # integration (day 10, due 7) and sync (day 11, due 10) late; workflow (day 12, due 14) not
    state = _state([*kickoff_done(1), *setup_done(12)], 20)
    assert state.completion_rate == 4 / 12


def test_amendment_changes_the_due_day_and_stays_in_history() -> None:
    change = amend(2, "first_report_delivered", due_day=30, title="First board report")
    state = _state([*kickoff_done(1), change], 10)
    report = next(m for m in state.milestones if m.key == "first_report_delivered")
    assert report.due_at == day(30)
    assert report.title == "First board report"
    assert len(state.amendments) == 1
    applied = state.amendments[0]
    assert (applied.id, applied.author, applied.reason, applied.at) == (
        change.id,
        "casey",
        "scope change",
        day(2),
    )
    assert applied.previous == MilestoneDefinition("First report delivered", "", 14)
    before = _state([*kickoff_done(1), change], 1.5)
    assert next(m for m in before.milestones if m.key == "first_report_delivered").due_at == day(14)


def test_each_amendment_keeps_the_definition_it_replaced() -> None:
    first = amend(2, "first_report_delivered", due_day=30)
    second = amend(5, "first_report_delivered", due_day=21, title="First weekly report")
    state = _state([second, *kickoff_done(1), first], 10)
    assert [a.id for a in state.amendments] == [first.id, second.id]
    assert [a.previous for a in state.amendments] == [
        MilestoneDefinition("First report delivered", "", 14),
        MilestoneDefinition("First report delivered", "", 30),
    ]
    report = next(m for m in state.milestones if m.key == "first_report_delivered")
    assert (report.title, report.due_at) == ("First weekly report", day(21))


def test_pause_status_reports_paused_days() -> None:
    state = _state([pause(2), resume(5), pause(8)], 10)
    assert state.status == "paused"
    assert state.pause.paused_since == day(8)
    assert state.pause.paused_days == 5


def test_repeated_pause_and_stray_resume_are_ignored() -> None:
    once = _state([resume(1), pause(2), pause(3), resume(5)], 10)
    assert once.pause.paused_days == 3 and not once.pause.paused


def test_signals_single_threaded_in_adoption() -> None:
    everything = [
        *kickoff_done(1),
        *setup_done(5),
        event(6, "Training Completed"),
        *[event(7, "Logged In", f"u{n:02d}") for n in range(8)],
        *[event(8, "Record Created", f"u{n:02d}") for n in range(5)],
        event(9, "Report Delivered"),
        *[event(n, "Page Viewed", "u03") for n in range(20, 40, 2)],
    ]
    state = _state(everything, 40)
    assert state.current_stage == "adoption"
    assert state.signals.active_users_14d == 1
    assert state.signals.single_threaded
    assert state.signals.champion_quiet  # u00 silent since day 9 while u03 is active
    assert state.signals.last_event_at == day(38)
    assert state.signals.silent_days == 2


def test_next_due_at_is_the_next_moment_time_alone_changes_state() -> None:
    state = _state([*kickoff_done(1), *chatter(2)], 2)
    assert state.next_due_at == day(7)  # integration_connected falls due
    later = evaluate(SMB, registration(), [*kickoff_done(1), *chatter(2)], state.next_due_at)
    assert later.next_due_at is not None and later.next_due_at > state.next_due_at


def test_a_fact_ahead_of_now_is_the_next_due_moment_and_counts_when_it_comes() -> None:
    facts = [*kickoff_done(1), *chatter(2), event(5 + 20 / 86400, "Integration Connected")]
    before = _state(facts, 5)
    assert before.next_due_at == day(5 + 20 / 86400)  # 20 s ahead: due at its moment
    assert _milestone(before, "integration_connected").progress == "not_started"
    after = _state(facts, 5 + 21 / 86400)
    assert _milestone(after, "integration_connected").progress == "complete"


def test_state_encodes_to_json() -> None:
    facts = [
        *kickoff_done(1),
        *setup_done(5),
        evidence(6, "training_delivered"),
        event(20, "Report Delivered"),
        amend(3, "sponsor_confirmation", due_day=40),
    ]
    data = state_to_dict(_state(facts, 22 + 1 / 3))
    assert data["health"]["score"] == 89.3  # the report (w3) came late: 3 x 0.5 of 14
    text = json.dumps(data)
    assert '"signed_at": "2026-01-01T09:00:00+00:00"' in text
    assert data["ttfv"]["days"] == 20.0 and data["ttfv"]["elapsed_days"] == 20.0
    assert data["account_id"] == ACCOUNT
    assert isinstance(data["milestones"], list)
