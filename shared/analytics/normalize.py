"""Records on ``analytics.events`` → one normalised event model. Past this module the vendor
is only a field.

A record says its source by the ``_source`` marker our HTTP ingest stamps (``"segment"`` or
``"mixpanel"``, beside ``receivedAt``); a record a pipeline produced without one is known by
its shape: a Segment message has ``type`` (or Segment's user and message ids), a Mixpanel
event has ``event`` and ``properties``. Anything else is ``unknown_source``. Segment batch
envelopes are split by ``split_segment_batch`` first; each item is then one record.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shared.analytics.event import (
    MAX_ID_LENGTH,
    SOURCE_MARKER,
    USAGE_TYPES,
    InvalidMessage,
    NormalizedEvent,
    content_id,
    parse_time,
)
from shared.analytics.mixpanel import DEFAULT_GROUP_KEY, MIXPANEL, normalize_mixpanel
from shared.analytics.mixpanel_profiles import PROFILE_MARKER, normalize_profile
from shared.analytics.segment import (
    MAX_MESSAGE_BYTES,
    PAGE_VIEWED,
    SCREEN_VIEWED,
    SEGMENT,
    TYPES,
    normalize_segment,
    split_segment_batch,
)

__all__ = [
    "DEFAULT_GROUP_KEY",
    "MAX_ID_LENGTH",
    "MAX_MESSAGE_BYTES",
    "MIXPANEL",
    "PAGE_VIEWED",
    "SCREEN_VIEWED",
    "SEGMENT",
    "SOURCES",
    "TYPES",
    "USAGE_TYPES",
    "InvalidMessage",
    "NormalizedEvent",
    "content_id",
    "detect_source",
    "normalize_mixpanel",
    "normalize_record",
    "normalize_segment",
    "parse_time",
    "partition_key",
    "split_segment_batch",
]

SOURCES = (SEGMENT, MIXPANEL)


def detect_source(record: Mapping[str, Any]) -> str:
    """``"segment"`` or ``"mixpanel"``: the marker when stamped, else the record's shape."""
    marker = record.get(SOURCE_MARKER)
    if marker is not None:
        if marker not in SOURCES:
            raise InvalidMessage(
                "unknown_source", f"{SOURCE_MARKER} {str(marker)[:40]!r} is not one of {SOURCES}"
            )
        return str(marker)
    if (  # spelled out: this runs once per record
        "type" in record or "userId" in record or "anonymousId" in record or "messageId" in record
    ):
        return SEGMENT
    if "event" in record and "properties" in record:
        return MIXPANEL
    raise InvalidMessage(
        "unknown_source",
        "neither a Segment message (no 'type') nor a Mixpanel event ('event' and 'properties')",
    )


def normalize_record(
    record: Any,
    *,
    received_at: datetime,
    max_clock_skew_days: float,
    mixpanel_group_key: str = DEFAULT_GROUP_KEY,
    within_limits: bool = False,
) -> NormalizedEvent:
    """One record (a Segment message or a Mixpanel event) → ``NormalizedEvent``.

    The single entry for every path that ingests raw records (Kafka consumer, HTTP checks,
    backfill). ``received_at`` is the time of receipt when the record carries no
    ``receivedAt``; ``within_limits`` says its bytes passed ``fits_every_limit``. Raises
    ``InvalidMessage`` with the reason.
    """
    if not isinstance(record, dict):
        raise InvalidMessage("not_an_object", "a record must be a JSON object")
    if detect_source(record) == MIXPANEL:
        if PROFILE_MARKER in record:
            return normalize_profile(
                record,
                received_at=received_at,
                group_key=mixpanel_group_key,
                within_limits=within_limits,
            )
        return normalize_mixpanel(
            record,
            received_at=received_at,
            max_clock_skew_days=max_clock_skew_days,
            group_key=mixpanel_group_key,
            within_limits=within_limits,
        )
    return normalize_segment(
        record,
        received_at=received_at,
        max_clock_skew_days=max_clock_skew_days,
        within_limits=within_limits,
    )


def _key(value: Any) -> str | None:
    if isinstance(value, list):
        value = next((v for v in value if v not in (None, "")), None)
    if isinstance(value, str | int) and not isinstance(value, bool) and value != "":
        return str(value)
    return None


def partition_key(
    message: Any,
    account_property: str = "account_id",
    mixpanel_group_key: str = DEFAULT_GROUP_KEY,
) -> str | None:
    """The bus key for a raw record: its account when it names one, else its user, so one
    account's events stay ordered on one partition."""
    if not isinstance(message, dict):
        return None
    properties = message.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    try:
        source = detect_source(message)
    except InvalidMessage:
        return None
    if source == MIXPANEL:
        candidates: tuple[Any, ...] = (
            properties.get(mixpanel_group_key),
            properties.get(account_property),
            properties.get("distinct_id"),
        )
    else:
        context = message.get("context")
        context = context if isinstance(context, dict) else {}
        traits = message.get("traits")
        candidates = (
            message.get("groupId") if message.get("type") == "group" else None,
            context.get("groupId"),
            properties.get(account_property),
            traits.get(account_property) if isinstance(traits, dict) else None,
            message.get("userId"),
            message.get("anonymousId"),
        )
    return next((key for key in map(_key, candidates) if key is not None), None)
