"""The API's parsing of cursors, moments, months and text into domain values: every input
either parses into a value of the right type and range or is refused with the exception
the API answers as a 4xx — never anything else."""

from __future__ import annotations

import base64
import contextlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.api.params import EARLIEST, LATEST, moment, month_range, plain_text
from shared.storage.projections import InvalidCursor, decode_cursor, encode_cursor

OFFSETS = st.timedeltas(
    min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
)
ZONES = OFFSETS.map(lambda d: timezone(timedelta(minutes=d // timedelta(minutes=1))))
IDS = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=50)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=8,
)


@given(st.datetimes(timezones=ZONES), st.lists(IDS, min_size=1, max_size=2))
def test_a_handed_out_cursor_decodes_to_its_position(at: datetime, ids: list[str]) -> None:
    try:
        expected = at.astimezone(UTC)
    except OverflowError:
        return  # no row can hold this moment, so no cursor is ever made of it
    assert decode_cursor(encode_cursor(at, *ids), 1 + len(ids)) == (expected, ids)


@given(st.lists(JSON, max_size=4), st.integers(min_value=2, max_value=3))
def test_any_json_cursor_decodes_to_typed_parts_or_is_invalid(
    parts: list[object], size: int
) -> None:
    cursor = base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")
    try:
        at, ids = decode_cursor(cursor, size)
    except InvalidCursor:
        return
    assert at.tzinfo is UTC and len(ids) == size - 1
    assert all(isinstance(i, str) and "\x00" not in i for i in ids)


@given(st.text(max_size=200))
def test_any_text_cursor_decodes_or_is_invalid(cursor: str) -> None:
    with contextlib.suppress(InvalidCursor):
        decode_cursor(cursor, 2)


@given(st.datetimes(timezones=st.none() | ZONES))
def test_a_moment_is_utc_within_the_range_or_refused(value: datetime) -> None:
    try:
        parsed = moment(value)
    except ValueError as exc:
        assert "between" in str(exc)
        return
    assert parsed.tzinfo is UTC and EARLIEST <= parsed < LATEST


@pytest.mark.parametrize(
    "value",
    [
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-1))),
    ],
)
def test_moments_that_overflow_utc_are_refused(value: datetime) -> None:
    with pytest.raises(ValueError, match="between"):
        moment(value)


@given(st.integers(min_value=0, max_value=9999), st.integers(min_value=1, max_value=12))
def test_a_month_is_a_range_of_the_calendar_or_refused(year: int, month: int) -> None:
    try:
        start, end = month_range(f"{year:04d}-{month:02d}")
    except ValueError as exc:
        assert not 1970 <= year <= 2999 and "cohort" in str(exc)
        return
    assert (start.year, start.month, start.day) == (year, month, 1)
    assert end > start and end.day == 1 and (end - start).days in (28, 29, 30, 31)


@pytest.mark.parametrize("text", ["a\x00b", "\x00", "x\ud800", "\udfff"])
def test_text_with_nul_or_an_unpaired_surrogate_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        plain_text(text)


def test_text_with_any_other_character_is_kept() -> None:
    assert plain_text("Zoë 🚀 \t\u200b") == "Zoë 🚀 \t\u200b"
