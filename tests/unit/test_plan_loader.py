"""Plan loading: errors name the file, line, plan, field and reason; lint refuses bad plans."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.domain.lint import lint
from shared.domain.plan_loader import PlanError, load_plan_text
from shared.plan_files import default_plans, load_plans

VALID = """\
key: tiny
version: 2
title: Tiny plan
segment: smb
ttfv_target_days: {min: 7, max: 14}
first_value: report_sent
first_engagement: kickoff_call
go_live_stage: setup
onboarded_stage: value
calendar: {weekend: [sat, sun], holidays: [2026-12-25]}
stages:
  - key: setup
    title: Setup
    owner: implementation
    max_days: 10
    business_days: true
    exit: {all_of: [kickoff_call, connected]}
    milestones:
      - key: kickoff_call
        title: Kickoff call
        kind: task
        weight: 1
        due_day: 3
        manual: true
      - key: connected
        title: Connected
        kind: task
        weight: 2
        due_day: 7
        rule:
          event: Integration Connected
          where: {status: success, rows: {gte: 100}, plan: {in: [a, b]}}
  - key: value
    title: Value
    owner: csm
    max_days: 20
    exit: {any_of: [report_sent]}
    milestones:
      - key: report_sent
        title: Report sent
        kind: outcome
        weight: 3
        due_day: 14
        rule:
          events: [Report Delivered, Report Sent]
          min_distinct_users: 2
          within: {days: 21, of: go_live}
escalations:
  - key: setup_late
    when: {stage_not_exited: setup, by_day: 14}
    level: 1
    action: flag_cs_manager
  - key: quiet
    when: {silence_days: 14}
    level: 1
    action: check_in
"""


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _error(text: str) -> PlanError:
    with pytest.raises(PlanError) as caught:
        load_plan_text(text, "plans/tiny.yaml")
    return caught.value


def test_valid_plan_loads_with_every_field() -> None:
    plan = load_plan_text(VALID, "plans/tiny.yaml")
    assert (plan.key, plan.version, plan.go_live_stage) == ("tiny", 2, "setup")
    connected = plan.milestone("connected")
    assert connected.stage == "setup" and connected.rule is not None
    assert [(f.property, f.op, f.value) for f in connected.rule.where] == [
        ("status", "eq", "success"),
        ("rows", "gte", 100),
        ("plan", "in", ("a", "b")),
    ]
    report = plan.milestone("report_sent").rule
    assert report is not None and report.within is not None
    assert report.events == ("Report Delivered", "Report Sent")
    assert report.within.anchor == "go_live"
    assert plan.stage("value").exit_any == ("report_sent",)
    assert plan.calendar.weekend == {5, 6} and len(plan.calendar.holidays) == 1
    assert plan.escalations[0].stage == "setup" and plan.escalations[1].quiet_days == 14


def test_bad_weight_names_line_and_field() -> None:
    text = VALID.replace("weight: 2\n        due_day: 7", "weight: 5\n        due_day: 7")
    error = _error(text)
    assert error.line == _line(text, "weight: 5")
    assert error.field == "stages[0].milestones[1].weight"
    assert "1..3" in error.reason
    assert str(error).startswith(f"plans/tiny.yaml:{error.line}: plan 'tiny': stages[0]")


def test_unknown_key_is_an_error() -> None:
    text = VALID.replace("        due_day: 14\n", "        due_day: 14\n        colour: red\n")
    error = _error(text)
    assert (error.line, error.field) == (_line(text, "colour"), "stages[1].milestones[0].colour")
    assert "unknown key" in error.reason


def test_unknown_milestone_in_exit_is_an_error() -> None:
    text = VALID.replace("all_of: [kickoff_call, connected]", "all_of: [kickoff_call, conected]")
    error = _error(text)
    assert (error.line, error.field) == (_line(text, "conected"), "stages[0].exit.all_of")
    assert "unknown milestone 'conected'" in error.reason


def test_exit_naming_a_later_stage_milestone_is_an_error() -> None:
    text = VALID.replace("all_of: [kickoff_call, connected]", "all_of: [report_sent]")
    assert "later stage" in _error(text).reason


def test_milestone_without_rule_or_manual_is_an_error() -> None:
    text = VALID.replace("        due_day: 3\n        manual: true\n", "        due_day: 3\n")
    error = _error(text)
    assert error.field == "stages[0].milestones[0]"
    assert error.line == _line(text, "key: kickoff_call")
    assert "rule" in error.reason and "manual" in error.reason


def test_bad_yaml_syntax_names_the_line() -> None:
    text = VALID.replace("    max_days: 20\n", "    max_days: [20\n")
    error = _error(text)
    assert error.field == "(yaml)"
    assert error.line >= _line(text, "max_days: [20")
    assert error.plan == "tiny"


def test_duplicate_yaml_key_is_an_error() -> None:
    text = VALID.replace("version: 2\n", "version: 2\nversion: 3\n")
    error = _error(text)
    assert (error.line, error.field) == (3, "version")


def test_missing_required_field_names_it() -> None:
    error = _error(VALID.replace("first_value: report_sent\n", ""))
    assert (error.field, error.line) == ("first_value", 1)


def test_unknown_filter_operator_is_an_error() -> None:
    text = VALID.replace("rows: {gte: 100}", "rows: {atleast: 100}")
    error = _error(text)
    assert error.field == "stages[0].milestones[1].rule.where.rows.atleast"
    assert error.line == _line(text, "atleast")


def test_duplicate_milestone_key_is_an_error() -> None:
    text = VALID.replace("key: report_sent", "key: connected")
    assert "duplicate milestone key 'connected'" in _error(text).reason


def test_unknown_escalation_target_is_an_error() -> None:
    text = VALID.replace("stage_not_exited: setup", "stage_not_exited: set_up")
    error = _error(text)
    assert (error.field, error.line) == ("escalations[0].when", _line(text, "set_up"))


def test_lint_refuses_an_onboarded_gate_of_tasks_only() -> None:
    text = VALID.replace("kind: outcome", "kind: task")
    error = _error(text)
    assert "a sign-off on vendor tasks alone is not a sign-off" in error.reason
    assert (
        "first value must be a customer-observable outcome"
        in _error(
            VALID.replace("exit: {any_of: [report_sent]}", "exit: {all_of: [report_sent]}").replace(
                "first_value: report_sent", "first_value: connected"
            )
        ).reason
    )


def test_lint_refuses_a_go_live_window_inside_the_go_live_stage() -> None:
    text = VALID.replace("go_live_stage: setup", "go_live_stage: value")
    error = _error(text)
    assert error.field == "stages[1].milestones[0].rule.within"
    assert error.line == _line(text, "within:")


def test_lint_on_a_plan_value_reports_every_problem() -> None:
    from dataclasses import replace

    plan = load_plan_text(VALID, "plans/tiny.yaml")
    broken = replace(plan, first_value="nope", onboarded_stage="gone")
    assert lint(broken) == [
        "first_value: unknown milestone 'nope'",
        "onboarded_stage: unknown stage 'gone'",
    ]
    assert lint(plan) == []


def test_default_plans_load_and_pass_lint() -> None:
    plans = default_plans()
    assert set(plans) == {"smb", "mid_market", "enterprise"}
    for plan in plans.values():
        assert lint(plan) == []
        assert plan.first_value == "first_report_delivered"
        assert len(plan.milestones) == 12


def test_load_plans_reads_a_folder(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(VALID)
    (tmp_path / "other.yml").write_text(VALID.replace("key: tiny", "key: other"))
    assert set(load_plans([tmp_path])) == {"tiny", "other"}
