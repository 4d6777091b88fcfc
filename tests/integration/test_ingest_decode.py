"""The consumer's decoding of a batch of records (``decode_records``) reads its common
records in one pass: an optimisation only. Whatever the records, it gives what decoding
them one by one through the field-by-field checks gives — the same events (every field),
in the same order, from the same positions, and the same dead letters with the same
reasons, texts and bytes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest import records
from services.ingest.outcome import DeadLetter
from services.ingest.records import IngestOptions, Record, decode, decode_records
from shared.analytics import segment
from shared.analytics.registration import CONTRACT_SIGNED
from tests.integration.hostile import HOSTILE_VALUE, encode

RECEIVED = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
OPTIONS = IngestOptions(plan_keys=frozenset({"smb", "enterprise"}))

_TRACK: dict[str, Any] = {
    "type": "track",
    "userId": "u1",
    "event": "Workflow Run",
    "properties": {"workflow": "lead routing", "account_id": "acme"},
    "context": {"groupId": "acme", "library": {"name": "analytics-python"}},
    "messageId": "m-1",
    "timestamp": "2026-03-10T10:00:00.123+00:00",
}
_IDENTIFY: dict[str, Any] = {
    "type": "identify",
    "userId": "u1",
    "traits": {"account_id": "acme", "email": "a@acme.example"},
    "messageId": "m-2",
    "timestamp": "2026-03-10T10:00:00Z",
}
_GROUP: dict[str, Any] = {
    "type": "group",
    "userId": "u1",
    "groupId": "acme",
    "traits": {"plan": "pro"},
    "messageId": "m-3",
    "timestamp": "2026-03-10T10:00:00Z",
}
_SIGNED: dict[str, Any] = {
    **_TRACK,
    "event": CONTRACT_SIGNED,
    "properties": {"plan": "smb", "licensed_seats": 20, "account_name": "Acme"},
}
_OTHERS: list[dict[str, Any]] = [
    {"type": "page", "userId": "u1", "name": "Home", "messageId": "m-4"},
    {"type": "alias", "userId": "u2", "previousId": "u1", "messageId": "m-5"},
    {"event": "Logged In", "properties": {"distinct_id": "mp", "time": 1773136800}},
]
_FIELDS = [
    "type", "userId", "anonymousId", "messageId", "event", "groupId", "previousId",
    "properties", "traits", "context", "integrations", "timestamp", "originalTimestamp",
    "sentAt", "receivedAt", "_source", "name", "category", "batch",
]  # fmt: skip
_TIMES = st.sampled_from(
    [
        "2026-03-10T09:00:00Z",
        "2026-03-10T10:00:00.5+02:00",
        "2026-03-10T10:00:00",
        "2026-03-20T10:00:00Z",  # beyond the allowed skew from RECEIVED
        "1969-12-31T23:59:59Z",
        "0001-01-01T00:00:00+01:00",
    ]
)
_VALUES = st.one_of(
    HOSTILE_VALUE,
    st.sampled_from([0, 1, 100, 101, 255, 256]).map(lambda n: "i" * n),  # the id limits
    st.sampled_from([" ", "\t", 0, 7, -1, True, 1.5]),
    _TIMES,
    st.sampled_from(["segment", "mixpanel", "other", "", "acme", CONTRACT_SIGNED]),
    st.sampled_from(["track", "identify", "group", "page", "screen", "alias"]),
    st.text(max_size=8),
    st.dictionaries(st.sampled_from(["groupId", "account_id", "plan"]), st.text(max_size=4)),
)


@st.composite
def _message(draw: st.DrawFn) -> dict[str, Any]:
    """A common message, mostly, with a few fields replaced, added or dropped."""
    message = dict(draw(st.sampled_from([_TRACK, _IDENTIFY, _GROUP, _SIGNED, *_OTHERS])))
    for name in draw(st.lists(st.sampled_from(_FIELDS), max_size=3)):
        if draw(st.integers(0, 4)) == 0:
            message.pop(name, None)
        else:
            message[name] = draw(_VALUES)
    return message


@st.composite
def _record(draw: st.DrawFn) -> tuple[Record, datetime]:
    """A record as the consumer is handed it: bytes (or, as backfill does, a decoded object),
    a message of its own or a batch envelope, sometimes damaged or oversized."""
    message: Any = draw(_message())
    if draw(st.integers(0, 9)) == 0:
        message = {"batch": draw(st.lists(_message(), max_size=3)), "sentAt": draw(_TIMES)}
    received_at = RECEIVED - timedelta(seconds=draw(st.integers(0, 3)))
    form = draw(st.integers(0, 19))
    if form == 0:
        return message, received_at  # already decoded
    raw = encode(message)
    if form == 1:
        raw = raw[: draw(st.integers(0, len(raw)))]  # cut short: invalid JSON (mostly)
    elif form == 2:
        raw = raw[:-1] + b',"pad":"' + b"x" * 7000 + b'"}'  # past what fits every limit
    elif form == 3:
        raw = raw[:-1] + b',"nul":"\\u0000"}'
    return raw, received_at


def _one_by_one(batch: Sequence[tuple[Record, datetime]]) -> tuple[list[Any], ...]:
    """The reference: each record through ``decode``, the common-shape read switched off."""
    events: list[Any] = []
    origins: list[tuple[int, int]] = []
    dead: list[DeadLetter] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(segment, "well_formed", lambda *args: None)
        for index, (raw, received_at) in enumerate(batch):
            for position, outcome in enumerate(decode(raw, received_at, OPTIONS)):
                if isinstance(outcome, DeadLetter):
                    dead.append(DeadLetter(index, outcome.reason, outcome.error, outcome.original))
                else:
                    events.append(outcome)
                    origins.append((index, position))
    return [vars(e) for e in events], origins, dead


def _at_once(batch: Sequence[tuple[Record, datetime]]) -> tuple[list[Any], ...]:
    decoded = decode_records(batch, OPTIONS)
    return [vars(e) for e in decoded.events], decoded.origins, decoded.dead


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(_record(), max_size=8))
def test_decoding_a_batch_gives_what_decoding_each_record_field_by_field_gives(
    batch: list[tuple[Record, datetime]],
) -> None:
    assert _at_once(batch) == _one_by_one(batch)


@pytest.mark.parametrize(
    "message",
    [
        _TRACK,
        _IDENTIFY,
        _GROUP,
        _SIGNED,
        {**_TRACK, "_source": "segment", "receivedAt": "2026-03-10T11:59:00Z"},
        {**_TRACK, "sentAt": "2026-03-10T10:05:00Z", "originalTimestamp": "2026-03-10T10:00:00Z"},
        {**_TRACK, "properties": None, "context": None},
    ],
)
def test_the_common_records_take_the_one_pass_read(message: dict[str, Any]) -> None:
    """What the consumer mostly sees (the bench's mix, and HTTP ingest's stamped records)
    is read in one pass, not through ``decode``."""
    raw = orjson.dumps(message)
    event = records._common(raw, RECEIVED, OPTIONS)
    assert event is not None
    assert _at_once([(raw, RECEIVED)]) == _one_by_one([(raw, RECEIVED)])


@pytest.mark.parametrize(
    "raw",
    [
        orjson.dumps({**_SIGNED, "properties": {"plan": "unknown"}}),  # refused: invalid_contract
        orjson.dumps({**_TRACK, "_source": "mixpanel"}),
        orjson.dumps({"batch": [_TRACK]}),
        orjson.dumps({**_TRACK, "timestamp": "yesterday"}),
        orjson.dumps(_OTHERS[0]),
        b"{not json",
    ],
)
def test_any_other_record_is_left_to_decode(raw: bytes) -> None:
    assert records._common(raw, RECEIVED, OPTIONS) is None
    assert _at_once([(raw, RECEIVED)]) == _one_by_one([(raw, RECEIVED)])
