"""Hostile records for the never-stop suites: hypothesis draws Segment and Mixpanel messages
with one field (or several) replaced by something hostile — extreme dates and offsets,
numbers past every storage type, wrong types, huge strings, NUL — plus random JSON and bytes
that are not UTF-8. Every hostile message carries an id of its own (``h-…``), so a suite can
say where each one ended up: stored, parked, or dead-lettered with a reason.

Drawn without shrinking (``drawn``): the suites run them through real servers inside one
event loop, so a failure prints the records instead.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import orjson
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

T = TypeVar("T")

EXTREME_TIMES = [
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-01:00",
    "1900-02-29T00:00:00",
    "2026-13-01T00:00:00Z",
    "",
    "now",
]
EXTREME_NUMBERS: list[Any] = [
    1e19, 18446744073709551615, 3_000_000_000, 2**31, -1, -(2**63), 1e308, -1e308, 0.5,
    9223372036854775807, 1e-320,
]  # fmt: skip
WRONG_TYPES: list[Any] = [None, True, False, [], {}, [1, "a"], {"a": {"b": None}}, 0, "", " "]


def _offset_times() -> st.SearchStrategy[str]:
    offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
    naive = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59))
    return st.builds(lambda d, tz: d.replace(tzinfo=tz).isoformat(), naive, offsets)


def huge_text() -> st.SearchStrategy[str]:
    return st.sampled_from([10, 300, 40_000]).flatmap(
        lambda n: st.sampled_from(["x" * n, "\x00" * min(n, 50), "é\x00" + "y" * n])
    )


JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    huge_text(),
)
RANDOM_JSON = st.recursive(
    JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
HOSTILE_VALUE = st.one_of(
    st.sampled_from(EXTREME_TIMES),
    _offset_times(),
    st.sampled_from(EXTREME_NUMBERS),
    st.sampled_from(WRONG_TYPES),
    huge_text(),
    RANDOM_JSON,
)
SEGMENT_FIELDS = [
    "timestamp", "sentAt", "originalTimestamp", "receivedAt", "event", "userId",
    "anonymousId", "properties", "context", "traits", "integrations", "type",
]  # fmt: skip
CONTRACT_FIELDS = ["licensed_seats", "plan", "csm", "account_name", "onboarding_id"]
MIXPANEL_FIELDS = ["time", "distinct_id", "$insert_id", "token", "company_id", "licensed_seats"]


@dataclass(frozen=True)
class Hostile:
    """One drawn record: its bytes, and the id it is stored under when it is stored (None
    for random JSON and bytes, which carry none)."""

    raw: bytes
    message_id: str | None


def encode(value: Any) -> bytes:
    """JSON bytes of ``value``; the standard library for what orjson refuses (ints past 64
    bits), so hostile numbers reach the consumer as a producer would send them."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value).encode()


def segment_message(account: str, message_id: str, now: datetime) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": message_id,
        "userId": f"user-{message_id}",
        "event": "Logged In",
        "properties": {"plan": "smb"},
        "context": {"groupId": account},
        "timestamp": (now - timedelta(hours=1)).isoformat(),
    }


def mixpanel_event(account: str, insert_id: str, now: datetime) -> dict[str, Any]:
    return {
        "event": "Logged In",
        "properties": {
            "distinct_id": f"user-{insert_id}",
            "time": int((now - timedelta(hours=1)).timestamp()),
            "$insert_id": insert_id,
            "company_id": account,
        },
    }


@st.composite
def hostile_segment(draw: st.DrawFn, account: str, now: datetime) -> dict[str, Any]:
    message_id = f"h-{uuid.uuid4().hex[:16]}"
    message = segment_message(account, message_id, now)
    if draw(st.booleans()):
        message["event"] = "Contract Signed"
        for name in draw(st.lists(st.sampled_from(CONTRACT_FIELDS), min_size=1, max_size=2)):
            message["properties"][name] = draw(HOSTILE_VALUE)
    for name in draw(st.lists(st.sampled_from(SEGMENT_FIELDS), max_size=3)):
        message[name] = draw(HOSTILE_VALUE)
    return message


@st.composite
def hostile_mixpanel(draw: st.DrawFn, account: str, now: datetime) -> dict[str, Any]:
    insert_id = uuid.uuid4().hex[:32]
    event = mixpanel_event(account, insert_id, now)
    if draw(st.booleans()):
        event["event"] = "Contract Signed"
        event["properties"]["plan"] = "smb"
    for name in draw(st.lists(st.sampled_from(MIXPANEL_FIELDS), min_size=1, max_size=3)):
        event["properties"][name] = draw(HOSTILE_VALUE)
    if draw(st.integers(0, 9)) == 0:
        event["event"] = draw(HOSTILE_VALUE)
    return event


def hostile_records(account: str, now: datetime) -> st.SearchStrategy[Hostile]:
    """Hostile Segment messages, Mixpanel events (marked as such, as HTTP ingest marks
    them), random JSON and random bytes."""
    return st.one_of(
        hostile_segment(account, now).map(lambda m: Hostile(encode(m), m.get("messageId"))),
        hostile_mixpanel(account, now).map(
            lambda e: Hostile(encode({**e, "_source": "mixpanel"}), None)
        ),
        RANDOM_JSON.map(lambda v: Hostile(encode(v), None)),
        st.binary(max_size=64).map(lambda b: Hostile(b"\xff" + b, None)),  # never UTF-8
    )


def drawn(strategy: st.SearchStrategy[T], examples: int) -> list[T]:
    """``examples`` values of ``strategy`` (generation only: no shrinking, no database)."""
    values: list[T] = []

    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: T) -> None:
        values.append(value)

    collect()
    return values


def good_message(account: str, n: int, now: datetime) -> dict[str, Any]:
    return segment_message(account, f"good-{account}-{n}", now)
