"""Health score: the article's worked example (47.9, critical) and each status value."""

from __future__ import annotations

from datetime import timedelta

from shared.domain.evaluate import evaluate
from shared.domain.facts import Fact
from shared.domain.health import contribution, score, tier
from shared.domain.plan_loader import load_plan_text

from .factories import SIGNED, day, event, evidence, registration

SIX_MILESTONES = """
key: worked_example
version: 1
title: Health worked example
segment: mid_market
ttfv_target_days: {min: 30, max: 45}
first_value: first_value
first_engagement: first_login
go_live_stage: onboarding
onboarded_stage: onboarding
stages:
  - key: onboarding
    title: Onboarding
    owner: csm
    max_days: 60
    exit:
      all_of: [first_login, technical_setup, data_import, first_training, first_value,
               team_adoption]
    milestones:
      - {key: first_login, title: First login, kind: task, weight: 1, due_day: 3,
         rule: {event: Logged In}}
      - {key: technical_setup, title: Technical setup complete, kind: task, weight: 2,
         due_day: 10, rule: {event: Setup Completed}}
      - {key: data_import, title: Data import validated, kind: task, weight: 2, due_day: 10,
         rule: {event: Import Validated}}
      - {key: first_training, title: First training session, kind: task, weight: 1,
         due_day: 14, manual: true}
      - {key: first_value, title: First value, kind: outcome, weight: 3, due_day: 18,
         rule: {event: Report Delivered, min_count: 3}}
      - {key: team_adoption, title: Team adoption (3+ users), kind: outcome, weight: 3,
         due_day: 20, rule: {event: Active, min_distinct_users: 3}}
"""


def test_worked_example_at_day_21_scores_47_9_critical() -> None:
    plan = load_plan_text(SIX_MILESTONES, "worked_example.yaml")
    facts: list[Fact] = [
        event(1, "Logged In"),  # on time (due day 3)
        event(8, "Setup Completed"),  # on time (due day 10)
        event(14, "Import Validated"),  # late, within 2x SLA (day 20)
        evidence(12, "first_training"),  # on time (due day 14)
        event(16, "Report Delivered"),  # 1 of 3: in progress, overdue at day 21
    ]
    state = evaluate(plan, registration(plan), facts, day(21))
    statuses = {c.milestone_key: c.status for c in state.health.contributions}
    assert statuses == {
        "first_login": "complete_on_time",
        "technical_setup": "complete_on_time",
        "data_import": "complete_late",
        "first_training": "complete_on_time",
        "first_value": "in_progress_overdue",
        "team_adoption": "not_started_overdue",
    }
    assert state.health.points == 5.75
    assert state.health.weights == 12
    assert state.health.score == 47.9
    assert state.health.tier == "critical"


def test_milestones_not_yet_due_do_not_count() -> None:
    plan = load_plan_text(SIX_MILESTONES, "worked_example.yaml")
    state = evaluate(plan, registration(plan), [event(1, "Logged In")], day(5))
    assert [c.milestone_key for c in state.health.contributions] == ["first_login"]
    assert state.health.score == 100.0


def test_nothing_counted_scores_100_healthy() -> None:
    assert score([]) == 100.0
    assert tier(100.0) == "healthy"


def test_tier_boundaries() -> None:
    assert tier(80.0) == "healthy"
    assert tier(79.9) == "at_risk"
    assert tier(60.0) == "at_risk"
    assert tier(59.9) == "critical"


def test_completion_beyond_twice_the_sla_is_worth_a_quarter() -> None:
    due = day(10)
    late = contribution("m", 2, day(25), due, day(20), False, day(30))
    assert late is not None
    assert (late.status, late.value, late.points) == ("complete_very_late", 0.25, 0.5)


def test_complete_before_due_counts_in_full_even_if_not_yet_due() -> None:
    early = contribution("m", 3, day(2), day(10), day(20), False, day(5))
    assert early is not None and early.status == "complete_on_time" and early.points == 3.0


def test_due_moment_itself_is_overdue() -> None:
    due = SIGNED + timedelta(days=10)
    assert contribution("m", 1, None, due, None, False, due - timedelta(seconds=1)) is None
    at_due = contribution("m", 1, None, due, None, True, due)
    assert at_due is not None and at_due.status == "in_progress_overdue"
