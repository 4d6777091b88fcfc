"""ASGI middleware: the headers every API response carries, whoever answered it (a route,
an error handler or ``body_guard``). ``nosniff``: a browser never reads a JSON body as
something else; ``no-store``: onboarding data and error bodies are never cached on the way,
unless the route chose its own caching (the console's static assets and Swagger's files)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

NOSNIFF = (b"x-content-type-options", b"nosniff")
NO_STORE = (b"cache-control", b"no-store")


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() != NOSNIFF[0]]
                cached = any(k.lower() == NO_STORE[0] for k, _ in kept)
                message = {**message, "headers": [*kept, NOSNIFF, *(() if cached else (NO_STORE,))]}
            await send(message)

        await self.app(scope, receive, with_headers)
