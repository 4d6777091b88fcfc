"""ASGI middleware: the headers every API response carries, whoever answered it (a route,
an error handler or ``body_guard``). ``nosniff``: a browser never reads a JSON body as
something else; ``no-store``: onboarding data and error bodies are never cached on the way."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
)
_NAMES = {name for name, _ in ALWAYS}


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _NAMES]
                message = {**message, "headers": [*kept, *ALWAYS]}
            await send(message)

        await self.app(scope, receive, with_headers)
