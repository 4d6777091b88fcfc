"""Segment wire shapes → normalised events (pure, but part of the ingest path under test)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.ingest.normalize import (
    PAGE_VIEWED,
    InvalidMessage,
    NormalizedEvent,
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
