"""The demo history's scenarios: what each one is, and how old an account must be to show it.

Timing comes from the plan (due days, TTFV target, escalation days), so the scenarios keep
their meaning when a plan's numbers change.
"""

from __future__ import annotations

from shared.domain.plans import Plan

SCENARIO_WEIGHTS: dict[str, int] = {
    "fast_first_value": 12,
    "on_track": 16,
    "slow_first_value": 10,
    "severe_breach": 6,
    "stalled_in_setup": 9,
    "silent": 6,
    "champion_quiet": 7,
    "tasks_done_no_value": 9,
    "paused": 7,
    "amended_success_milestone": 5,
    "onboarded_with_sponsor": 13,
}
SCENARIOS: tuple[str, ...] = tuple(SCENARIO_WEIGHTS)

# Scenarios whose sponsor signs off in writing (manual-only milestones get evidence).
SIGNED_OFF = {"fast_first_value", "onboarded_with_sponsor", "amended_success_milestone"}
# Scenarios where only the champion and an admin ever use the product.
THIN = {"tasks_done_no_value", "stalled_in_setup"}


def feasible(plan: Plan, scenario: str, days: int) -> bool:
    return min_age(plan, scenario) <= days - 1


def min_age(plan: Plan, scenario: str) -> float:
    """The youngest an account can be and still show its scenario's outcome."""
    target = plan.ttfv_target.max_days
    fv_due = plan.milestone(plan.first_value).due_day
    last_due = max(m.due_day for m in plan.milestones)
    last_task_due = max((m.due_day for m in plan.milestones if m.kind == "task"), default=1)
    return {
        "fast_first_value": last_due * 0.62 + 3,
        "onboarded_with_sponsor": last_due * 0.95 + 3,
        "on_track": 3.0,
        "slow_first_value": target * 1.25 + 3,
        "severe_breach": target * 2 + 3,
        "stalled_in_setup": stall_day(plan) + 3,
        "silent": quiet_days(plan, "silence") + 12,
        "champion_quiet": fv_due * 0.8 + quiet_days(plan, "champion_quiet") + 6,
        "tasks_done_no_value": last_task_due * 0.9 + 3,
        "paused": fv_due * 0.4 + 6,
        "amended_success_milestone": last_due * 0.9 + 3,
    }[scenario]


def quiet_days(plan: Plan, kind: str) -> int:
    rule = next((r for r in plan.escalations if r.kind == kind and r.quiet_days), None)
    return rule.quiet_days or 14 if rule else 14


def stall_day(plan: Plan) -> int:
    """The day a stuck setup escalates (technical completion missing)."""
    for rule in plan.escalations:
        if rule.kind == "stage_not_exited" and rule.stage == plan.go_live_stage and rule.day:
            return rule.day
    return plan.stage(plan.go_live_stage).max_days + 7
