"""Segment wire messages → one normalised event model. Past this module the vendor is a field.

Clock-skew correction follows Segment: ``timestamp = receivedAt − (sentAt − timestamp)``, so
a client whose clock is off still lands on the server's timeline.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

SEGMENT = "segment"
TYPES = frozenset({"track", "identify", "group", "page", "screen", "alias"})
USAGE_TYPES = frozenset({"track", "page", "screen"})  # stored as usage events
PAGE_VIEWED = "Page Viewed"
SCREEN_VIEWED = "Screen Viewed"
MAX_MESSAGE_BYTES = 32 * 1024  # Segment's per-message limit
MAX_ID_LENGTH = 255
_VOLATILE = ("sentAt", "receivedAt", "writeKey")  # differ between retries of one message


class InvalidMessage(ValueError):
    """A message that cannot be ingested; ``reason`` is a short code for the DLQ and metrics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class NormalizedEvent:
    """One vendor message in vendor-neutral form (``user_id``: userId, else anonymousId)."""

    id: str
    source: str
    type: str
    user_id: str
    name: str | None  # the usage event's name; None for identify, group and alias
    at: datetime  # event time, clock-skew corrected
    received_at: datetime
    properties: Mapping[str, Any] = field(default_factory=dict, compare=False)
    traits: Mapping[str, Any] = field(default_factory=dict, compare=False)
    group_id: str | None = None  # group calls
    context_group_id: str | None = None  # context.groupId on any call
    previous_id: str | None = None  # alias calls


