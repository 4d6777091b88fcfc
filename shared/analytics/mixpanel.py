"""Mixpanel events (the ``/track`` and ``/import`` shape) → ``NormalizedEvent``.

``{"event": name, "properties": {"distinct_id", "time" (seconds or ms), "$insert_id",
"token"?, <group key>?, ...}}``. The id follows Mixpanel's dedupe rule: events with the same
``event``, ``distinct_id``, ``time`` and ``$insert_id`` are one event; without
``$insert_id`` the content and the client's ``time`` identify it; without ``time`` either,
each delivery is an event of its own at its receipt time, as Mixpanel counts it. The
configured group key property (e.g. ``company_id``: a string or a list) names the account
directly. ``$create_alias`` (the SDK's ``alias``) and ``$identify`` become alias calls,
tying the new id to the known one.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.analytics.event import (
    InvalidMessage,
    NormalizedEvent,
    checked_message,
    content_id,
    event_name,
    identifier,
    received_time,
)

MIXPANEL = "mixpanel"
DEFAULT_GROUP_KEY = "company_id"
MAX_EVENT_BYTES = 1024 * 1024  # Mixpanel's per-event limit
INSERT_ID = re.compile(r"[A-Za-z0-9-]{1,36}")
EARLIEST = datetime(1971, 1, 1, tzinfo=UTC)  # Mixpanel refuses anything older
MS_THRESHOLD = 1e11  # larger epoch values are milliseconds (1e11 s is the year 5138)
# distinct_id values Mixpanel refuses as placeholders for "no user"
PLACEHOLDER_IDS = frozenset(
    {"anon", "anonymous", "nil", "none", "null", "n/a", "na", "undefined", "unknown",
     "00000000-0000-0000-0000-000000000000", "<nil>", "[]", "{}"}
)  # fmt: skip
MAPPED = ("token", "distinct_id", "time", "$insert_id")  # become fields, not properties
ALIAS_EVENTS = {"$create_alias": "alias", "$identify": "$anon_id"}  # → the previous id


def normalize_mixpanel(
    message: Any,
    *,
    received_at: datetime,
    max_clock_skew_days: float,
    group_key: str = DEFAULT_GROUP_KEY,
    within_limits: bool = False,
) -> NormalizedEvent:
    """One Mixpanel event → ``NormalizedEvent``; raises ``InvalidMessage`` with the reason.
    ``within_limits``: its bytes passed ``fits_every_limit`` (no size check needed)."""
    message = checked_message(
        message, "a Mixpanel event", MAX_EVENT_BYTES, within_limits=within_limits
    )
    name = event_name(message.get("event"), "event")
    properties = message.get("properties")
    if not isinstance(properties, dict):
        raise InvalidMessage("invalid_properties", "properties must be an object", "properties")
    user_id = _distinct_id(properties)
    identifier(properties, "token", "invalid_token", numbers=False, path="properties.token")
    insert_id = _insert_id(properties)
    received_at = received_time(message, received_at)
    at = _time(properties, received_at, timedelta(days=max_clock_skew_days))
    event_id = (
        _event_id(name, user_id, properties.get("time"), insert_id)
        if insert_id
        else content_id(message, received_at if properties.get("time") is None else None)
    )
    kind, previous_id = "track", None
    usage_name: str | None = name
    if name in ALIAS_EVENTS:
        previous_id, user_id = user_id, _alias_target(properties, ALIAS_EVENTS[name])
        kind, usage_name = "alias", None
    return NormalizedEvent(
        id=event_id,
        source=MIXPANEL,
        type=kind,
        user_id=user_id,
        name=usage_name,
        at=at,
        received_at=received_at,
        properties={k: v for k, v in properties.items() if k not in MAPPED},
        context_group_id=group_account(properties, group_key),
        previous_id=previous_id,
    )


def group_account(properties: Mapping[str, Any], group_key: str) -> str | None:
    """The account the group key names: its value, or the first of a list of them."""
    value = properties.get(group_key)
    path = f"properties.{group_key}"
    values = value if isinstance(value, list) else [value]
    for item in values:
        if item is None or item == "":
            continue
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise InvalidMessage(
                "invalid_group_key", f"{path} must be a string or a list of strings", path
            )
        text = str(item).strip()
        if len(text) > 255:
            raise InvalidMessage("invalid_group_key", f"{path} is too long", path)
        if text:
            return text
    return None


def _distinct_id(properties: Mapping[str, Any]) -> str:
    user_id = identifier(properties, "distinct_id", "invalid_user", path="properties.distinct_id")
    if user_id is None:
        raise InvalidMessage(
            "missing_user", "properties.distinct_id is required", "properties.distinct_id"
        )
    if user_id.strip().lower() in PLACEHOLDER_IDS:
        raise InvalidMessage(
            "invalid_user",
            f"properties.distinct_id {user_id!r} is a placeholder, not a user",
            "properties.distinct_id",
        )
    return user_id


def _alias_target(properties: Mapping[str, Any], key: str) -> str:
    path = f"properties.{key}"
    target = identifier(properties, key, "invalid_previous_id", path=path)
    if target is None:
        raise InvalidMessage("missing_previous_id", f"{path} is required", path)
    return target


def _insert_id(properties: Mapping[str, Any]) -> str | None:
    value = properties.get("$insert_id")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not INSERT_ID.fullmatch(value):
        raise InvalidMessage(
            "invalid_insert_id",
            "properties.$insert_id must be at most 36 characters of A-Z, a-z, 0-9 and -",
            "properties.$insert_id",
        )
    return value


def _epoch_seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidMessage(
            "invalid_timestamp",
            "properties.time must be a number: seconds or milliseconds since the epoch",
            "properties.time",
        )
    return value / 1000 if value >= MS_THRESHOLD else float(value)


def _time(properties: Mapping[str, Any], received_at: datetime, max_skew: timedelta) -> datetime:
    seconds = _epoch_seconds(properties.get("time"))
    if seconds is None:
        return received_at  # /track without time: the time of receipt, as Mixpanel does
    if seconds < EARLIEST.timestamp():
        raise InvalidMessage(
            "invalid_timestamp", "properties.time is before 1971-01-01", "properties.time"
        )
    if seconds > (received_at + max_skew).timestamp():
        raise InvalidMessage(
            "timestamp_in_future",
            f"properties.time {seconds:.0f} is more than {max_skew.days} days after receipt",
            "properties.time",
        )
    return datetime.fromtimestamp(seconds, UTC)


def _event_id(event: str, distinct_id: str, time: Any, insert_id: str) -> str:
    """Mixpanel's dedupe key: event, distinct_id, time (to the millisecond) and $insert_id."""
    seconds = _epoch_seconds(time)
    millis = "" if seconds is None else str(round(seconds * 1000))
    key = "\x1f".join((event, distinct_id, millis, insert_id))
    return "mp:" + hashlib.sha256(key.encode()).hexdigest()
