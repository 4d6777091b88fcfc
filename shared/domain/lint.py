"""Plan lint: cross-references and rules of good practice that refuse a plan outright.

The loader checks each field's shape; this checks the plan as a whole, on the ``Plan``
value itself, so plans built in code get the same scrutiny. Each problem names the field
path (as in the YAML) so the loader can point at the line.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.domain.plans import Plan


@dataclass(frozen=True)
class Problem:
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


def _references(plan: Plan) -> list[Problem]:
    milestones = {m.key for m in plan.milestones}
    order = {s.key: i for i, s in enumerate(plan.stages)}
    found = []
    for name in ("first_value", "first_engagement"):
        if getattr(plan, name) not in milestones:
            found.append(Problem(name, f"unknown milestone {getattr(plan, name)!r}"))
    for name in ("go_live_stage", "onboarded_stage"):
        if getattr(plan, name) not in order:
            found.append(Problem(name, f"unknown stage {getattr(plan, name)!r}"))
    if order.get(plan.go_live_stage, -1) > order.get(plan.onboarded_stage, len(order)):
        found.append(Problem("go_live_stage", "go-live must not come after the onboarded stage"))
    stage_of = {m.key: order.get(m.stage, len(order)) for m in plan.milestones}
    for i, stage in enumerate(plan.stages):
        for which, keys in (("all_of", stage.exit_all), ("any_of", stage.exit_any)):
            for key in keys:
                field = f"stages[{i}].exit.{which}"
                if key not in milestones:
                    found.append(Problem(field, f"unknown milestone {key!r}"))
                elif stage_of[key] > i:
                    found.append(Problem(field, f"{key!r} belongs to a later stage"))
    for i, rule in enumerate(plan.escalations):
        field = f"escalations[{i}].when"
        for key in rule.milestones:
            if key not in milestones:
                found.append(Problem(field, f"unknown milestone {key!r}"))
        if rule.stage is not None and rule.stage not in order:
            found.append(Problem(field, f"unknown stage {rule.stage!r}"))
    return found


def _field_of(plan: Plan, key: str) -> str:
    """The YAML path of milestone ``key`` (stages[i].milestones[j])."""
    for i, stage in enumerate(plan.stages):
        inside = [m.key for m in plan.milestones if m.stage == stage.key]
        if key in inside:
            return f"stages[{i}].milestones[{inside.index(key)}]"
    return f"milestones.{key}"


def _practice(plan: Plan) -> list[Problem]:
    order = {s.key: i for i, s in enumerate(plan.stages)}
    kinds = {m.key: m.kind for m in plan.milestones}
    found = []
    onboarded = order.get(plan.onboarded_stage)
    if onboarded is not None:
        gate = plan.stages[: onboarded + 1]
        requires_outcome = any(
            any(kinds.get(k) == "outcome" for k in s.exit_all)
            or (s.exit_any and all(kinds.get(k) == "outcome" for k in s.exit_any))
            for s in gate
        )
        if not requires_outcome:
            found.append(
                Problem(
                    f"stages[{onboarded}].exit",
                    "the onboarded gate requires no outcome milestone: a sign-off on vendor tasks "
                    "alone is not a sign-off",
                )
            )
    if kinds.get(plan.first_value) == "task":
        found.append(
            Problem(
                "first_value",
                f"{plan.first_value!r} is a task; "
                "first value must be a customer-observable outcome",
            )
        )
    go_live = order.get(plan.go_live_stage)
    for m in plan.milestones:
        window = m.rule.within if m.rule is not None else None
        if window is None or window.anchor != "go_live" or go_live is None:
            continue
        if order.get(m.stage, -1) <= go_live:
            found.append(
                Problem(
                    f"{_field_of(plan, m.key)}.rule.within",
                    "a window anchored to go-live cannot belong to the go-live stage or an earlier "
                    "one: go-live needs it complete first",
                )
            )
    return found


def problems(plan: Plan) -> list[Problem]:
    """Everything that refuses ``plan``, with field paths."""
    return _references(plan) + _practice(plan)


def lint(plan: Plan) -> list[str]:
    """Problems that refuse ``plan``, as ``"field: reason"`` sentences (empty = fine)."""
    return [str(p) for p in problems(plan)]
