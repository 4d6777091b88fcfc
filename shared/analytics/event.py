"""The one event model both vendors normalise into, and the field checks they share.

Every check raises ``InvalidMessage`` with a short ``reason`` (the DLQ and metrics label),
a sentence for the person reading the dead letter, and the offending ``field``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

USAGE_TYPES = frozenset({"track", "page", "screen"})  # stored as usage events
MAX_ID_LENGTH = 255  # the storage id columns
SOURCE_MARKER = "_source"  # stamped by HTTP ingest: which vendor's shape a record has
RECEIVED_AT = "receivedAt"  # stamped by HTTP ingest (and present in Segment exports)
DELIVERY = "_delivery"  # stamped by HTTP ingest on a message with neither client id nor time
_VOLATILE = ("sentAt", RECEIVED_AT, "writeKey", SOURCE_MARKER)  # differ between retries
# Event times outside this window are refused (``out_of_range``): earlier than any product
# analytics, or so far out that date arithmetic (skew correction, windows) would overflow.
EARLIEST_EVENT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(9000, 1, 1, tzinfo=UTC)  # receipt times too (``receivedAt``)


class InvalidMessage(ValueError):
    """A message that cannot be ingested; ``reason`` is a short code for the DLQ and metrics,
    ``field`` the path of the offending field when there is one (Mixpanel's failed_records)."""

    def __init__(self, reason: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.field = field


@dataclass(frozen=True, init=False)
class NormalizedEvent:
    """One vendor message in vendor-neutral form.

    ``user_id``: Segment userId (else anonymousId) or Mixpanel distinct_id.
    ``context_group_id``: the account the message names itself — Segment ``context.groupId``
    or the Mixpanel group key property.
    """

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
    context_group_id: str | None = None  # the account named by the message itself
    previous_id: str | None = None  # alias calls

    def __init__(
        self,
        id: str,
        source: str,
        type: str,
        user_id: str,
        name: str | None,
        at: datetime,
        received_at: datetime,
        properties: Mapping[str, Any] | None = None,
        traits: Mapping[str, Any] | None = None,
        group_id: str | None = None,
        context_group_id: str | None = None,
        previous_id: str | None = None,
    ) -> None:
        # One per ingested message: a single dict update instead of the frozen dataclass's
        # twelve object.__setattr__ calls (the instance stays frozen to attribute writes).
        self.__dict__.update(
            id=id,
            source=source,
            type=type,
            user_id=user_id,
            name=name,
            at=at,
            received_at=received_at,
            properties={} if properties is None else properties,
            traits={} if traits is None else traits,
            group_id=group_id,
            context_group_id=context_group_id,
            previous_id=previous_id,
        )


def parse_time(value: Any, field_name: str) -> datetime:
    """ISO-8601 → aware UTC datetime (no offset means UTC), within ``EARLIEST_EVENT`` and
    ``LATEST_TIME``: a time near year 1 or 9999 cannot be shifted to UTC or skew-corrected."""
    if value.__class__ is not str:
        raise InvalidMessage(
            "invalid_timestamp", f"{field_name} must be an ISO-8601 string", field_name
        )
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as error:
        raise InvalidMessage(
            "invalid_timestamp", f"{field_name} {value[:64]!r} is not ISO-8601", field_name
        ) from error
    tz = parsed.tzinfo
    if tz is not UTC:  # the common case (a UTC time) needs no copy
        try:
            parsed = parsed.replace(tzinfo=UTC) if tz is None else parsed.astimezone(UTC)
        except OverflowError as error:
            raise out_of_range(field_name, value[:64]) from error
    if EARLIEST_EVENT <= parsed < LATEST_TIME:
        return parsed
    raise out_of_range(field_name, value[:64])


def out_of_range(field_name: str, value: object) -> InvalidMessage:
    """The refusal of a time (or number) outside what firstvalue can store or compute with."""
    return InvalidMessage(
        "out_of_range",
        f"{field_name} {value!r} is outside {EARLIEST_EVENT.year}-{LATEST_TIME.year - 1}",
        field_name,
    )


def corrected_time(
    client: datetime, sent: datetime | None, received_at: datetime, max_skew_days: float, name: str
) -> datetime:
    """Segment's clock-skew correction (``receivedAt − (sentAt − client time)``), then the
    window: not before ``EARLIEST_EVENT``, not more than ``max_skew_days`` after receipt."""
    at = client
    if sent is not None:
        try:
            at = received_at - (sent - client)
        except OverflowError as error:
            raise out_of_range(name, client.isoformat()) from error
    if at < EARLIEST_EVENT:
        raise out_of_range(name, at.isoformat())
    if at > received_at and at - received_at > (max_skew := timedelta(days=max_skew_days)):
        raise InvalidMessage(
            "timestamp_in_future",
            f"{name} {at.isoformat()} is more than {max_skew.days} days after receipt",
            name,
        )
    return at


def identifier(
    message: Mapping[str, Any],
    key: str,
    reason: str,
    *,
    max_length: int = MAX_ID_LENGTH,
    numbers: bool = True,
    path: str | None = None,
) -> str | None:
    """An id field: a string (or an integer when ``numbers``), at most ``max_length`` long;
    None when absent, null or empty."""
    value = message.get(key)
    if value.__class__ is str and 0 < len(value) <= max_length:  # the common case first
        return value
    if value is None or value == "":
        return None
    allowed = (str, int) if numbers else (str,)
    if isinstance(value, bool) or not isinstance(value, allowed):
        kind = "a string or an integer" if numbers else "a string"
        raise InvalidMessage(reason, f"{path or key} must be {kind}", path or key)
    text = str(value)
    if len(text) > max_length:
        raise InvalidMessage(
            reason, f"{path or key} is longer than {max_length} characters", path or key
        )
    return text


def json_object(message: Mapping[str, Any], key: str, path: str | None = None) -> dict[str, Any]:
    """An object field (``{}`` when absent or null)."""
    value = message.get(key)
    if value.__class__ is dict:
        return value
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidMessage(f"invalid_{key}", f"{path or key} must be an object", path or key)
    return value


def event_name(value: Any, path: str) -> str:
    """A usage event's name: a non-blank string that fits the name column."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidMessage("missing_event", f"{path} (the event name) is required", path)
    if not isinstance(value, str):
        raise InvalidMessage("invalid_event", f"{path} must be a string", path)
    if len(value) > MAX_ID_LENGTH:
        raise InvalidMessage(
            "invalid_event", f"{path} is longer than {MAX_ID_LENGTH} characters", path
        )
    return value


def checked_size(message: Mapping[str, Any], limit: int) -> None:
    """Refuse messages over the vendor's size limit, nested too deep to store (orjson encodes
    255 levels), or holding NUL characters (PostgreSQL's JSON cannot)."""
    try:
        encoded = orjson.dumps(message)
    except orjson.JSONEncodeError as error:  # nesting deeper than JSON encoders allow
        raise InvalidMessage("too_deep", f"message cannot be re-encoded: {error}") from error
    if len(encoded) > limit:
        raise InvalidMessage("too_large", f"message is larger than {limit} bytes")
    if b"\\u0000" in encoded:
        raise InvalidMessage("nul_character", "message contains a NUL character")


def checked_message(message: Any, what: str, limit: int, *, within_limits: bool) -> dict[str, Any]:
    """``message`` once it is a JSON object (``what`` names it in the refusal) that passes
    ``checked_size`` under ``limit``; ``within_limits``: its bytes passed ``fits_every_limit``
    (no size check needed)."""
    if not isinstance(message, dict):
        raise InvalidMessage("not_an_object", f"{what} must be a JSON object")
    if not within_limits:
        checked_size(message, limit)
    return message


SIZE_CHECK_FREE_BYTES = 6 * 1024  # see fits_every_limit
_MAX_NESTING = 255  # orjson encodes this many levels


def fits_every_limit(raw: bytes) -> bool:
    """Whether a record's JSON bytes certainly pass ``checked_size`` under every vendor's
    limit, seen from the bytes alone (the consumer then skips re-encoding the record).

    Re-encoding never grows a JSON text more than 4.5× (a float such as ``1e15`` is
    printed in full; every other token keeps or shrinks its length), so 6 KiB stays under
    Segment's 32 KiB; a NUL can only be written ``\\u0000``; and a value nests no deeper
    than its number of opening brackets (which a text shorter than twice the limit cannot
    reach: every bracket is closed).
    """
    size = len(raw)
    return (
        size <= SIZE_CHECK_FREE_BYTES
        and b"\\u0000" not in raw
        and (size < 2 * _MAX_NESTING or raw.count(b"{") + raw.count(b"[") < _MAX_NESTING)
    )


def received_time(message: Mapping[str, Any], default: datetime) -> datetime:
    """``receivedAt`` stamped by our HTTP ingest or present in an export, else ``default``."""
    if message.get(RECEIVED_AT) is None:
        return default
    return parse_time(message[RECEIVED_AT], RECEIVED_AT)


def content_id(message: Mapping[str, Any], received_at: datetime | None = None) -> str:
    """A dedupe key for a message without its own id: the hash of what the client sent
    (fields that differ between retries of one message left out). A message without a
    client time gives its ``received_at`` too: only content and client time together
    identify an event, so without a time each delivery is an event of its own."""
    stable = {k: v for k, v in message.items() if k not in _VOLATILE}
    if received_at is not None:
        stable[RECEIVED_AT] = received_at.isoformat()
    digest = hashlib.sha256(orjson.dumps(stable, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"sha256:{digest}"
