"""``Idempotency-Key`` for the write endpoints: a retry gets the first response back.

Same key + same request (method, path, body after validation) → the stored response is
replayed (header ``Idempotent-Replayed: true``) and nothing is recorded again. Same key +
another request → 422 ``idempotency_key_reused``. A retry racing its original waits for it
(a lock on the key) and replays its response. Keys are scoped to the API key that sent
them. Only successful responses are stored: a refused request (4xx) changed nothing, so a
retry with the same key is evaluated afresh. The response is stored in the request's own
transaction, so it exists exactly when the write it describes does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.errors import ApiError
from shared.storage.idempotency import IdempotencyRepository

REPLAYED_HEADER = "Idempotent-Replayed"

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="retry-safe writes: the same key and body replay the first response",
    ),
]


def fingerprint(method: str, path: str, body: BaseModel) -> str:
    """What a key is bound to: method, path and the validated body (key order ignored)."""
    content = body.model_dump(mode="json")
    payload = orjson.dumps([method, path, content], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(payload).hexdigest()


async def respond_once(
    session: AsyncSession,
    api_key: str,
    key: str | None,
    request_hash: str,
    write: Callable[[], Awaitable[tuple[int, BaseModel]]],
) -> JSONResponse:
    """Run ``write`` unless ``key`` already answered this request; store its response."""
    repository = IdempotencyRepository(session)
    if key is not None:
        await repository.lock(api_key, key)
        stored = await repository.get(api_key, key)
        if stored is not None:
            return _replay(key, request_hash, stored.request_hash, stored.status, stored.body)
    status, model = await write()
    body: dict[str, Any] = model.model_dump(mode="json")
    if key is not None and not await repository.save(
        api_key, key, request_hash, status, body, datetime.now(UTC)
    ):
        raise ApiError(
            409,
            "idempotency_key_in_use",
            f"Idempotency-Key '{key}' was used by a concurrent request; retry to get its result",
        )
    return JSONResponse(body, status_code=status)


def _replay(
    key: str, request_hash: str, stored_hash: str, status: int, body: dict[str, Any]
) -> JSONResponse:
    if stored_hash != request_hash:
        raise ApiError(
            422,
            "idempotency_key_reused",
            f"Idempotency-Key '{key}' was already used for a different request "
            "(another path or body); use a new key for a new request",
        )
    return JSONResponse(body, status_code=status, headers={REPLAYED_HEADER: "true"})
