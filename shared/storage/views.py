"""The read side's rows: what a projection stores for lists and what an escalation row is,
each derived from an ``OnboardingState`` here and only here.

Every writer saves through ``ProjectionRepository.save_many``, which takes its columns from
``summary_row`` and ``escalation_columns``; every reader gets ``OnboardingSummary`` and
``EscalationRow`` back. The tables (``tables.ProjectionRecord``, ``EscalationRecord``)
name the same columns, and a unit test holds them equal.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.domain import codec
from shared.domain.state import EscalationStatus, OnboardingState
from shared.domain.stored_state import StoredState


@dataclass(frozen=True)
class OnboardingSummary:
    """One onboarding's projection row: the columns lists filter and sort on, and its state
    as ``codec.state_to_dict`` wrote it."""

    onboarding_id: str
    account_id: str
    account_name: str | None
    plan_key: str
    plan_version: int
    segment: str
    csm: str | None
    status: str
    current_stage: str | None
    signed_at: datetime
    first_value_at: datetime | None
    ttfv_days: float | None
    breach: str
    health_score: float
    health_tier: str
    onboarded_at: datetime | None
    tasks_done_no_value: bool
    open_escalations: int
    max_escalation_level: int
    next_due_at: datetime | None
    updated_at: datetime
    state: StoredState


SUMMARY_FIELDS = tuple(f.name for f in dataclasses.fields(OnboardingSummary))
LISTED_FIELDS = tuple(name for name in SUMMARY_FIELDS if name != "state")
"""The summary columns a list shows: all but the stored state (~10 KB a row)."""


def summary_row(
    state: OnboardingState, updated_at: datetime, encoded: StoredState | None = None
) -> OnboardingSummary:
    """The projection row of ``state`` (``encoded``: its ``codec.state_to_dict``, when the
    caller has it already)."""
    open_escalations = state.open_escalations
    return OnboardingSummary(
        onboarding_id=state.onboarding_id,
        account_id=state.account_id,
        account_name=state.account_name,
        plan_key=state.plan_key,
        plan_version=state.plan_version,
        segment=state.segment,
        csm=state.csm,
        status=state.status,
        current_stage=state.current_stage,
        signed_at=state.signed_at,
        first_value_at=state.ttfv.reached_at,
        ttfv_days=state.ttfv.days,
        breach=state.ttfv.breach,
        health_score=state.health.score,
        health_tier=state.health.tier,
        onboarded_at=state.onboarded_at,
        tasks_done_no_value=state.tasks_done_no_value,
        open_escalations=len(open_escalations),
        max_escalation_level=max((e.level for e in open_escalations), default=0),
        next_due_at=state.next_due_at,
        updated_at=updated_at,
        state=codec.state_to_dict(state) if encoded is None else encoded,
    )


def summary_columns(summary: OnboardingSummary) -> dict[str, Any]:
    """The row as the table's column values (its fields are all it holds)."""
    return dict(vars(summary))


@dataclass(frozen=True, kw_only=True)
class EscalationRow(EscalationStatus):
    """An escalation as listed across onboardings: the onboarding's escalation, and whose
    it is (the API's ``EscalationItem`` has the same shape)."""

    onboarding_id: str
    account_id: str
    segment: str
    csm: str | None


_STATUS_FIELDS = tuple(f.name for f in dataclasses.fields(EscalationStatus))
ESCALATION_FIELDS = tuple(f.name for f in dataclasses.fields(EscalationRow))


def escalation_columns(state: OnboardingState) -> list[dict[str, Any]]:
    """The escalation rows of ``state`` as column values, one per (rule, moment fired)."""
    whose = {
        "onboarding_id": state.onboarding_id,
        "account_id": state.account_id,
        "segment": state.segment,
        "csm": state.csm,
    }
    rows = {
        (e.rule_key, e.fired_at): {**whose, **{name: getattr(e, name) for name in _STATUS_FIELDS}}
        for e in state.escalations
    }
    return list(rows.values())
