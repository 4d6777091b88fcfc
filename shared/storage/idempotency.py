"""Idempotency keys: the first successful response to a write, replayed for retries."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.storage import dialect
from shared.storage.tables import IdempotencyRecord


@dataclass(frozen=True)
class StoredResponse:
    request_hash: str
    status: int
    body: dict[str, Any]
    created_at: datetime


class IdempotencyRepository:
    """Responses keyed by (API key name, ``Idempotency-Key``); the first one stored wins."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lock(self, api_key: str, key: str) -> None:
        """Serialise requests carrying the same key until this transaction ends, so a retry
        racing its original waits for it and replays its response (PostgreSQL: an advisory
        lock on the key's hash; SQLite transactions are serial already)."""
        if self._session.get_bind().dialect.name != "postgresql":
            return
        digest = hashlib.sha256(f"{api_key}\x1f{key}".encode()).digest()
        lock_id = int.from_bytes(digest[:8], "big", signed=True)
        await self._session.execute(select(func.pg_advisory_xact_lock(lock_id)))

    async def get(self, api_key: str, key: str) -> StoredResponse | None:
        stmt = select(IdempotencyRecord).where(
            IdempotencyRecord.api_key == api_key, IdempotencyRecord.key == key
        )
        record = await self._session.scalar(stmt)
        if record is None:
            return None
        return StoredResponse(
            record.request_hash, record.status, record.response, record.created_at
        )

    async def save(
        self,
        api_key: str,
        key: str,
        request_hash: str,
        status: int,
        body: dict[str, Any],
        now: datetime,
    ) -> bool:
        """Store the response; False when a concurrent request stored one for that key first."""
        stmt = (
            dialect.insert(self._session, IdempotencyRecord)
            .values(
                api_key=api_key,
                key=key,
                request_hash=request_hash,
                status=status,
                response=body,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["api_key", "key"])
            .returning(IdempotencyRecord.key)
        )
        return (await self._session.scalar(stmt)) is not None
