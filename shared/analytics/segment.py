"""Segment messages (track, identify, group, page, screen, alias, and batch envelopes) →
``NormalizedEvent``.

Clock-skew correction follows Segment: ``timestamp = receivedAt − (sentAt − client time)``,
so a client whose clock is off still lands on the server's timeline. The client time is
``originalTimestamp`` when present (Segment exports carry it beside the corrected
``timestamp``), else ``timestamp``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from shared.analytics.event import (
    MAX_ID_LENGTH,
    RECEIVED_AT,
    SOURCE_MARKER,
    InvalidMessage,
    NormalizedEvent,
    checked_message,
    content_id,
    corrected_time,
    event_name,
    identifier,
    json_object,
    parse_time,
    received_time,
)

SEGMENT = "segment"
TYPES = frozenset({"track", "identify", "group", "page", "screen", "alias"})
PAGE_VIEWED = "Page Viewed"
SCREEN_VIEWED = "Screen Viewed"
MAX_MESSAGE_BYTES = 32 * 1024  # Segment's per-message limit
MAX_MESSAGE_ID_LENGTH = 100  # Segment's messageId limit


def normalize_segment(
    message: Any,
    *,
    received_at: datetime,
    max_clock_skew_days: float,
    within_limits: bool = False,
) -> NormalizedEvent:
    """One Segment message → ``NormalizedEvent``; raises ``InvalidMessage`` with the reason.
    ``within_limits``: its bytes passed ``fits_every_limit`` (no size check needed)."""
    message = checked_message(
        message, "a Segment message", MAX_MESSAGE_BYTES, within_limits=within_limits
    )
    kind = message.get("type")
    if kind not in TYPES:
        shown = "missing" if kind is None else repr(kind)[:40]
        raise InvalidMessage("unsupported_type", f"message type is {shown}", "type")
    if (event := well_formed(message, received_at, max_clock_skew_days)) is not None:
        return event
    user_id = identifier(message, "userId", "invalid_user") or identifier(
        message, "anonymousId", "invalid_user"
    )
    if user_id is None:
        raise InvalidMessage("missing_user", "userId or anonymousId is required", "userId")
    properties = json_object(message, "properties")
    traits = json_object(message, "traits")
    context = json_object(message, "context")
    json_object(message, "integrations")
    message_id = identifier(
        message, "messageId", "invalid_message_id", max_length=MAX_MESSAGE_ID_LENGTH,
        numbers=False,
    )  # fmt: skip
    group_id = identifier(message, "groupId", "invalid_group_id")
    if kind == "group" and group_id is None:
        raise InvalidMessage("missing_group_id", "a group call needs a groupId", "groupId")
    previous_id = identifier(message, "previousId", "invalid_previous_id")
    if kind == "alias" and previous_id is None:
        raise InvalidMessage(
            "missing_previous_id", "an alias call needs a previousId", "previousId"
        )
    name = _name(kind, message, properties)
    received_at = received_time(message, received_at)
    return NormalizedEvent(
        id=message_id or content_id(message, _unless_timed(message, received_at)),
        source=SEGMENT,
        type=kind,
        user_id=user_id,
        name=name,
        at=_event_time(message, received_at, max_clock_skew_days),
        received_at=received_at,
        properties=properties,
        traits=traits,
        group_id=group_id,
        context_group_id=identifier(context, "groupId", "invalid_group_id", path="context.groupId"),
        previous_id=previous_id,
    )


def _unless_timed(message: Mapping[str, Any], received_at: datetime) -> datetime | None:
    """``received_at`` for a message that carries no client time (see ``content_id``)."""
    timed = message.get("originalTimestamp") is not None or message.get("timestamp") is not None
    return None if timed else received_at


def well_formed(
    message: dict[str, Any], received_at: datetime, max_clock_skew_days: float
) -> NormalizedEvent | None:
    """The common shape (a track, identify or group call whose ids are strings and whose
    objects are objects) read in one pass; None sends anything else through the field by
    field checks of ``normalize_segment``, which then report the first problem exactly as
    they always do. Only the times can raise, after every shape check has passed (as the
    field checks would raise them too). Its own ``type`` check makes it safe to call on any
    object of Segment's shape: the consumer reads its common records with it directly."""
    get = message.get
    kind = get("type")
    if kind == "track":
        name = get("event")
        if not (name.__class__ is str and len(name) <= MAX_ID_LENGTH and name.strip()):
            return None
    elif kind == "identify" or kind == "group":
        if get("name") is not None or get("category") is not None:
            return None
        name = None
    else:
        return None
    user_id = get("userId")
    message_id = get("messageId")
    group_id = get("groupId")
    properties = get("properties")
    traits = get("traits")
    context = get("context")
    integrations = get("integrations")
    if context is None:
        context_group_id = None
    elif context.__class__ is dict:
        context_group_id = context.get("groupId")
    else:
        return None
    # spelled out (no helper calls): this runs once per record
    if not (
        user_id.__class__ is str
        and 0 < len(user_id) <= MAX_ID_LENGTH
        and message_id.__class__ is str
        and 0 < len(message_id) <= MAX_MESSAGE_ID_LENGTH
        and (
            group_id.__class__ is str and 0 < len(group_id) <= MAX_ID_LENGTH
            if group_id is not None
            else kind != "group"
        )
        and (
            context_group_id is None
            or (context_group_id.__class__ is str and 0 < len(context_group_id) <= MAX_ID_LENGTH)
        )
        and (properties is None or properties.__class__ is dict)
        and (traits is None or traits.__class__ is dict)
        and (integrations is None or integrations.__class__ is dict)
        and get("previousId") is None
    ):
        return None
    if (stamped := get(RECEIVED_AT)) is not None:  # ``received_time``, inline
        received_at = parse_time(stamped, RECEIVED_AT)
    return NormalizedEvent(
        message_id,
        SEGMENT,
        kind,
        user_id,
        name,
        _event_time(message, received_at, max_clock_skew_days),
        received_at,
        {} if properties is None else properties,
        {} if traits is None else traits,
        group_id,
        context_group_id,
        None,
    )


