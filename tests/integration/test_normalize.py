"""Segment and Mixpanel wire shapes → normalised events (pure, but part of the ingest path
under test)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shared.analytics.event import SIZE_CHECK_FREE_BYTES, checked_size, fits_every_limit
from shared.analytics.normalize import (
    MAX_MESSAGE_BYTES,
    PAGE_VIEWED,
    InvalidMessage,
    NormalizedEvent,
    detect_source,
    normalize_record,
    normalize_segment,
    partition_key,
    split_segment_batch,
)

RECEIVED = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def normalize(message: dict[str, Any]) -> NormalizedEvent:
    return normalize_segment(message, received_at=RECEIVED, max_clock_skew_days=7)


def test_sent_at_corrects_a_client_clock_that_runs_wrong() -> None:
    event = normalize(
        {
            "type": "track",
            "userId": "u1",
            "event": "Logged In",
            "timestamp": "2026-03-10T10:00:00.000+00:00",  # client clock
            "sentAt": "2026-03-10T10:05:00.000Z",  # client clock, five minutes later
        }
    )
    assert event.at == datetime(2026, 3, 10, 11, 55, tzinfo=UTC)
    assert event.received_at == RECEIVED


def test_batch_items_inherit_context_sent_at_and_received_at() -> None:
    body = {
        "batch": [
            {"type": "track", "userId": "u1", "event": "A", "timestamp": "2026-03-10T09:00:00Z"},
            {"type": "page", "anonymousId": "anon", "name": "Home", "context": {"ip": "1.2.3.4"}},
        ],
        "context": {"groupId": "acme", "ip": "9.9.9.9"},
        "sentAt": "2026-03-10T09:00:00Z",
        "writeKey": "secret",
    }
    items = split_segment_batch(body, RECEIVED)
    assert items[0]["context"] == {"groupId": "acme", "ip": "9.9.9.9"}
    assert items[1]["context"] == {"groupId": "acme", "ip": "1.2.3.4"}
    assert all(i["sentAt"] == "2026-03-10T09:00:00Z" for i in items)
    first, page = (normalize(i) for i in items)
    assert first.at == RECEIVED and first.context_group_id == "acme"
    assert (page.user_id, page.name, page.properties["name"]) == ("anon", PAGE_VIEWED, "Home")
    assert partition_key(items[1]) == "acme"


def test_a_message_without_message_id_gets_a_content_hash_that_survives_retries() -> None:
    message = {"type": "track", "userId": "u1", "event": "A", "timestamp": "2026-03-10T09:00:00Z"}
    first = normalize({**message, "sentAt": "2026-03-10T09:00:01Z"})
    retry = normalize({**message, "sentAt": "2026-03-10T09:07:00Z"})
    other = normalize({**message, "event": "B"})
    assert first.id == retry.id != other.id
    assert first.id.startswith("sha256:")


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ([1, 2], "not_an_object"),
        ({"type": "alias2", "userId": "u"}, "unsupported_type"),
        ({"type": "track", "event": "A"}, "missing_user"),
        ({"type": "track", "userId": "u"}, "missing_event"),
        ({"type": "group", "userId": "u"}, "missing_group_id"),
        ({"type": "track", "userId": "u", "event": "A", "timestamp": "now"}, "invalid_timestamp"),
        ({"type": "track", "userId": "u", "event": "A", "timestamp": "2027-01-01T00:00:00Z"},
         "timestamp_in_future"),
        ({"type": "track", "userId": "u", "event": "A", "properties": []}, "invalid_properties"),
        ({"type": "track", "userId": "u", "event": "A\u0000"}, "nul_character"),
        ({"type": "track", "userId": "u", "event": "A", "properties": {"x": "y" * 40000}},
         "too_large"),
    ],
)  # fmt: skip
def test_unusable_messages_are_refused_with_a_reason(message: object, reason: str) -> None:
    with pytest.raises(InvalidMessage) as refused:
        normalize_segment(message, received_at=RECEIVED, max_clock_skew_days=7)
    assert refused.value.reason == reason


MIXPANEL_EVENT = {
    "event": "Report Delivered",
    "properties": {
        "distinct_id": "m1",
        "time": 1773140400,  # 2026-03-10T11:00:00Z in seconds
        "$insert_id": "5d9e1c0f6a0b4f6f9a3b2c1d0e9f8a7b",
        "token": "tok",
        "company_id": ["acme", "globex"],
        "format": "pdf",
    },
}


def record(message: dict[str, Any], group_key: str = "company_id") -> NormalizedEvent:
    return normalize_record(
        message, received_at=RECEIVED, max_clock_skew_days=7, mixpanel_group_key=group_key
    )


def test_a_mixpanel_event_names_its_account_by_the_group_key_and_keeps_its_properties() -> None:
    event = record(MIXPANEL_EVENT)
    assert (event.source, event.type, event.name, event.user_id) == (
        "mixpanel",
        "track",
        "Report Delivered",
        "m1",
    )
    assert event.at == datetime(2026, 3, 10, 11, 0, tzinfo=UTC)
    assert event.context_group_id == "acme"  # the first of a list
    assert event.properties == {"company_id": ["acme", "globex"], "format": "pdf"}
    assert partition_key(MIXPANEL_EVENT) == "acme"
    other_key = {**MIXPANEL_EVENT, "properties": {**MIXPANEL_EVENT["properties"], "org": "ini"}}
    assert record(other_key, group_key="org").context_group_id == "ini"
    assert partition_key(other_key, mixpanel_group_key="org") == "ini"


def test_mixpanel_dedupe_key_is_event_user_time_and_insert_id_in_seconds_or_ms() -> None:
    properties = MIXPANEL_EVENT["properties"]
    in_ms = {**MIXPANEL_EVENT, "properties": {**properties, "time": 1773140400000}}
    resent = {**MIXPANEL_EVENT, "receivedAt": "2026-03-10T12:30:00+00:00", "_source": "mixpanel"}
    other_time = {**MIXPANEL_EVENT, "properties": {**properties, "time": 1773140401}}
    first = record(MIXPANEL_EVENT)
    assert first.id.startswith("mp:")
    assert first.id == record(in_ms).id == record(resent).id != record(other_time).id
    assert record(in_ms).at == first.at
    without = {**MIXPANEL_EVENT, "properties": {**properties, "$insert_id": None}}
    assert record(without).id.startswith("sha256:")
    assert record(without).id == record({**without, "receivedAt": "2026-03-10T12:01:00Z"}).id


def test_a_mixpanel_alias_ties_the_new_id_to_the_known_one() -> None:
    properties = {"distinct_id": "known", "alias": "new", "token": "t"}
    alias = record({"event": "$create_alias", "properties": properties})
    assert (alias.type, alias.user_id, alias.previous_id, alias.name) == (
        "alias",
        "new",
        "known",
        None,
    )


def test_source_is_the_marker_else_the_shape() -> None:
    assert detect_source({"type": "track"}) == "segment"
    assert detect_source({"event": "A", "properties": {}}) == "mixpanel"
    assert detect_source({"_source": "mixpanel", "event": "A"}) == "mixpanel"
    for unknown in ({"name": "A"}, {"_source": "amplitude", "type": "track"}):
        with pytest.raises(InvalidMessage) as refused:
            detect_source(unknown)
        assert refused.value.reason == "unknown_source"


def test_segment_exports_correct_skew_from_original_timestamp_not_the_corrected_one() -> None:
    exported = {
        "type": "track", "userId": "u1", "event": "A",
        "originalTimestamp": "2026-03-10T10:00:00Z",  # client clock
        "timestamp": "2026-03-10T09:55:00Z",  # already corrected by Segment
        "sentAt": "2026-03-10T10:05:00Z", "receivedAt": "2026-03-10T10:00:00Z",
    }  # fmt: skip
    assert normalize(exported).at == datetime(2026, 3, 10, 9, 55, tzinfo=UTC)


@pytest.mark.parametrize(
    ("message", "reason", "field"),
    [
        ({"event": "A", "properties": {"time": 1773140400}}, "missing_user",
         "properties.distinct_id"),
        ({"event": "A", "properties": {"distinct_id": "anonymous"}}, "invalid_user",
         "properties.distinct_id"),
        ({"event": "A", "properties": {"distinct_id": "m", "time": "1773140400"}},
         "invalid_timestamp", "properties.time"),
        ({"event": "A", "properties": {"distinct_id": "m", "time": 1773140400 + 30 * 86400}},
         "timestamp_in_future", "properties.time"),
        ({"event": "A", "properties": {"distinct_id": "m", "$insert_id": "x" * 37}},
         "invalid_insert_id", "properties.$insert_id"),
        ({"event": "A", "properties": {"distinct_id": "m", "$insert_id": "a_b"}},
         "invalid_insert_id", "properties.$insert_id"),
        ({"event": "A", "properties": ["distinct_id"]}, "invalid_properties", "properties"),
        ({"event": 3, "properties": {"distinct_id": "m"}}, "invalid_event", "event"),
        ({"event": "A", "properties": {"distinct_id": "m", "company_id": {"id": 1}}},
         "invalid_group_key", "properties.company_id"),
        ({"type": "track", "userId": "u", "event": "A", "messageId": "m" * 101},
         "invalid_message_id", "messageId"),
        ({"type": "track", "userId": "u", "event": "A", "messageId": 7},
         "invalid_message_id", "messageId"),
        ({"type": "page", "userId": "u", "name": ["Home"]}, "invalid_name", "name"),
        ({"type": "track", "userId": "u", "event": "A", "integrations": "All"},
         "invalid_integrations", "integrations"),
        ({"type": "alias", "userId": "u"}, "missing_previous_id", "previousId"),
    ],
)  # fmt: skip
def test_every_field_is_type_checked_with_its_reason_and_path(
    message: dict[str, Any], reason: str, field: str
) -> None:
    with pytest.raises(InvalidMessage) as refused:
        record(message)
    assert (refused.value.reason, refused.value.field) == (reason, field)


_TRACK: dict[str, Any] = {
    "type": "track",
    "userId": "u1",
    "event": "Workflow Run",
    "properties": {"workflow": "lead routing"},
    "context": {"groupId": "acme", "library": {"name": "analytics-python"}},
    "messageId": "m-1",
    "timestamp": "2026-03-10T10:00:00.123+00:00",
}
_SHAPES: list[dict[str, Any]] = [
    _TRACK,
    {**_TRACK, "sentAt": "2026-03-10T10:05:00Z", "receivedAt": "2026-03-10T11:00:00Z"},
    {**_TRACK, "originalTimestamp": "2026-03-10T09:00:00+02:00", "timestamp": None},
    {**_TRACK, "timestamp": "2026-03-10T10:00:00"},  # no offset: UTC
    {**_TRACK, "timestamp": "2026-04-10T10:00:00Z"},  # beyond the allowed skew
    {**_TRACK, "timestamp": "yesterday"},
    {**_TRACK, "timestamp": 1700000000},
    {**_TRACK, "properties": None, "context": None, "integrations": {"All": True}},
    {**_TRACK, "integrations": ["All"]},
    {**_TRACK, "properties": ["a"]},
    {**_TRACK, "userId": 42},
    {**_TRACK, "userId": "", "anonymousId": "anon-1"},
    {**_TRACK, "userId": True},
    {**_TRACK, "userId": "u" * 256},
    {**_TRACK, "messageId": "m" * 101},
    {**_TRACK, "messageId": 7},
    {**_TRACK, "messageId": None},
    {**_TRACK, "event": "   "},
    {**_TRACK, "event": 3},
    {**_TRACK, "context": {"groupId": 12}},
    {**_TRACK, "context": {"groupId": ""}},
    {**_TRACK, "groupId": ""},
    {**_TRACK, "previousId": "old"},
    {
        "type": "identify",
        "userId": "u1",
        "traits": {"account_id": "acme"},
        "messageId": "m-2",
        "timestamp": "2026-03-10T10:00:00Z",
    },
    {"type": "identify", "userId": "u1", "name": 5, "messageId": "m-3"},
    {
        "type": "group",
        "userId": "u1",
        "groupId": "acme",
        "traits": {"plan": "pro"},
        "messageId": "m-4",
        "timestamp": "2026-03-10T10:00:00Z",
    },
    {"type": "group", "userId": "u1", "messageId": "m-5"},
    {"type": "group", "userId": "u1", "groupId": 99, "messageId": "m-6"},
    {"type": "page", "userId": "u1", "name": "Home", "messageId": "m-7"},
    {"type": "alias", "userId": "u1", "previousId": "anon-1", "messageId": "m-8"},
]


def _outcome(message: dict[str, Any]) -> tuple[Any, ...]:
    try:
        event = normalize(dict(message))
    except InvalidMessage as error:
        return ("rejected", error.reason, error.field, str(error))
    return (event, dict(event.properties), dict(event.traits))


@pytest.mark.parametrize("message", _SHAPES)
def test_the_common_shape_fast_path_gives_what_the_field_checks_give(
    message: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one-pass read of well-formed track/identify/group calls is an optimisation only:
    with it switched off, every message normalises (or is refused) exactly the same way."""
    from shared.analytics import segment

    fast = _outcome(message)
    monkeypatch.setattr(segment, "well_formed", lambda *args: None)
    assert _outcome(message) == fast