def parse_time(value: Any, field_name: str) -> datetime:
    """ISO-8601 → aware UTC datetime (no offset means UTC)."""
    if not isinstance(value, str):
        raise InvalidMessage("invalid_timestamp", f"{field_name} must be an ISO-8601 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as error:
        raise InvalidMessage(
            "invalid_timestamp", f"{field_name} {value!r} is not ISO-8601"
        ) from error
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _identifier(message: Mapping[str, Any], key: str, reason: str) -> str | None:
    value = message.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidMessage(reason, f"{key} must be a string")
    text = str(value)
    if len(text) > MAX_ID_LENGTH:
        raise InvalidMessage(reason, f"{key} is longer than {MAX_ID_LENGTH} characters")
    return text


def _object(message: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = message.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidMessage(f"invalid_{key}", f"{key} must be an object")
    return value


def _event_time(message: Mapping[str, Any], received_at: datetime, max_skew: timedelta) -> datetime:
    if message.get("timestamp") is None:
        return received_at
    at = parse_time(message["timestamp"], "timestamp")
    if message.get("sentAt") is not None:
        at = received_at - (parse_time(message["sentAt"], "sentAt") - at)
    if at > received_at + max_skew:
        raise InvalidMessage(
            "timestamp_in_future",
            f"timestamp {at.isoformat()} is more than {max_skew.days} days after receipt",
        )
    return at


def content_id(message: Mapping[str, Any]) -> str:
    """A dedupe key for a message without ``messageId``: the hash of what the client sent."""
    stable = {k: v for k, v in message.items() if k not in _VOLATILE}
    digest = hashlib.sha256(orjson.dumps(stable, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"sha256:{digest}"


def normalize_segment(
    message: Any, *, received_at: datetime, max_clock_skew_days: float
) -> NormalizedEvent:
    """One Segment message (track, identify, group, page, screen, alias) → ``NormalizedEvent``.

    Raises ``InvalidMessage`` with the reason when the message cannot be used.
    """
    if not isinstance(message, dict):
        raise InvalidMessage("not_an_object", "a Segment message must be a JSON object")
    encoded = orjson.dumps(message)
    if len(encoded) > MAX_MESSAGE_BYTES:
        raise InvalidMessage("too_large", f"message is larger than {MAX_MESSAGE_BYTES} bytes")
    if b"\\u0000" in encoded:
        raise InvalidMessage("nul_character", "message contains a NUL character")
    kind = message.get("type")
    if kind not in TYPES:
        raise InvalidMessage("unsupported_type", f"unsupported message type {kind!r}")
    user_id = _identifier(message, "userId", "invalid_user") or _identifier(
        message, "anonymousId", "invalid_user"
    )
    if user_id is None:
        raise InvalidMessage("missing_user", "userId or anonymousId is required")
    properties = _object(message, "properties")
    traits = _object(message, "traits")
    context = _object(message, "context")
    name = _name(kind, message, properties)
    group_id = _identifier(message, "groupId", "invalid_group_id")
    if kind == "group" and group_id is None:
        raise InvalidMessage("missing_group_id", "a group call needs a groupId")
    if message.get("receivedAt") is not None:  # stamped by our HTTP ingest or an export
        received_at = parse_time(message["receivedAt"], "receivedAt")
    previous_id = _identifier(message, "previousId", "invalid_previous_id")
    if kind == "alias" and previous_id is None:
        raise InvalidMessage("missing_previous_id", "an alias call needs a previousId")
    return NormalizedEvent(
        id=_identifier(message, "messageId", "invalid_message_id") or content_id(message),
        source=SEGMENT,
        type=kind,
        user_id=user_id,
        name=name,
        at=_event_time(message, received_at, timedelta(days=max_clock_skew_days)),
        received_at=received_at,
        properties=properties,
        traits=traits,
        group_id=group_id,
        context_group_id=_identifier(context, "groupId", "invalid_group_id"),
        previous_id=previous_id,
    )


def _name(kind: str, message: Mapping[str, Any], properties: dict[str, Any]) -> str | None:
    if kind == "track":
        event = message.get("event")
        if not isinstance(event, str) or not event.strip():
            raise InvalidMessage("missing_event", "a track call needs an event name")
        if len(event) > MAX_ID_LENGTH:
            raise InvalidMessage("invalid_event", "event name is too long")
        return event
    if kind in ("page", "screen"):
        page = message.get("name")
        if isinstance(page, str) and page:
            properties.setdefault("name", page)
        return PAGE_VIEWED if kind == "page" else SCREEN_VIEWED
    return None


def split_segment_batch(body: Any, received_at: datetime) -> list[dict[str, Any]]:
    """A ``/v1/batch`` body → its messages, each complete on its own.

    Batch-level ``context`` and ``integrations`` merge under each item's own, a batch
    ``sentAt`` applies to items without one, and ``receivedAt`` is stamped so that the
    consumer can correct clock skew later.
    """
    if not isinstance(body, dict) or not isinstance(body.get("batch"), list):
        raise InvalidMessage("invalid_batch", "a batch body needs a 'batch' list")
    shared_context = body.get("context") if isinstance(body.get("context"), dict) else {}
    integrations = body.get("integrations") if isinstance(body.get("integrations"), dict) else {}
    stamped = received_at.astimezone(UTC).isoformat()
    items = []
    for item in body["batch"]:
        if not isinstance(item, dict):
            items.append(item)  # left for normalize to reject with its reason
            continue
        merged = dict(item)
        for key, batch_level in (("context", shared_context), ("integrations", integrations)):
            own = item.get(key)
            if batch_level and (own is None or isinstance(own, dict)):
                merged[key] = {**batch_level, **(own or {})}
        if merged.get("sentAt") is None and body.get("sentAt") is not None:
            merged["sentAt"] = body["sentAt"]
        merged.setdefault("receivedAt", stamped)
        items.append(merged)
    return items


def partition_key(message: Any, account_property: str = "account_id") -> str | None:
    """The bus key for a raw message: its account when it names one, else its user."""
    if not isinstance(message, dict):
        return None
    context = message.get("context")
    context = context if isinstance(context, dict) else {}
    properties = message.get("properties")
    traits = message.get("traits")
    candidates = (
        message.get("groupId") if message.get("type") == "group" else None,
        context.get("groupId"),
        properties.get(account_property) if isinstance(properties, dict) else None,
        traits.get(account_property) if isinstance(traits, dict) else None,
        message.get("userId"),
        message.get("anonymousId"),
    )
    for candidate in candidates:
        if isinstance(candidate, str | int) and not isinstance(candidate, bool) and candidate != "":
            return str(candidate)
    return None
