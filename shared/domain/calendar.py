"""Calendar arithmetic for SLAs: plain days, or business days that skip weekends and holidays.

SLAs written in business days ("kickoff within 5 business days") must not expire over a
weekend; the plan's ``Calendar`` says which weekdays and dates are not worked.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from shared.domain.plans import Calendar


def is_business_day(day: date, calendar: Calendar) -> bool:
    return day.weekday() not in calendar.weekend and day not in calendar.holidays


def add_days(start: datetime, days: int, calendar: Calendar, business: bool) -> datetime:
    """``start`` moved by ``days`` calendar days, or by ``days`` business days (time kept).

    Counting business days steps forward one date at a time and counts only worked dates,
    so Friday + 1 business day is Monday and a start on Saturday + 1 is Monday too.
    """
    if not business or days <= 0:
        return start + timedelta(days=days)
    if len(calendar.weekend) >= 7:
        raise ValueError("a calendar whose every weekday is weekend has no business days")
    moment, left = start, days
    while left:
        moment += timedelta(days=1)
        if is_business_day(moment.date(), calendar):
            left -= 1
    return moment


def business_days_between(a: datetime, b: datetime, calendar: Calendar) -> int:
    """Business dates in ``(a.date(), b.date()]``; negative when ``b`` precedes ``a``."""
    if b < a:
        return -business_days_between(b, a, calendar)
    day, end, count = a.date(), b.date(), 0
    while day < end:
        day += timedelta(days=1)
        count += is_business_day(day, calendar)
    return count
