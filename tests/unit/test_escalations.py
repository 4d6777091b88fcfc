"""Escalations fire on their exact day, move with pauses, and never fire while paused."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from shared.domain.evaluate import evaluate
from shared.domain.facts import Fact

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
    assert silence.resolution == "Successfully Onboarded"
    assert quiet.onboarded_at == day(30)


def _ladder_rungs(facts, now):
    state = evaluate(PLANS["smb"], registration(), facts, now)
    return state, {e.rule_key: e for e in state.escalations if e.ladder == "sla"}


def test_stalled_setup_climbs_the_ladder_open_then_raised_twice() -> None:
    state, rungs = _ladder_rungs(stalled_in_setup(until=70), day(70))
    assert [(k, e.state, e.raised_from) for k, e in rungs.items()] == [
        ("technical_completion_late", "open", None),
        ("success_milestone_late", "raised", 1),
        ("nothing_met", "raised", 2),
    ]
    assert state.ladder.state == "raised"
    assert (state.ladder.level, state.ladder.rule_key, state.ladder.action) == (
        3,
        "nothing_met",
        "at_risk_save_play",
    )
    assert state.ladder.reason == rungs["nothing_met"].reason
    assert (state.ladder.opened_at, state.ladder.raised_at) == (day(14), day(60))


def test_ladder_is_open_at_level_one_before_day_45() -> None:
    state, _ = _ladder_rungs(stalled_in_setup(until=44), day(44))
    assert (state.ladder.state, state.ladder.level, state.ladder.raised_at) == ("open", 1, None)
    assert state.ladder.rule_key == "technical_completion_late"


def test_silence_is_a_signal_outside_the_ladder() -> None:
    state = evaluate(PLANS["smb"], registration(), [*kickoff_done(1), *setup_done(5)], day(20))
    silent = [e for e in state.escalations if e.rule_key == "account_silent"]
    assert silent and silent[0].ladder is None and silent[0].raised_from is None
    assert state.ladder.state == "none"


def test_completing_the_milestone_resolves_its_rung_and_says_why() -> None:
    facts = [*stalled_in_setup(until=60), event(50, "Report Delivered")]
    _, rungs = _ladder_rungs(facts, day(55))
    late = rungs["success_milestone_late"]
    assert (late.state, late.resolved_at, late.resolution) == (
        "resolved",
        day(50),
        "first_report_delivered complete",
    )
    assert rungs["technical_completion_late"].state == "open"


def test_a_rung_after_the_lower_one_resolved_opens_instead_of_raising() -> None:
    facts = [*stalled_in_setup(until=60), *setup_done(20)]
    state, rungs = _ladder_rungs(facts, day(50))
    assert rungs["technical_completion_late"].resolution == "stage setup exited"
    assert rungs["success_milestone_late"].raised_from is None
    assert (state.ladder.state, state.ladder.level, state.ladder.opened_at) == ("open", 2, day(45))


def test_ladder_resolves_when_every_open_rung_resolves() -> None:
    facts = [*stalled_in_setup(until=60), *setup_done(50), event(52, "Report Delivered")]
    state, rungs = _ladder_rungs(facts, day(55))
    assert all(not e.open for e in rungs.values())
    assert (state.ladder.state, state.ladder.level) == ("resolved", 0)
    assert (state.ladder.resolved_at, state.ladder.rule_key) == (day(52), "success_milestone_late")


def _upto(facts: list[Fact], n: float) -> list[Fact]:
    """The facts stored by day ``n`` (a later one would itself be the next due moment)."""
    return [f for f in facts if f.at <= day(n)]


def test_open_pause_holds_every_sla_timer_and_resume_restores_them_shifted() -> None:
    plan = PLANS["smb"]
    facts = stalled_in_setup(until=40)
    paused = evaluate(plan, registration(), [*_upto(facts, 10), pause(5)], day(10))
    # only the customer's TTFV clock still has a moment ahead (breach past day 14)
    assert paused.next_due_at == day(14) + timedelta(microseconds=1)
    assert all(m.due_at is None for m in paused.milestones if m.progress != "complete")
    resumed = evaluate(plan, registration(), [*_upto(facts, 20), pause(5), resume(15)], day(20))
    assert resumed.next_due_at == day(24)  # day-14 SLAs and escalation, 10 days later
    fired = evaluate(plan, registration(), [*facts, pause(5), resume(15)], day(24))
    assert [e.fired_at for e in fired.escalations] == [day(24)]


def test_business_day_rules_skip_weekends_and_holidays_where_the_plan_says_so() -> None:
    smb = PLANS["smb"]
    business = replace(
        smb,
        calendar=replace(smb.calendar, holidays=frozenset({date(2026, 1, 2)})),
        escalations=tuple(
            replace(r, day=10, business_days=True) if r.key == "technical_completion_late" else r
            for r in smb.escalations
        ),
    )
    facts = stalled_in_setup(until=40)
    moment = datetime(2026, 1, 16, 9, 0, tzinfo=UTC)  # 10 working days after Thu Jan 1
    before = evaluate(business, registration(), facts, moment - MINUTE)
    assert not before.escalations
    assert before.next_due_at == moment
    [fired] = evaluate(business, registration(), facts, moment).escalations
    assert fired.fired_at == moment
    assert "by business day 10" in fired.reason
    kickoff = evaluate(business, registration(), [], day(1)).stages[0]
    assert kickoff.due_at == datetime(2026, 1, 9, 9, 0, tzinfo=UTC)  # 5 working days
