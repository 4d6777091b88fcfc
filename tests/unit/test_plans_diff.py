"""``plans_diff.compare``: what CS ops would notice between two evaluations of one onboarding."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from firstvalue.plans_diff import DiffReport, compare
from shared.domain.evaluate import evaluate
from shared.domain.facts import OnboardingRegistered
from shared.domain.state import OnboardingState
from shared.plan_files import default_plans

SIGNED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PLANS = default_plans()


def stalled(days: float) -> OnboardingState:
    registration = OnboardingRegistered("reg:acme", "onb-acme", "acme", "smb", SIGNED)
    return evaluate(PLANS["smb"], registration, [], SIGNED + timedelta(days=days))


def test_the_same_state_is_no_change() -> None:
    assert compare(stalled(20), stalled(20)) is None


def test_a_target_band_moving_alone_changes_nobody() -> None:
    state = stalled(3)
    tighter = replace(state, ttfv=replace(state.ttfv, target_max_days=10.0))
    assert compare(state, tighter) is None


def test_a_breach_change_is_a_ttfv_change_with_both_labels() -> None:
    state = stalled(12)
    assert state.ttfv.breach == "none"
    breached = replace(state, ttfv=replace(state.ttfv, breach="breach", target_max_days=10.0))
    diff = compare(state, breached)
    assert diff is not None and diff.changed == ("ttfv",)
    assert diff.old_ttfv == "open 12.0d none [7–14]"
    assert diff.new_ttfv == "open 12.0d breach [7–10]"


def test_escalations_fired_under_one_plan_only_are_listed_as_added_or_removed() -> None:
    before, after = stalled(10), stalled(20)  # the day-14 setup escalation fires in between
    assert not before.escalations and after.escalations
    diff = compare(before, replace(after, as_of=before.as_of))
    assert diff is not None and "escalations" in diff.changed
    assert diff.escalations_removed == ()
    rule = after.escalations[0]
    assert f"{rule.rule_key} L{rule.level} {rule.fired_at.date().isoformat()} open" in (
        diff.escalations_added
    )


def test_the_report_counts_each_kind_and_the_unchanged() -> None:
    report = DiffReport()
    state = stalled(20)
    report.add(None)
    report.add(compare(state, replace(state, current_stage="adoption", escalations=())))
    assert report.evaluated == 2
    assert report.counts() == {"changed": 1, "stage": 1, "ttfv": 0, "escalations": 1}
    assert report.to_dict()["onboardings"][0]["stage"]["new"] == "adoption (onboarding)"
