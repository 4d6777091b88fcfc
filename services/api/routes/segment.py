"""Segment-compatible HTTP ingest: the official SDKs post here unchanged.

Wire rules from the vendor (see INGEST-FORMATS): write key as HTTP Basic user or body
``writeKey``; 200 ``{"success": true}``; 400 ``{"code", "message"}`` only for invalid JSON or
oversize (32 KB per message, 500 KB and 2,500 items per batch). Accepted messages are
published raw to ``analytics.events``; the ingest consumer normalises, dedupes and attributes.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.api.dependencies import Runtime, RuntimeDep
from services.api.metrics import INGESTED
from services.ingest.normalize import partition_key, split_segment_batch
from shared.bus import topics

MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_ITEMS = 2500
SINGLE_TYPES = ("track", "identify", "group", "page", "screen", "alias")

router = APIRouter(prefix="/v1", tags=["segment ingest"])


class SegmentError(Exception):
    """An ingest failure in Segment's error shape, which the SDKs understand."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> JSONResponse:
        return JSONResponse({"code": self.code, "message": self.message}, self.status)


@router.post("/batch")
async def batch(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """``{"batch": [...], "context"?, "integrations"?, "sentAt"?, "writeKey"?}``."""
    try:
        body = await _body(request, MAX_BATCH_BYTES)
        items = body.get("batch")
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise SegmentError(400, "invalid_request", "'batch' must be a list of messages")
        if len(items) > MAX_BATCH_ITEMS:
            raise SegmentError(
                400, "invalid_request", f"batch has {len(items)} messages (max {MAX_BATCH_ITEMS})"
            )
        for index, message in enumerate(items):
            if len(orjson.dumps(message)) > MAX_MESSAGE_BYTES:
                raise SegmentError(
                    400, "invalid_request", f"batch[{index}] is over {MAX_MESSAGE_BYTES} bytes"
                )
        return await _accept(request, runtime, body, "batch")
    except SegmentError as exc:
        INGESTED.labels("batch", "rejected").inc()
        return exc.response()


def _single(kind: str) -> Any:
    async def endpoint(request: Request, runtime: RuntimeDep) -> JSONResponse:
        try:
            body = await _body(request, MAX_MESSAGE_BYTES)
            body["type"] = kind
            return await _accept(request, runtime, {"batch": [body]}, kind, body)
        except SegmentError as exc:
            INGESTED.labels(kind, "rejected").inc()
            return exc.response()

    endpoint.__name__ = kind
    endpoint.__doc__ = f"One Segment ``{kind}`` message."
    return endpoint


for _kind in SINGLE_TYPES:
    router.add_api_route(f"/{_kind}", _single(_kind), methods=["POST"], name=f"segment_{_kind}")


async def _accept(
    request: Request,
    runtime: Runtime,
    envelope: dict[str, Any],
    endpoint: str,
    keyed: dict[str, Any] | None = None,
) -> JSONResponse:
    """Check the write key, then publish every message to ``analytics.events``."""
    _check_write_key(request, runtime, (keyed or envelope).get("writeKey"))
    if runtime.bus is None:
        raise SegmentError(
            503,
            "unavailable",
            "HTTP ingest needs a bus: set FIRSTVALUE_KAFKA_BOOTSTRAP_SERVERS "
            "or use `firstvalue run`",
        )
    envelope.pop("writeKey", None)
    messages = split_segment_batch(envelope, datetime.now(UTC))
    for message in messages:
        message.pop("writeKey", None)
    account_property = runtime.settings.account_property
    await runtime.bus.publish_many(
        topics.EVENTS,
        [(partition_key(m, account_property), orjson.dumps(m)) for m in messages],
    )
    INGESTED.labels(endpoint, "accepted").inc(len(messages))
    return JSONResponse({"success": True})


def _check_write_key(request: Request, runtime: Runtime, body_key: object) -> None:
    allowed = runtime.settings.segment_write_keys
    if not allowed:
        return  # embedded/dev mode: any write key
    key = _basic_user(request.headers.get("authorization", "")) or body_key
    if not isinstance(key, str) or key not in allowed:
        raise SegmentError(401, "unauthorized", "missing or unknown write key")


def _basic_user(header: str) -> str | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None


async def _body(request: Request, limit: int) -> dict[str, Any]:
    """The JSON object body, refused past ``limit`` bytes (also after gunzip)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _oversize(limit)
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise _oversize(limit)
    data = bytes(raw)
    if request.headers.get("content-encoding", "").lower() == "gzip":
        data = _gunzip(data, limit)
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise SegmentError(400, "invalid_request", f"invalid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise SegmentError(400, "invalid_request", "the body must be a JSON object")
    return body


def _gunzip(data: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise SegmentError(400, "invalid_request", f"invalid gzip body: {exc}") from exc
    if len(out) > limit:
        raise _oversize(limit)
    return out


def _oversize(limit: int) -> SegmentError:
    return SegmentError(400, "invalid_request", f"request body is over {limit // 1024} KB")
