"""Business-day SLAs skip weekends and holidays."""

from __future__ import annotations

from datetime import UTC, date, datetime

from shared.domain.calendar import add_days, business_days_between
from shared.domain.evaluate import evaluate
from shared.domain.plans import Calendar

from .factories import PLANS, registration

FRIDAY = datetime(2026, 1, 2, 9, 30, tzinfo=UTC)
PLAIN = Calendar()


def test_one_business_day_after_friday_is_monday() -> None:
    assert add_days(FRIDAY, 1, PLAIN, business=True) == datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def test_five_business_days_after_friday_is_next_friday() -> None:
    assert add_days(FRIDAY, 5, PLAIN, business=True) == datetime(2026, 1, 9, 9, 30, tzinfo=UTC)


def test_holidays_are_skipped() -> None:
    calendar = Calendar(holidays=frozenset({date(2026, 1, 5), date(2026, 1, 6)}))
    assert add_days(FRIDAY, 1, calendar, business=True) == datetime(2026, 1, 7, 9, 30, tzinfo=UTC)


def test_a_start_on_saturday_counts_from_monday() -> None:
    saturday = datetime(2026, 1, 3, 12, tzinfo=UTC)
    assert add_days(saturday, 1, PLAIN, business=True).date() == date(2026, 1, 5)


def test_calendar_days_ignore_the_calendar() -> None:
    assert add_days(FRIDAY, 5, PLAIN, business=False) == datetime(2026, 1, 7, 9, 30, tzinfo=UTC)


def test_custom_weekend() -> None:
    friday_saturday = Calendar(weekend=frozenset({4, 5}))
    thursday = datetime(2026, 1, 1, tzinfo=UTC)
    assert add_days(thursday, 1, friday_saturday, business=True).date() == date(2026, 1, 4)


def test_business_days_between_counts_worked_dates() -> None:
    assert business_days_between(FRIDAY, datetime(2026, 1, 9, tzinfo=UTC), PLAIN) == 5
    assert business_days_between(datetime(2026, 1, 9, tzinfo=UTC), FRIDAY, PLAIN) == -5


def test_kickoff_stage_is_due_in_five_business_days() -> None:
    plan = PLANS["smb"]
    state = evaluate(plan, registration(plan, at=FRIDAY), [], datetime(2026, 1, 3, tzinfo=UTC))
    kickoff = state.stages[0]
    assert kickoff.key == "kickoff" and kickoff.state == "active"
    assert kickoff.due_at == datetime(2026, 1, 9, 9, 30, tzinfo=UTC)
    overdue = evaluate(plan, registration(plan, at=FRIDAY), [], datetime(2026, 1, 10, tzinfo=UTC))
    assert overdue.stages[0].overdue
