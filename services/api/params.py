"""What the REST API accepts as a parameter: each text, moment and month is parsed into its
domain value at the edge, and anything outside the domain is a 422 naming the field.

The domain is narrower than what Python or the databases hold, on purpose. Moments lie in
[1970-01-01, 3000-01-01) UTC: an offset at the edge of the calendar (``0001-01-01T00:00
+01:00``) cannot even be converted to UTC, and a signature near year 9999 overflows the
SLA arithmetic. Text holds no NUL and no unpaired surrogate: PostgreSQL refuses both while
SQLite stores them, so refusing them here gives one behaviour on both backends.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, Field

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)  # exclusive
MAX_TEXT = 255  # the width of the text columns the filters compare against


def plain_text(value: str) -> str:
    """``value`` if both backends can store and compare it as it is."""
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\u0000)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode (no unpaired surrogate)") from exc
    return value


def moment(value: datetime) -> datetime:
    """An ISO-8601 moment in UTC (no offset: read as UTC), within [EARLIEST, LATEST)."""
    try:
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(_out_of_range()) from exc
    if not EARLIEST <= utc < LATEST:
        raise ValueError(_out_of_range())
    return utc


def _out_of_range() -> str:
    return f"must lie between {EARLIEST.isoformat()} and {LATEST.isoformat()} (exclusive)"


def month_range(cohort: str) -> tuple[datetime, datetime]:
    """``YYYY-MM`` → [first moment of the month, first moment of the next) in UTC."""
    year, month = (int(part) for part in cohort.split("-"))
    if not EARLIEST.year <= year < LATEST.year:
        raise ValueError(f"cohort '{cohort}' is outside {EARLIEST.year}-01 … {LATEST.year - 1}-12")
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start, end


PlainText = Annotated[str, AfterValidator(plain_text)]
Moment = Annotated[datetime, AfterValidator(moment)]
# A filter compared with a text column: longer than the column, it can match nothing.
TextFilter = Annotated[PlainText, Field(min_length=1, max_length=MAX_TEXT)]
OnboardingId = Annotated[PlainText, Path(min_length=1, max_length=MAX_TEXT)]