def _event_time(
    message: Mapping[str, Any], received_at: datetime, max_skew_days: float
) -> datetime:
    client_field = "originalTimestamp"
    client = message.get(client_field)
    if client is None:
        client_field = "timestamp"
        client = message.get(client_field)
    sent = message.get("sentAt")
    sent_at = None if sent is None else parse_time(sent, "sentAt")
    if client is None:
        return received_at
    return corrected_time(
        parse_time(client, client_field),
        sent_at,
        received_at,
        max_skew_days,
        client_field,
    )


def _name(kind: str, message: Mapping[str, Any], properties: dict[str, Any]) -> str | None:
    if kind == "track":
        return event_name(message.get("event"), "event")
    for key in ("name", "category"):
        value = message.get(key)
        if value is not None and not isinstance(value, str):
            raise InvalidMessage(f"invalid_{key}", f"{key} must be a string", key)
    if kind in ("page", "screen"):
        if message.get("name"):
            properties.setdefault("name", message["name"])
        return PAGE_VIEWED if kind == "page" else SCREEN_VIEWED
    return None


def split_segment_batch(body: Any, received_at: datetime) -> list[Any]:
    """A ``/v1/batch`` body → its messages, each complete on its own.

    Batch-level ``context`` and ``integrations`` merge under each item's own, a batch
    ``sentAt`` applies to items without one, and ``receivedAt`` and the source marker are
    stamped so that the consumer can correct clock skew and knows the shape. Items that are
    not objects are passed through, for the consumer to dead-letter with their reason.
    """
    if not isinstance(body, dict) or not isinstance(body.get("batch"), list):
        raise InvalidMessage("invalid_batch", "a batch body needs a 'batch' list", "batch")
    shared_context = body.get("context") if isinstance(body.get("context"), dict) else {}
    integrations = body.get("integrations") if isinstance(body.get("integrations"), dict) else {}
    stamped = received_at.astimezone(UTC).isoformat()
    items: list[Any] = []
    for item in body["batch"]:
        if not isinstance(item, dict):
            items.append(item)
            continue
        merged = dict(item)
        for key, batch_level in (("context", shared_context), ("integrations", integrations)):
            own = item.get(key)
            if batch_level and (own is None or isinstance(own, dict)):
                merged[key] = {**batch_level, **(own or {})}
        if merged.get("sentAt") is None and body.get("sentAt") is not None:
            merged["sentAt"] = body["sentAt"]
        merged.setdefault(RECEIVED_AT, stamped)
        merged[SOURCE_MARKER] = SEGMENT  # a batch envelope is Segment by definition
        items.append(merged)
    return items
