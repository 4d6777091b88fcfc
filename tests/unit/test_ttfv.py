"""TTFV and its decomposition, with breach levels at the band's edges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.domain.evaluate import evaluate
from shared.domain.plans import TTFVTarget
from shared.domain.ttfv import breach_level, decompose

from .factories import (
    PLANS,
    SIGNED,
    chatter,
    day,
    event,
    kickoff_done,
    registration,
    setup_done,
)

SMB = PLANS["smb"]


def test_decomposition_example_4_plus_14_plus_14_is_32() -> None:
    signed = datetime(2026, 1, 1, tzinfo=UTC)
    jan5, jan19, feb2 = (datetime(2026, m, d, tzinfo=UTC) for m, d in ((1, 5), (1, 19), (2, 2)))
    facts = [
        event(jan5, "Kickoff Call Completed"),
        event(jan5, "Success Criteria Agreed"),
        event(jan5, "Executive Sponsor Named"),
        event(jan19 - timedelta(days=3), "Integration Connected"),
        event(jan19 - timedelta(days=1), "Data Sync Completed", status="success"),
        event(jan19, "Workflow Run", environment="production"),
        event(feb2, "Report Delivered"),
    ]
    state = evaluate(SMB, registration(SMB, at=signed), facts, datetime(2026, 2, 10, tzinfo=UTC))
    d = state.decomposition
    assert (d.handoff_days, d.setup_days, d.activation_days, d.total_days) == (4, 14, 14, 32)
    assert state.ttfv.days == 32
    assert d.go_live_at == jan19


def test_decomposition_is_partial_until_first_value() -> None:
    d = decompose(SIGNED, day(3), None, None)
    assert (d.handoff_days, d.setup_days, d.activation_days, d.total_days) == (3, None, None, None)


def _ttfv_after(days: float):
    facts = [*kickoff_done(1), *setup_done(5), event(days, "Report Delivered")]
    return evaluate(SMB, registration(), facts, day(90)).ttfv


def test_first_value_exactly_at_the_upper_bound_is_no_breach() -> None:
    ttfv = _ttfv_after(14)
    assert ttfv.days == 14 and ttfv.breach == "none"


def test_first_value_just_over_the_upper_bound_is_a_breach() -> None:
    assert _ttfv_after(14 + 1 / 24).breach == "breach"


def test_first_value_at_twice_the_upper_bound_is_severe() -> None:
    assert _ttfv_after(27.9).breach == "breach"
    assert _ttfv_after(28).breach == "severe"


def test_open_onboarding_is_judged_on_elapsed_days() -> None:
    facts = [*kickoff_done(1), *chatter(40)]
    assert evaluate(SMB, registration(), facts, day(14)).ttfv.breach == "none"
    late = evaluate(SMB, registration(), facts, day(15)).ttfv
    assert (late.days, late.elapsed_days, late.breach) == (None, 15, "breach")
    assert evaluate(SMB, registration(), facts, day(28)).ttfv.breach == "severe"


def test_breach_level_bands() -> None:
    target = TTFVTarget(30, 45)
    assert [breach_level(d, target) for d in (10, 45, 45.01, 89.99, 90)] == [
        "none",
        "none",
        "breach",
        "breach",
        "severe",
    ]
