"""Bearer API keys: looked up by hash in the ``api_keys`` table (memoised for a few seconds,
``key_cache``); scopes ``read`` / ``write``.

401 when the key is missing or unknown, 403 when it lacks the route's scope. A request that
carries a body is identified before its body is read (``body_guard``), which leaves its key
on the request for ``require`` to check the scope of.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.dependencies import Runtime, RuntimeDep, SessionDep
from services.api.errors import ApiError
from shared.storage.api_keys import ApiKey, ApiKeyRepository

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="firstvalue"'}
IDENTIFIED = "api_key"  # where ``body_guard`` leaves the key it identified (request state)


# Documents the scheme in OpenAPI; the check itself is ours, for our 401 body.
_SCHEME = HTTPBearer(auto_error=False, description="an API key: 'Authorization: Bearer fv_…'")


def token_of(authorization: str) -> str:
    """The key of an ``Authorization: Bearer <key>`` header; 401 without one."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "unauthorized",
            "missing API key: send 'Authorization: Bearer <key>'",
            headers=_CHALLENGE,
        )
    return token.strip()


async def identify(runtime: Runtime, token: str, session: AsyncSession) -> ApiKey:
    """The stored key for ``token``; 401 when there is none."""
    key = await runtime.keys.lookup(token, ApiKeyRepository(session).lookup)
    if key is None:
        raise ApiError(401, "unauthorized", "unknown API key", headers=_CHALLENGE)
    return key


async def bearer_token(
    request: Request, _documented: Annotated[object, Depends(_SCHEME)] = None
) -> str:
    return token_of(request.headers.get("authorization", ""))


def require(scope: str) -> Callable[..., Awaitable[ApiKey]]:
    """A dependency that admits only keys holding ``scope``."""

    async def check(
        request: Request,
        runtime: RuntimeDep,
        session: SessionDep,
        token: Annotated[str, Depends(bearer_token)],
    ) -> ApiKey:
        key: ApiKey | None = getattr(request.state, IDENTIFIED, None)
        if key is None:
            key = await identify(runtime, token, session)
        if scope not in key.scopes:
            raise ApiError(403, "forbidden", f"API key '{key.name}' lacks the '{scope}' scope")
        return key

    return check


ReadKey = Annotated[ApiKey, Depends(require("read"))]
WriteKey = Annotated[ApiKey, Depends(require("write"))]
