"""Escalations fire on their exact day, move with pauses, and never fire while paused."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.domain.evaluate import evaluate

from .factories import (
    PLANS,
    chatter,
    day,
    event,
    evidence,
    kickoff_done,
    pause,
    registration,
    resume,
    setup_done,
    stalled_in_setup,
)

MINUTE = timedelta(minutes=1)


def _fired(plan_key: str, facts, now):
    plan = PLANS[plan_key]
    return {e.rule_key: e for e in evaluate(plan, registration(plan), facts, now).escalations}


@pytest.mark.parametrize(
    ("plan_key", "rule", "due_day"),
    [
        ("smb", "technical_completion_late", 14),
        ("smb", "success_milestone_late", 45),
        ("smb", "nothing_met", 60),
        ("mid_market", "technical_completion_late", 30),
        ("mid_market", "success_milestone_late", 75),
        ("mid_market", "nothing_met", 90),
    ],
)
def test_stalled_setup_escalates_on_the_plan_day(plan_key: str, rule: str, due_day: int) -> None:
    facts = stalled_in_setup(until=120)
    assert rule not in _fired(plan_key, facts, day(due_day) - MINUTE)
    fired = _fired(plan_key, facts, day(due_day) + MINUTE)[rule]
    assert fired.fired_at == fired.due_at == day(due_day)
    assert fired.open
    assert f"day {due_day}" in fired.reason


def test_reason_names_rule_day_due_date_and_what_is_missing() -> None:
    fired = _fired("smb", stalled_in_setup(until=60), day(50))["success_milestone_late"]
    assert fired.reason == (
        "success_milestone_late: first_report_delivered not complete by day 45 (due 2026-02-15)"
    )


def test_escalation_resolves_when_the_condition_stops_holding() -> None:
    facts = [*stalled_in_setup(until=40), *setup_done(20)]
    fired = _fired("smb", facts, day(40))["technical_completion_late"]
    assert fired.fired_at == day(14)
    assert fired.resolved_at == day(20)
    assert not fired.open


def test_condition_met_before_the_day_never_fires() -> None:
    facts = [*kickoff_done(1), *setup_done(10), *chatter(40)]
    assert "technical_completion_late" not in _fired("smb", facts, day(40))


def test_ten_day_pause_moves_every_escalation_and_sla_by_ten_days() -> None:
    plan = PLANS["smb"]
    facts = stalled_in_setup(until=120)
    plain = evaluate(plan, registration(), facts, day(100))
    paused = evaluate(plan, registration(), [*facts, pause(2), resume(12)], day(100))
    shift = timedelta(days=10)
    day_rules = {"technical_completion_late", "success_milestone_late", "nothing_met"}
    before = {e.rule_key: e.fired_at for e in plain.escalations if e.rule_key in day_rules}
    after = {e.rule_key: e.fired_at for e in paused.escalations if e.rule_key in day_rules}
    assert before.keys() == after.keys() == day_rules
    assert all(after[key] - before[key] == shift for key in day_rules)
    for a, b in zip(plain.milestones, paused.milestones, strict=True):
        assert a.due_at is not None and b.due_at is not None
        assert b.due_at - a.due_at == shift
    assert paused.pause.paused_days == 10
    assert paused.ttfv == plain.ttfv


def test_pause_leaves_ttfv_unchanged() -> None:
    plan = PLANS["smb"]
    facts = [*kickoff_done(1), *setup_done(5), event(20, "Report Delivered")]
    plain = evaluate(plan, registration(), facts, day(30))
    paused = evaluate(plan, registration(), [*facts, pause(6), resume(16)], day(30))
    assert plain.ttfv.days == paused.ttfv.days == 20
    assert paused.ttfv.breach == "breach"


def test_open_pause_fires_no_escalation() -> None:
    plan = PLANS["smb"]
    facts = [*stalled_in_setup(until=4), pause(5)]
    state = evaluate(plan, registration(), facts, day(200))
    assert state.escalations == ()
    assert state.status == "paused"
    assert state.pause.paused_since == day(5)
    assert all(m.due_at is None for m in state.milestones if m.progress != "complete")


def test_escalations_already_fired_stay_when_a_pause_starts() -> None:
    facts = [*stalled_in_setup(until=20), pause(20)]
    assert _fired("smb", facts, day(200)).keys() == {"technical_completion_late"}


def test_silence_fires_after_14_quiet_days_and_resolves_at_the_next_event() -> None:
    facts = [*kickoff_done(1), event(10, "Page Viewed"), event(30, "Page Viewed")]
    plan = PLANS["smb"]
    silences = [
        e
        for e in evaluate(plan, registration(), facts, day(50)).escalations
        if e.rule_key == "account_silent"
    ]
    assert [(e.fired_at, e.resolved_at) for e in silences] == [(day(24), day(30)), (day(44), None)]


def test_champion_quiet_fires_only_while_others_stay_active() -> None:
    champion_then_others = [
        *kickoff_done(1),  # by the champion u00
        *[event(n, "Page Viewed", "u01") for n in range(2, 40, 2)],
    ]
    fired = _fired("smb", champion_then_others, day(30))["champion_quiet"]
    assert fired.fired_at == day(15)
    assert fired.open
    alone = [*kickoff_done(1)]
    assert "champion_quiet" not in _fired("smb", alone, day(30))


def test_no_escalation_fires_once_successfully_onboarded() -> None:
    plan = PLANS["smb"]
    everything = [
        *kickoff_done(1),
        *setup_done(5),
        event(6, "Training Completed"),
        *[event(7, "Logged In", f"u{n:02d}") for n in range(8)],
        *[event(8, "Record Created", f"u{n:02d}") for n in range(5)],
        event(9, "Report Delivered"),
    ]
    state = evaluate(
        plan, registration(), [*everything, evidence(10, "sponsor_confirmation")], day(90)
    )
    assert state.status == "onboarded"
    assert state.onboarded_at == day(10)
    assert state.escalations == ()


def test_open_silence_resolves_when_the_onboarding_is_signed_off() -> None:
    plan = PLANS["smb"]
    done = [
        *kickoff_done(1),
        *setup_done(5),
        event(6, "Training Completed"),
        *[event(7, "Logged In", f"u{n:02d}") for n in range(8)],
        *[event(8, "Record Created", f"u{n:02d}") for n in range(5)],
        event(9, "Report Delivered"),
    ]
    quiet = evaluate(plan, registration(), [*done, evidence(30, "sponsor_confirmation")], day(40))
    silence = next(e for e in quiet.escalations if e.rule_key == "account_silent")
    assert (silence.fired_at, silence.resolved_at) == (day(23), day(30))
    assert quiet.onboarded_at == day(30)
