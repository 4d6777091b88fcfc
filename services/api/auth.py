"""Bearer API keys: looked up by hash in the ``api_keys`` table; scopes ``read`` / ``write``.

401 when the key is missing or unknown, 403 when it lacks the route's scope.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from services.api.dependencies import SessionDep
from services.api.errors import ApiError
from shared.storage.api_keys import ApiKey, ApiKeyRepository

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="firstvalue"'}


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "unauthorized",
            "missing API key: send 'Authorization: Bearer <key>'",
            headers=_CHALLENGE,
        )
    return token.strip()


def require(scope: str) -> Callable[..., Awaitable[ApiKey]]:
    """A dependency that admits only keys holding ``scope``."""

    async def check(
        session: SessionDep, token: Annotated[str, Depends(bearer_token)]
    ) -> ApiKey:
        key = await ApiKeyRepository(session).lookup(token)
        if key is None:
            raise ApiError(401, "unauthorized", "unknown API key", headers=_CHALLENGE)
        if scope not in key.scopes:
            raise ApiError(
                403, "forbidden", f"API key '{key.name}' lacks the '{scope}' scope"
            )
        return key

    return check


ReadKey = Annotated[ApiKey, Depends(require("read"))]
