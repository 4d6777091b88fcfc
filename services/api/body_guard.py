"""ASGI middleware: a REST request's body is bounded, and its sender identified, before a
byte of the body is read.

FastAPI reads and parses the whole body before any dependency runs, so without this a
client with no key could make the API hold hundreds of megabytes just to be told 401. Here
a request with a body is refused 401 on its headers alone when its key is missing or
unknown, 413 when its ``Content-Length`` is over the limit, and 413 as soon as a streamed
(chunked) body passes the limit; only then is the body (at most the limit) handed on. The
key found is left on the request, so the route checks its scope without a second lookup.

It guards the routes that take an API key (the REST routes; ``app._keyed_routes``). The
vendor ingest routes are left alone: they authenticate with the vendors' own write keys and
bound their bodies themselves, before and after gunzip (``ingest_requests``); no other route
reads a body.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.auth import IDENTIFIED, identify, token_of
from services.api.dependencies import Runtime
from services.api.errors import ApiError, error_response


class BodyGuard:
    def __init__(self, app: ASGIApp, *, limit: int, guarded: Sequence[re.Pattern[str]]) -> None:
        self.app = app
        self.limit = limit
        self.guarded = tuple(guarded)  # the path patterns of the routes that take an API key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not any(p.match(scope["path"]) for p in self.guarded):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        if not _has_body(headers):
            await self.app(scope, receive, send)
            return
        try:
            runtime: Runtime = scope["app"].state.runtime
            token = token_of(headers.get("authorization", ""))
            async with runtime.read_sessionmaker() as session:
                key = await identify(runtime, token, session)
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.limit:
                raise self._too_large()
            body = await self._read(receive)
        except ApiError as exc:
            response = error_response(exc.status, exc.code, exc.message, headers=exc.headers)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})[IDENTIFIED] = key
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> bytes:
        """The whole body, refused as soon as it passes the limit."""
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                raise ApiError(400, "bad_request", "the client disconnected mid-body")
            body += message.get("body", b"")
            if len(body) > self.limit:
                raise self._too_large()
            if not message.get("more_body", False):
                return bytes(body)

    def _too_large(self) -> ApiError:
        return ApiError(
            413,
            "payload_too_large",
            f"request body is over {self.limit:,} bytes (FIRSTVALUE_MAX_BODY_BYTES)",
        )


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


def _has_body(headers: dict[str, str]) -> bool:
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body read already, then defers to the server."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        message: dict[str, Any] = {"type": "http.request", "body": body, "more_body": False}
        return message

    return replayed
