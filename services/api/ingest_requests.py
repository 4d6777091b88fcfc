"""What the vendor-compatible ingest routes (Segment, Mixpanel) read from a request: the body,
with a size limit, gunzipped when the client says so and never buffered past the limit (a
client cannot make the API hold more than ``limit`` bytes of one request); and HTTP Basic
credentials, which both vendors use for keys; and the one way both publish what they accept."""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import Request

from shared.analytics.normalize import partition_key
from shared.bus import topics
from shared.bus.bus import Bus
from shared.config import Settings

NO_BUS = "HTTP ingest needs a bus: set FIRSTVALUE_KAFKA_BOOTSTRAP_SERVERS or use `firstvalue run`"


class BodyTooLarge(ValueError):
    """The body (as sent, or once gunzipped) is over the route's limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is over {_size(limit)}")
        self.limit = limit


class BadEncoding(ValueError):
    """``Content-Encoding: gzip`` with a body that is not gzip."""


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, at most ``limit`` bytes before and after gunzip."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise BodyTooLarge(limit)
    if request.headers.get("content-encoding", "").strip().lower() == "gzip":
        return gunzip(bytes(raw), limit)
    return bytes(raw)


def gunzip(data: bytes, limit: int) -> bytes:
    """Inflate a gzip body, stopping one byte past ``limit`` (no gzip bombs)."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise BadEncoding(f"invalid gzip body: {exc}") from exc
    if len(out) > limit:
        raise BodyTooLarge(limit)
    return out


def basic_credentials(header: str) -> tuple[str | None, str]:
    """(user, password) of an HTTP Basic ``Authorization`` header; (None, "") otherwise."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None, ""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, ""
    user, _, password = decoded.partition(":")
    return user or None, password


async def publish_records(bus: Bus, settings: Settings, records: Sequence[Any]) -> None:
    """Publish raw records to ``analytics.events`` keyed by account (else user), exactly as a
    product pipeline producing to Kafka would; the ingest consumer takes it from there.

    Every record is encoded before any is published, so a record orjson cannot encode (nested
    too deeply) raises ``orjson.JSONEncodeError`` and nothing of the request is published."""
    items = [
        (
            partition_key(record, settings.account_property, settings.mixpanel_group_key),
            record if isinstance(record, bytes) else orjson.dumps(record),
        )
        for record in records
    ]
    await bus.publish_many(topics.EVENTS, items)