def test_the_fast_path_takes_the_common_shapes() -> None:
    from shared.analytics import segment

    for message in (_TRACK, _SHAPES[1], _SHAPES[23], _SHAPES[25]):
        assert segment.well_formed(dict(message), RECEIVED, 7) is not None
    assert segment.well_formed({**_TRACK, "userId": 42}, RECEIVED, 7) is None
    assert segment.well_formed({**_TRACK, "type": "page"}, RECEIVED, 7) is None


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(message=_JSON_VALUES, spacing=st.booleans())
def test_bytes_that_fit_every_limit_pass_the_size_check(message: Any, spacing: bool) -> None:
    """The consumer skips re-encoding a record whose bytes ``fits_every_limit``: that must
    never let through what the size, depth and NUL check would refuse."""
    raw = json.dumps({"m": message}, indent=1 if spacing else None).encode()
    try:
        decoded = orjson.loads(raw)  # as the consumer reads it
    except orjson.JSONDecodeError:
        assume(False)  # dead-lettered as invalid JSON before any size check
    if fits_every_limit(raw):
        checked_size(decoded, MAX_MESSAGE_BYTES)  # raises when it would refuse


def test_fits_every_limit_refuses_what_it_cannot_vouch_for() -> None:
    assert fits_every_limit(b'{"type":"track","properties":{"n":1e15}}')
    # as long as allowed, all of it numbers that re-encode ~4x longer ("1e15" → 1000…0.0)
    growing = b'{"n":[' + b",".join([b"1e15"] * ((SIZE_CHECK_FREE_BYTES - 8) // 5)) + b"]}"
    assert len(growing) <= SIZE_CHECK_FREE_BYTES and fits_every_limit(growing)
    checked_size(orjson.loads(growing), MAX_MESSAGE_BYTES)  # still under Segment's limit
    assert not fits_every_limit(b'{"event":"A\\u0000"}')  # a NUL can only be escaped
    assert not fits_every_limit(b"[" * 255 + b"]" * 255)  # as deep as orjson can encode
    assert not fits_every_limit(b'{"blob":"' + b"x" * SIZE_CHECK_FREE_BYTES + b'"}')
