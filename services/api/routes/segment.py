"""Segment-compatible HTTP ingest: the official SDKs post here unchanged.

Wire rules from the vendor (see INGEST-FORMATS): ``/v1/batch`` and one route per call type;
write key as HTTP Basic user or body ``writeKey`` (checked when
``FIRSTVALUE_SEGMENT_WRITE_KEYS`` or ``FIRSTVALUE_RUDDERSTACK_WRITE_KEYS`` is set); 200
``{"success": true}``; 400 ``{"code", "message"}`` only for invalid JSON or oversize (32 KB
per message, 500 KB and 2,500 items per batch; 4 MB per batch for a RudderStack write key,
sent as the Basic user) — older SDKs retry forever on any other error shape. Accepted
messages are published to ``analytics.events``, one record per message stamped with
``receivedAt`` and ``_source``; the ingest consumer validates, dedupes and attributes them,
and dead-letters the ones it cannot use.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.api.dependencies import Runtime, RuntimeDep
from services.api.ingest_requests import (
    NO_BUS,
    BadEncoding,
    BodyTooLarge,
    basic_credentials,
    publish_records,
    read_body,
)
from shared.analytics.event import DELIVERY, RECEIVED_AT
from shared.analytics.normalize import split_segment_batch
from shared.config import accepts_any_key
from shared.observability.metrics import HTTP_INGESTED

MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_RUDDERSTACK_BATCH_BYTES = 4 * 1024 * 1024  # RudderStack's gateway limit per request
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
        body = await _body(request, _batch_limit(request, runtime))
        items = body.get("batch")
        if not isinstance(items, list):
            raise SegmentError(400, "invalid_request", "'batch' must be a list of messages")
        if len(items) > MAX_BATCH_ITEMS:
            raise SegmentError(
                400, "invalid_request", f"batch has {len(items)} messages (max {MAX_BATCH_ITEMS})"
            )
        for index, message in enumerate(items):
            if len(_encoded(message, f"batch[{index}]")) > MAX_MESSAGE_BYTES:
                raise SegmentError(
                    400, "invalid_request", f"batch[{index}] is over {MAX_MESSAGE_BYTES} bytes"
                )
        return await _accept(request, runtime, body, "batch", body.get("writeKey"))
    except SegmentError as exc:
        HTTP_INGESTED.labels("batch", "rejected").inc()
        return exc.response()


def _single(kind: str) -> Any:
    async def endpoint(request: Request, runtime: RuntimeDep) -> JSONResponse:
        try:
            body = await _body(request, MAX_MESSAGE_BYTES)
            _encoded(body, "the message")
            body["type"] = kind
            return await _accept(request, runtime, {"batch": [body]}, kind, body.get("writeKey"))
        except SegmentError as exc:
            HTTP_INGESTED.labels(kind, "rejected").inc()
            return exc.response()

    endpoint.__name__ = kind
    endpoint.__doc__ = f"One Segment ``{kind}`` message."
    return endpoint


for _kind in SINGLE_TYPES:
    router.add_api_route(f"/{_kind}", _single(_kind), methods=["POST"], name=f"segment_{_kind}")


async def _accept(
    request: Request, runtime: Runtime, envelope: dict[str, Any], endpoint: str, body_key: object
) -> JSONResponse:
    """Check the write key (``body_key``: the body's ``writeKey``), then publish every message
    to ``analytics.events``."""
    _check_write_key(request, runtime, body_key)
    if runtime.bus is None:
        raise SegmentError(503, "unavailable", NO_BUS)
    envelope.pop("writeKey", None)
    received_at = datetime.now(UTC)
    messages = split_segment_batch(envelope, received_at)
    for message in messages:
        if isinstance(message, dict):
            message.pop("writeKey", None)
            message[RECEIVED_AT] = received_at.isoformat()  # ours, as Segment's servers set it
            if not message.get("messageId") and message.get("timestamp") is None:
                message[DELIVERY] = uuid.uuid4().hex  # nothing identifies it: one per delivery
    try:
        await publish_records(runtime.bus, runtime.settings, messages)
    except orjson.JSONEncodeError as exc:  # a batch-level context nested too deeply
        raise SegmentError(400, "invalid_request", "the batch is nested too deeply") from exc
    HTTP_INGESTED.labels(endpoint, "accepted").inc(len(messages))
    return JSONResponse({"success": True})


def _batch_limit(request: Request, runtime: Runtime) -> int:
    """A batch's byte limit, known before its body is read: RudderStack's 4 MB for a write
    key declared a RudderStack source (its SDKs send the key as the Basic user), else
    Segment's 500 KB."""
    user = basic_credentials(request.headers.get("authorization", ""))[0]
    rudder = runtime.settings.rudderstack_write_keys
    return MAX_RUDDERSTACK_BATCH_BYTES if user is not None and user in rudder else MAX_BATCH_BYTES


def _check_write_key(request: Request, runtime: Runtime, body_key: object) -> None:
    """Either key the client sent (Basic user or body) must be a configured one."""
    settings = runtime.settings
    allowed = [*settings.segment_write_keys, *settings.rudderstack_write_keys]
    if accepts_any_key(settings, allowed):
        return
    sent = (basic_credentials(request.headers.get("authorization", ""))[0], body_key)
    if not any(isinstance(key, str) and key in allowed for key in sent):
        raise SegmentError(401, "unauthorized", "missing or unknown write key")


async def _body(request: Request, limit: int) -> dict[str, Any]:
    """The JSON object body, refused past ``limit`` bytes (also after gunzip)."""
    try:
        data = await read_body(request, limit)
    except (BodyTooLarge, BadEncoding) as exc:
        raise SegmentError(400, "invalid_request", str(exc)) from exc
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise SegmentError(400, "invalid_request", f"invalid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise SegmentError(400, "invalid_request", "the body must be a JSON object")
    return body


def _encoded(value: Any, what: str) -> bytes:
    """``value`` as JSON; JSON nested deeper than we can store is refused as invalid."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        raise SegmentError(400, "invalid_request", f"{what} is nested too deeply") from exc
