"""Who is looking: the session cookie, the scopes of the key behind it, and the form checks.

Sign-in takes an API key once and sets an HttpOnly, SameSite=Strict cookie holding a random
session token (the database keeps its hash and the key's hash, ``console_access``). Every
form carries the session's CSRF token; a post without it — or from a page this server did
not render — is refused before anything is read from it. The sign-in form, which has no
session yet, is protected by a double-submit token in a cookie of its own.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, Request

from services.api.dependencies import SessionDep
from shared.storage.api_keys import ApiKey
from shared.storage.console_access import ConsoleSessionRepository

SESSION_COOKIE = "fv_session"
LOGIN_CSRF_COOKIE = "fv_login_csrf"
MAX_FORM_BYTES = 16_384  # the largest form (evidence with a quote) is far below this


class ConsoleRefusal(Exception):
    """A request the console answers with an error page (status and a plain reason)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SignInNeeded(Exception):
    """No live session: the console answers with a redirect to the sign-in page."""


@dataclass(frozen=True)
class Viewer:
    token: str
    key: ApiKey
    csrf_token: str

    @property
    def can_write(self) -> bool:
        return "write" in self.key.scopes


async def _viewer(request: Request, session: SessionDep) -> Viewer:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInNeeded
    found = await ConsoleSessionRepository(session).lookup(token, datetime.now(UTC))
    if found is None:
        raise SignInNeeded
    if "read" not in found.key.scopes:
        raise ConsoleRefusal(403, f"API key '{found.key.name}' lacks the 'read' scope")
    return Viewer(token, found.key, found.csrf_token)


ViewerDep = Annotated[Viewer, Depends(_viewer)]


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body, first value per field, blanks dropped."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise ConsoleRefusal(415, "forms are sent as application/x-www-form-urlencoded")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise ConsoleRefusal(413, f"a form is at most {MAX_FORM_BYTES} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise ConsoleRefusal(413, f"a form is at most {MAX_FORM_BYTES} bytes")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise ConsoleRefusal(400, "a form is UTF-8") from exc
    fields: dict[str, str] = {}
    for name, value in pairs:
        value = value.strip()
        if value and name not in fields:
            fields[name] = value
    return fields


def same_token(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


async def writer_form(request: Request, viewer: Viewer) -> dict[str, str]:
    """The form of a write: the CSRF token checked first, then the write scope."""
    fields = await read_form(request)
    if not same_token(viewer.csrf_token, fields.pop("csrf", None)):
        raise ConsoleRefusal(403, "form refused: it does not carry this session's CSRF token")
    if not viewer.can_write:
        raise ConsoleRefusal(403, f"API key '{viewer.key.name}' lacks the 'write' scope")
    return fields
