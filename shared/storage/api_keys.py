"""API keys: only the sha256 of a key is stored; the plaintext is shown once, at creation."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.storage import dialect
from shared.storage.tables import ApiKeyRecord

KEY_PREFIX = "fv_"


@dataclass(frozen=True)
class ApiKey:
    name: str
    scopes: tuple[str, ...]
    created_at: datetime


def hash_key(plaintext: str) -> str:
    """The stored form of a key (sha256 hex); keys are random, so no salt is needed."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def api_key_of(record: ApiKeyRecord) -> ApiKey:
    return ApiKey(
        name=record.name,
        scopes=tuple(s for s in record.scopes.split(",") if s),
        created_at=record.created_at,
    )


class ApiKeyRepository:
    """Creates, looks up and removes API keys by the hash of their plaintext."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def create(self, name: str, scopes: Sequence[str], now: datetime) -> str:
        """Store a new random key and return its plaintext (the only time it is visible)."""
        plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
        self._session.add(
            ApiKeyRecord(
                name=name, key_hash=hash_key(plaintext), scopes=",".join(scopes), created_at=now
            )
        )
        await self._session.flush()
        return plaintext

    async def ensure(self, name: str, scopes: Sequence[str], plaintext: str, now: datetime) -> None:
        """Store a key given in configuration, replacing that name's previous key."""
        stmt = dialect.insert(self._session, ApiKeyRecord).values(
            name=name, key_hash=hash_key(plaintext), scopes=",".join(scopes), created_at=now
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={"key_hash": stmt.excluded.key_hash, "scopes": stmt.excluded.scopes},
        )
        await self._session.execute(stmt)

    async def lookup(self, plaintext: str) -> ApiKey | None:
        stmt = select(ApiKeyRecord).where(ApiKeyRecord.key_hash == hash_key(plaintext))
        record = await self._session.scalar(stmt)
        return api_key_of(record) if record else None

    async def all(self) -> list[ApiKey]:
        records = (await self._session.scalars(select(ApiKeyRecord).order_by("name"))).all()
        return [api_key_of(r) for r in records]

    async def delete(self, name: str) -> bool:
        stmt = (
            delete(ApiKeyRecord)
            .where(ApiKeyRecord.name == name)
            .returning(ApiKeyRecord.name)
            .execution_options(synchronize_session=False)
        )
        return (await self._session.scalar(stmt)) is not None
