"""Event rules: does a usage event count towards a milestone?

One function decides this for the ingest matcher and the evaluator alike. A filter that
cannot be applied (a missing property, a non-numeric value under ``gt``) is simply no match,
never an exception: product events are messy and must not stop evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from shared.domain.facts import EventObserved
from shared.domain.plans import EventRule, Plan, PropertyFilter

_MISSING = object()
_SYMBOLS = {
    "eq": "=",
    "ne": "≠",
    "in": "in",
    "not_in": "not in",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
    "contains": "contains",
}


def lookup(properties: Mapping[str, Any], path: str) -> Any:
    """The value at dot ``path`` in ``properties``, or ``_MISSING``."""
    value: Any = properties
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return None if math.isnan(number) else number


def _compare(op: str, actual: Any, expected: Any) -> bool:
    left, right = _number(actual), _number(expected)
    if left is None or right is None:
        return False
    if op == "gt":
        return left > right
    if op == "gte":
        return left >= right
    if op == "lt":
        return left < right
    return left <= right


def _in(actual: Any, options: Any) -> bool:
    try:
        return actual in options
    except TypeError:  # an unhashable property value against a set-like option list
        return False


def holds(condition: PropertyFilter, properties: Mapping[str, Any]) -> bool:
    """Whether one property filter holds for an event's properties."""
    actual = lookup(properties, condition.property)
    op, expected = condition.op, condition.value
    if op == "exists":
        present = actual is not _MISSING and actual is not None
        return present == bool(expected)
    if actual is _MISSING:
        return op in ("ne", "not_in")
    if op == "eq":
        return bool(actual == expected)
    if op == "ne":
        return bool(actual != expected)
    if op == "in":
        return _in(actual, expected)
    if op == "not_in":
        return not _in(actual, expected)
    if op == "contains":
        if isinstance(actual, str):
            return isinstance(expected, str) and expected in actual
        return isinstance(actual, list | tuple) and _in(expected, actual)
    return _compare(op, actual, expected)


def matches(rule: EventRule, event: EventObserved) -> bool:
    """The event's name is one of the rule's and every filter holds."""
    return event.name in rule.events and all(holds(f, event.properties) for f in rule.where)


def matching_milestones(plan: Plan, event: EventObserved) -> tuple[str, ...]:
    """Keys of the plan's milestones whose rule this event matches (in plan order)."""
    return tuple(m.key for m in plan.milestones if m.rule is not None and matches(m.rule, event))


def _describe_filter(condition: PropertyFilter) -> str:
    if condition.op == "exists":
        return f"{condition.property} {'is set' if condition.value else 'is not set'}"
    return f"{condition.property} {_SYMBOLS[condition.op]} {condition.value!r}"


def describe(rule: EventRule) -> str:
    """A sentence a CSM can read: which events, filters, thresholds and window."""
    names = " or ".join(f"'{name}'" for name in rule.events)
    text = f"{rule.min_count} × {names}" if rule.min_count > 1 else names
    if rule.min_distinct_users > 1:
        text += f" by ≥{rule.min_distinct_users} distinct users"
    if rule.where:
        text += " where " + " and ".join(_describe_filter(f) for f in rule.where)
    if rule.within is not None:
        anchor = rule.within.anchor
        if anchor == "rolling":
            text += f" within any {rule.within.days} days"
        else:
            text += f" within {rule.within.days} days of {anchor.replace('_', '-')}"
    return text
