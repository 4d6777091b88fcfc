"""The customer's share page model: the plan as agreed, and no room for anything internal."""

from __future__ import annotations

import dataclasses

from services.api.console.share import CustomerPlan, customer_plan
from services.api.schemas import detail
from shared.domain.evaluate import evaluate

from .factories import (
    PLANS,
    amend,
    day,
    event,
    evidence,
    kickoff_done,
    pause,
    registration,
    setup_done,
)

SMB = PLANS["smb"]


def test_the_share_model_carries_the_plan_and_nothing_internal() -> None:
    facts = [
        *kickoff_done(),
        *setup_done(),
        event(6, "Report Delivered"),
        evidence(7, "sponsor_confirmation", by="Dana Secret (VP Ops)"),
        pause(8, reason="internal: budget freeze talk"),
        amend(8.5, "team_adoption", due_day=40),
    ]
    shown = detail(evaluate(SMB, registration(), facts, day(10)), SMB)
    plan = customer_plan(shown, SMB.title)
    internal = {"health", "escalation", "csm", "confirmation", "amendment", "evidence", "pause"}
    fields = {f.name for f in dataclasses.fields(CustomerPlan)}
    assert not [f for f in fields if any(word in f for word in internal)]
    text = repr(plan)
    for secret in ("casey", "Dana Secret", "budget freeze", "scope change", "breach"):
        assert secret not in text
    assert [s.title for s in plan.stages] == [s.title for s in SMB.stages]
    steps = {step.title: step for stage in plan.stages for step in stage.steps}
    assert set(steps) == {m.title for m in shown.milestones}  # amended titles as they stand
    assert (
        steps["First report delivered"].done_at == day(6)
        and steps["First report delivered"].outcome
    )
    assert plan.first_value_at == day(6)
    upcoming = [s.due_at for s in plan.next_steps]  # soonest first, undated (paused) last
    dated = [d for d in upcoming if d is not None]
    assert upcoming[: len(dated)] == sorted(dated)
    assert plan.next_steps and all(s.done_at is None for s in plan.next_steps)
