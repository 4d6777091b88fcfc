"""Bearer API keys: looked up by hash in the ``api_keys`` table (memoised for a few seconds,
``key_cache``); scopes ``read`` / ``write``.

401 when the key is missing or unknown, 403 when it lacks the route's scope.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from services.api.dependencies import RuntimeDep, SessionDep
from services.api.errors import ApiError
from shared.storage.api_keys import ApiKey, ApiKeyRepository

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="firstvalue"'}


# Documents the scheme in OpenAPI; the check itself is ours, for our 401 body.
_SCHEME = HTTPBearer(auto_error=False, description="an API key: 'Authorization: Bearer fv_…'")


async def bearer_token(
    request: Request, _documented: Annotated[object, Depends(_SCHEME)] = None
) -> str:
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
        runtime: RuntimeDep, session: SessionDep, token: Annotated[str, Depends(bearer_token)]
    ) -> ApiKey:
        key = await runtime.keys.lookup(token, ApiKeyRepository(session).lookup)
        if key is None:
            raise ApiError(401, "unauthorized", "unknown API key", headers=_CHALLENGE)
        if scope not in key.scopes:
            raise ApiError(403, "forbidden", f"API key '{key.name}' lacks the '{scope}' scope")
        return key

    return check


ReadKey = Annotated[ApiKey, Depends(require("read"))]
WriteKey = Annotated[ApiKey, Depends(require("write"))]
