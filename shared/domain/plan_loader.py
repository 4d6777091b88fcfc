"""Loading plans from YAML, validated field by field with errors a plan author can act on.

Every error names the file, the line, the plan, the field path and the reason, e.g.
``plans/smb.yaml:23: plan 'smb': stages[0].milestones[1].weight: must be 1..3, got 5``.
Unknown keys are errors (a typo must not silently drop a rule). After the shape is right,
``lint`` checks the plan as a whole and its first problem refuses the plan too.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from shared.domain.lint import problems
from shared.domain.plan_yaml import (
    Map,
    PlanError,
    Reader,
    Seq,
    empty_seq,
    field_path,
    parse,
    shown,
)
from shared.domain.plans import (
    Calendar,
    EscalationKind,
    EscalationRule,
    EventRule,
    Milestone,
    Plan,
    PropertyFilter,
    Stage,
    TTFVTarget,
    Window,
)

_OPS = ("eq", "ne", "in", "not_in", "exists", "gt", "gte", "lt", "lte", "contains")
_ANCHORS = ("signature", "go_live", "stage_entry", "rolling")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WHEN_KINDS: dict[str, EscalationKind] = {
    "milestone_missing": "milestone_missing",
    "stage_not_exited": "stage_not_exited",
    "none_complete": "none_complete",
    "silence_days": "silence",
    "champion_quiet_days": "champion_quiet",
}


# -- the plan's parts -----------------------------------------------------------------


def _filters(r: Reader, rule: Map, field: str) -> tuple[PropertyFilter, ...]:
    if "where" not in rule:
        return ()
    where, line, path = r.raw(rule, "where", field)
    if not isinstance(where, Map):
        r.fail(line, path, f"expected a mapping of property: condition, got {shown(where)}")
    found = []
    for prop, condition in where.items():
        prop_path, prop_line = field_path(path, str(prop)), where.lines[prop]
        if not isinstance(prop, str) or not prop:
            r.fail(prop_line, prop_path, "a property name must be text")
        if not isinstance(condition, Map):
            if isinstance(condition, Seq):
                r.fail(prop_line, prop_path, "a list needs an operator, e.g. {in: [a, b]}")
            found.append(PropertyFilter(prop, "eq", condition))
            continue
        if not condition:
            r.fail(prop_line, prop_path, f"expected one of the operators {', '.join(_OPS)}")
        for op, expected in condition.items():
            op_path, op_line = field_path(prop_path, str(op)), condition.lines[op]
            found.append(
                PropertyFilter(prop, _op(r, op, expected, op_line, op_path), _value(expected))
            )
    return tuple(found)


def _op(r: Reader, op: Any, expected: Any, line: int, path: str) -> Any:
    if op not in _OPS:
        r.fail(line, path, f"unknown operator (allowed: {', '.join(_OPS)})")
    if op in ("in", "not_in") and not isinstance(expected, Seq):
        r.fail(line, path, f"'{op}' needs a list, got {shown(expected)}")
    if op == "exists" and not isinstance(expected, bool):
        r.fail(line, path, f"'exists' needs true or false, got {shown(expected)}")
    numeric = isinstance(expected, int | float) and not isinstance(expected, bool)
    if op in ("gt", "gte", "lt", "lte") and not numeric:
        r.fail(line, path, f"'{op}' needs a number, got {shown(expected)}")
    if op in ("eq", "ne", "contains") and isinstance(expected, Map | Seq):
        r.fail(line, path, f"'{op}' needs a single value, got {shown(expected)}")
    return op


def _value(expected: Any) -> Any:
    return tuple(expected) if isinstance(expected, Seq) else expected


def _rule(r: Reader, m: Map, field: str) -> EventRule | None:
    if "rule" not in m:
        return None
    value, line, path = r.raw(m, "rule", field)
    allowed = ("event", "events", "where", "min_count", "min_distinct_users", "within")
    rule = r.mapping(value, line, path, (), allowed)
    if ("event" in rule) == ("events" in rule):
        r.fail(rule.line, field_path(path, "event"), "give exactly one of 'event' or 'events'")
    if "event" in rule:
        events: tuple[str, ...] = (r.text(rule, "event", path),)
    else:
        items = r.seq(rule, "events", path)
        if not items:
            r.fail(items.line, field_path(path, "events"), "needs at least one event name")
        for i, name in enumerate(items):
            if not isinstance(name, str) or not name.strip():
                r.fail(
                    items.lines[i],
                    field_path(field_path(path, "events"), i),
                    "expected an event name",
                )
        events = tuple(items)
    return EventRule(
        events=events,
        where=_filters(r, rule, path),
        min_count=r.integer(rule, "min_count", path, 1, default=1),
        min_distinct_users=r.integer(rule, "min_distinct_users", path, 1, default=1),
        within=_window(r, rule, path),
    )


def _window(r: Reader, rule: Map, field: str) -> Window | None:
    if "within" not in rule:
        return None
    value, line, path = r.raw(rule, "within", field)
    within = r.mapping(value, line, path, ("days",), ("of",))
    anchor, anchor_line, anchor_path = r.raw(within, "of", path, "signature")
    if anchor not in _ANCHORS:
        r.fail(anchor_line, anchor_path, f"expected one of {', '.join(_ANCHORS)}, got {anchor!r}")
    return Window(days=r.integer(within, "days", path, 1), anchor=anchor)


def _milestone(r: Reader, value: Any, line: int, field: str, stage: str) -> Milestone:
    optional = ("description", "manual", "rule", "business_days")
    m = r.mapping(value, line, field, ("key", "title", "kind", "weight", "due_day"), optional)
    kind, kind_line, kind_path = r.raw(m, "kind", field)
    if kind not in ("task", "outcome"):
        r.fail(kind_line, kind_path, f"expected task or outcome, got {kind!r}")
    milestone = Milestone(
        key=r.key(m, "key", field),
        title=r.text(m, "title", field),
        kind=kind,
        weight=r.integer(m, "weight", field, 1, 3),
        due_day=r.integer(m, "due_day", field, 0),
        stage=stage,
        rule=_rule(r, m, field),
        manual=r.flag(m, "manual", field),
        description=r.text(m, "description", field) if "description" in m else "",
        business_days=r.flag(m, "business_days", field),
    )
    if milestone.rule is None and not milestone.manual:
        r.fail(m.line, field, "needs a rule, or manual: true, or both")
    return milestone


def _stage(
    r: Reader, value: Any, line: int, field: str
) -> tuple[Stage, list[tuple[Milestone, int, str]]]:
    required = ("key", "title", "owner", "max_days", "exit")
    s = r.mapping(value, line, field, required, ("business_days", "milestones"))
    key = r.key(s, "key", field)
    exit_value, exit_line, exit_path = r.raw(s, "exit", field)
    gate = r.mapping(exit_value, exit_line, exit_path, (), ("all_of", "any_of"))
    exit_all = r.keys(gate, "all_of", exit_path, empty_seq())
    exit_any = r.keys(gate, "any_of", exit_path, empty_seq())
    if not exit_all and not exit_any:
        r.fail(gate.line, exit_path, "needs all_of and/or any_of with at least one milestone")
    items = r.seq(s, "milestones", field, empty_seq())
    milestones = []
    for i, item in enumerate(items):
        path = field_path(field_path(field, "milestones"), i)
        found = _milestone(r, item, items.lines[i], path, key)
        milestones.append((found, r.line_of(f"{path}.key"), f"{path}.key"))
    stage = Stage(
        key=key,
        title=r.text(s, "title", field),
        owner=r.text(s, "owner", field),
        max_days=r.integer(s, "max_days", field, 1),
        exit_all=exit_all,
        exit_any=exit_any,
        business_days=r.flag(s, "business_days", field),
    )
    return stage, milestones


def _escalation(r: Reader, value: Any, line: int, field: str) -> EscalationRule:
    e = r.mapping(value, line, field, ("key", "when", "level", "action"), ("title",))
    when_value, when_line, path = r.raw(e, "when", field)
    allowed = (*_WHEN_KINDS, "by_day", "business_days")
    when = r.mapping(when_value, when_line, path, (), allowed)
    kinds = [k for k in when if k in _WHEN_KINDS]
    if len(kinds) != 1:
        r.fail(when.line, path, f"give exactly one of {', '.join(_WHEN_KINDS)}")
    kind = _WHEN_KINDS[kinds[0]]
    fields: dict[str, Any] = {}
    if kind in ("silence", "champion_quiet"):
        if "by_day" in when:
            r.fail(when.lines["by_day"], field_path(path, "by_day"), f"not used with {kinds[0]}")
        fields["quiet_days"] = r.integer(when, kinds[0], path, 1)
    else:
        if "by_day" not in when:
            r.fail(when.line, field_path(path, "by_day"), "required field is missing")
        fields["day"] = r.integer(when, "by_day", path, 0)
        if kind == "stage_not_exited":
            fields["stage"] = r.key(when, kinds[0], path)
        elif kind == "milestone_missing":
            fields["milestones"] = (r.key(when, kinds[0], path),)
        else:
            fields["milestones"] = r.keys(when, kinds[0], path)
            if not fields["milestones"]:
                r.fail(
                    when.lines[kinds[0]], field_path(path, kinds[0]), "needs at least one milestone"
                )
    return EscalationRule(
        key=r.key(e, "key", field),
        kind=kind,
        level=r.integer(e, "level", field, 1),
        action=r.text(e, "action", field),
        title=r.text(e, "title", field) if "title" in e else "",
        business_days=r.flag(when, "business_days", path),
        **fields,
    )


def _calendar(r: Reader, root: Map) -> Calendar:
    if "calendar" not in root:
        return Calendar()
    value, line, path = r.raw(root, "calendar", "")
    cal = r.mapping(value, line, path, (), ("weekend", "holidays"))
    weekend = set()
    days = r.seq(cal, "weekend", path) if "weekend" in cal else empty_seq()
    for i, name in enumerate(days):
        short = str(name).lower()[:3]
        if short not in _WEEKDAYS or not isinstance(name, str):
            r.fail(
                days.lines[i],
                f"{path}.weekend[{i}]",
                f"expected a weekday (mon..sun), got {name!r}",
            )
        weekend.add(_WEEKDAYS.index(short))
    holidays = set()
    dates = r.seq(cal, "holidays", path, empty_seq())
    for i, item in enumerate(dates):
        try:
            holidays.add(item if isinstance(item, date) else date.fromisoformat(str(item)))
        except ValueError:
            r.fail(
                dates.lines[i],
                f"{path}.holidays[{i}]",
                f"expected a date (YYYY-MM-DD), got {item!r}",
            )
    return Calendar(
        weekend=frozenset(weekend) if "weekend" in cal else Calendar().weekend,
        holidays=frozenset(holidays),
    )


def _unique(r: Reader, found: list[tuple[str, int, str]], what: str) -> None:
    seen: set[str] = set()
    for key, line, path in found:
        if key in seen:
            r.fail(line, path, f"duplicate {what} key {key!r}")
        seen.add(key)


def _plan(r: Reader, root: Any) -> Plan:
    required = (
        "key",
        "version",
        "title",
        "segment",
        "ttfv_target_days",
        "first_value",
        "first_engagement",
        "go_live_stage",
        "onboarded_stage",
        "stages",
    )
    if isinstance(root, Map) and isinstance(root.get("key"), str):
        r.plan = root["key"]
    root = r.mapping(root, 1, "", required, ("description", "calendar", "escalations"))
    key = r.key(root, "key", "")
    target_value, target_line, target_path = r.raw(root, "ttfv_target_days", "")
    target = r.mapping(target_value, target_line, target_path, ("min", "max"), ())
    low, high = r.number(target, "min", target_path), r.number(target, "max", target_path)
    if high <= 0 or low > high:
        r.fail(target.line, target_path, f"expected 0 <= min <= max and max > 0, got {low}..{high}")
    items = r.seq(root, "stages", "")
    if not items:
        r.fail(items.line, "stages", "needs at least one stage")
    stages, placed = [], []
    for i, item in enumerate(items):
        stage, found = _stage(r, item, items.lines[i], f"stages[{i}]")
        stages.append(stage)
        placed.extend(found)
    milestones = [m for m, _, _ in placed]
    _unique(
        r,
        [(s.key, r.line_of(f"stages[{i}].key"), f"stages[{i}].key") for i, s in enumerate(stages)],
        "stage",
    )
    _unique(r, [(m.key, line, path) for m, line, path in placed], "milestone")
    rules = r.seq(root, "escalations", "", empty_seq())
    escalations = [
        _escalation(r, item, rules.lines[i], f"escalations[{i}]") for i, item in enumerate(rules)
    ]
    _unique(
        r,
        [
            (e.key, r.line_of(f"escalations[{i}].key"), f"escalations[{i}].key")
            for i, e in enumerate(escalations)
        ],
        "escalation",
    )
    plan = Plan(
        key=key,
        version=r.integer(root, "version", "", 1),
        title=r.text(root, "title", ""),
        segment=r.key(root, "segment", ""),
        ttfv_target=TTFVTarget(low, high),
        stages=tuple(stages),
        milestones=tuple(milestones),
        first_value=r.key(root, "first_value", ""),
        onboarded_stage=r.key(root, "onboarded_stage", ""),
        go_live_stage=r.key(root, "go_live_stage", ""),
        first_engagement=r.key(root, "first_engagement", ""),
        escalations=tuple(escalations),
        calendar=_calendar(r, root),
        description=r.text(root, "description", "") if "description" in root else "",
    )
    for problem in problems(plan):
        r.fail(r.line_of(problem.field), problem.field, problem.reason)
    return plan


# -- public API -----------------------------------------------------------------------


def load_plan_text(text: str, source: str = "<plan>") -> Plan:
    """Parse and validate one plan; raises ``PlanError`` naming line, field and reason."""
    reader = Reader(source)
    return _plan(reader, parse(text, reader))


__all__ = ["PlanError", "load_plan_text"]
