"""Rule matching: event names and property filters; bad data is no match, never an error."""

from __future__ import annotations

import pytest

from shared.domain.plans import EventRule, PropertyFilter
from shared.domain.rules import describe, matches, matching_milestones

from .factories import PLANS, event


def _rule(
    *filters: PropertyFilter, events: tuple[str, ...] = ("Data Sync Completed",)
) -> EventRule:
    return EventRule(events=events, where=filters)


SYNC = event(
    1,
    "Data Sync Completed",
    status="success",
    rows=250,
    tags=["crm", "beta"],
    source={"kind": "salesforce", "region": "eu"},
    note="imported from csv",
)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (PropertyFilter("status", "eq", "success"), True),
        (PropertyFilter("status", "eq", "failed"), False),
        (PropertyFilter("status", "ne", "failed"), True),
        (PropertyFilter("status", "in", ("success", "partial")), True),
        (PropertyFilter("status", "not_in", ("success",)), False),
        (PropertyFilter("rows", "gte", 250), True),
        (PropertyFilter("rows", "gt", 250), False),
        (PropertyFilter("rows", "lt", 1000), True),
        (PropertyFilter("rows", "lte", 249), False),
        (PropertyFilter("status", "gt", 3), False),  # non-numeric: no match, no error
        (PropertyFilter("source.kind", "eq", "salesforce"), True),  # dot path
        (PropertyFilter("source.missing.deeper", "eq", 1), False),
        (PropertyFilter("source.region", "exists", True), True),
        (PropertyFilter("campaign_id", "exists", True), False),
        (PropertyFilter("campaign_id", "exists", False), True),
        (PropertyFilter("tags", "contains", "crm"), True),
        (PropertyFilter("note", "contains", "csv"), True),
        (PropertyFilter("rows", "contains", "2"), False),
        (PropertyFilter("tags", "in", ("crm",)), False),  # a list is not one of the options
    ],
)
def test_property_filters(condition: PropertyFilter, expected: bool) -> None:
    assert matches(_rule(condition), SYNC) is expected


def test_every_filter_must_hold() -> None:
    both = _rule(PropertyFilter("status", "eq", "success"), PropertyFilter("rows", "gt", 500))
    assert not matches(both, SYNC)


def test_event_name_must_be_one_of_the_rules() -> None:
    assert not matches(_rule(events=("Data Sync Started",)), SYNC)
    assert matches(_rule(events=("Data Sync Started", "Data Sync Completed")), SYNC)


def test_numeric_strings_compare_as_numbers() -> None:
    assert matches(
        _rule(PropertyFilter("rows", "gte", 100)), event(1, "Data Sync Completed", rows="120")
    )
    assert not matches(
        _rule(PropertyFilter("rows", "gte", 100)), event(1, "Data Sync Completed", rows=True)
    )


def test_matching_milestones_of_the_default_plan() -> None:
    smb = PLANS["smb"]
    assert matching_milestones(smb, event(1, "Logged In")) == ("users_logged_in", "team_adoption")
    assert matching_milestones(smb, event(1, "Data Sync Completed", status="failed")) == ()
    assert matching_milestones(smb, event(1, "Workflow Run", environment="production")) == (
        "first_workflow_run",
    )


def test_describe_reads_as_a_sentence() -> None:
    rule = PLANS["smb"].milestone("users_logged_in").rule
    assert rule is not None
    assert describe(rule) == "'Logged In' by ≥7 distinct users within 21 days of go-live"
