"""The read side's shapes agree with their one source: the stored-state document with the
state's dataclasses, the tables and the API's rows with ``shared.storage.views``, and an
escalation listed with the same escalation in a detail."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, get_args, get_origin, get_type_hints, is_typeddict

from services.api.report_schemas import EscalationItem, at_risk_item, escalation_item
from services.api.schemas import EscalationOut, OnboardingItem, detail
from shared.domain import codec, state
from shared.domain.evaluate import evaluate
from shared.domain.state import OnboardingState
from shared.domain.stored_state import StoredState
from shared.storage.tables import EscalationRecord, ProjectionRecord
from shared.storage.views import (
    ESCALATION_FIELDS,
    LISTED_FIELDS,
    SUMMARY_FIELDS,
    EscalationRow,
    escalation_columns,
    summary_row,
)

from .factories import (
    PLANS,
    amend,
    day,
    evidence,
    pause,
    registration,
    resume,
    setup_done,
    stalled_in_setup,
)

WHOSE = {"onboarding_id", "account_id", "segment", "csm"}


def _evaluated() -> OnboardingState:
    """A state with every part filled: escalations (open and resolved), evidence, a pause,
    an amendment."""
    facts = [
        *stalled_in_setup(60),
        *setup_done(30),
        evidence(3, "kickoff_call"),
        pause(20),
        resume(25),
        amend(10, "integration_connected", due_day=12),
    ]
    found = evaluate(PLANS["smb"], registration(), facts, day(60))
    assert found.escalations and found.amendments and found.milestones[0].confirmations
    return found


def _inner(tp: Any) -> list[Any]:
    """The classes a field's type names (through ``| None``, ``tuple[...]``, ``list[...]``)."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType, tuple, list):
        return [c for arg in get_args(tp) for c in _inner(arg)]
    return [tp] if isinstance(tp, type) else []


def test_the_stored_document_types_mirror_the_state_field_for_field() -> None:
    pairs = [(StoredState, OnboardingState)]
    seen = set()
    while pairs:
        document, source = pairs.pop()
        seen.add(source)
        hints = get_type_hints(document)
        fields = {f.name: f for f in dataclasses.fields(source)}
        assert set(hints) == set(fields), source.__name__
        source_hints = get_type_hints(source)
        for name in fields:
            docs = [c for c in _inner(hints[name]) if is_typeddict(c)]
            nested = [c for c in _inner(source_hints[name]) if dataclasses.is_dataclass(c)]
            assert len(docs) == len(nested) <= 1, (source.__name__, name)
            pairs.extend(zip(docs, nested, strict=True))
    assert {state.EscalationStatus, state.EscalationLadder, state.AmendmentApplied} <= seen


def test_the_stored_document_has_exactly_the_keys_its_types_name() -> None:
    def check(document: Any, value: Any, where: str) -> None:
        if not isinstance(value, dict):
            return
        hints = get_type_hints(document)
        assert set(value) == set(hints), where
        for name, item in value.items():
            for cls in (c for c in _inner(hints[name]) if is_typeddict(c)):
                for child in item if isinstance(item, list) else [item]:
                    check(cls, child, f"{where}.{name}")

    check(StoredState, codec.state_to_dict(_evaluated()), "state")


def test_the_tables_hold_the_views_columns() -> None:
    assert [c.name for c in ProjectionRecord.__table__.columns] == [*SUMMARY_FIELDS, "fold"]
    assert {c.name for c in EscalationRecord.__table__.columns} == set(ESCALATION_FIELDS)
    assert set(ESCALATION_FIELDS) == WHOSE | {
        f.name for f in dataclasses.fields(state.EscalationStatus)
    }


def test_the_api_list_row_is_the_listed_summary() -> None:
    assert tuple(OnboardingItem.model_fields) == LISTED_FIELDS
    assert set(EscalationItem.model_fields) == set(EscalationOut.model_fields) | WHOSE


def test_summary_row_takes_its_columns_from_the_state() -> None:
    evaluated = _evaluated()
    row = summary_row(evaluated, day(61))
    open_levels = [e.level for e in evaluated.escalations if e.resolved_at is None]
    assert row.state == codec.state_to_dict(evaluated)
    assert (row.open_escalations, row.max_escalation_level) == (len(open_levels), max(open_levels))
    assert (row.first_value_at, row.ttfv_days, row.breach) == (
        evaluated.ttfv.reached_at,
        evaluated.ttfv.days,
        evaluated.ttfv.breach,
    )
    assert (row.health_score, row.health_tier) == (evaluated.health.score, evaluated.health.tier)
    assert row.updated_at == day(61)


def test_a_listed_escalation_is_the_detail_escalation_and_whose_it_is() -> None:
    evaluated = _evaluated()
    shown = detail(codec.state_to_dict(evaluated), PLANS["smb"]).escalations
    listed = [escalation_item(EscalationRow(**row)) for row in escalation_columns(evaluated)]
    assert {e.open for e in shown} == {True, False}
    assert [item.model_dump(exclude=WHOSE) for item in listed] == [e.model_dump() for e in shown]
    assert {(i.onboarding_id, i.account_id, i.segment, i.csm) for i in listed} == {
        (evaluated.onboarding_id, evaluated.account_id, evaluated.segment, evaluated.csm)
    }


def test_at_risk_reads_the_stored_state_it_is_given() -> None:
    evaluated = _evaluated()
    item = at_risk_item(summary_row(evaluated, day(61)), PLANS["smb"])
    missing = {m.key for m in evaluated.milestones if m.kind == "outcome"}
    missing -= {m.key for m in evaluated.milestones if m.progress == "complete"}
    assert {m.milestone_key for m in item.missing_outcomes} == missing
    assert item.elapsed_days == round(evaluated.ttfv.elapsed_days, 2)
