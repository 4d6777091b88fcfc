"""Console sessions and customer share links: random tokens, of which only the sha256 is
stored (as for API keys), so neither a database dump nor a log of this table opens anything.

A session belongs to the API key it signed in with, by that key's hash: deleting or rotating
the key ends its sessions at the next request. A share link is revoked, never deleted, so
an old link reads as revoked rather than as unknown.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.storage.api_keys import ApiKey, api_key_of, hash_key
from shared.storage.tables import ApiKeyRecord, ConsoleSessionRecord, ShareLinkRecord

SESSION_LIFETIME = timedelta(hours=12)


@dataclass(frozen=True)
class ConsoleSession:
    key: ApiKey
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class ShareLink:
    token_hash: str
    onboarding_id: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None


def new_token() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


class ConsoleSessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def start(self, plaintext_key: str, now: datetime) -> tuple[str, ConsoleSession] | None:
        """A new session for a known API key: (cookie token, session); None if unknown."""
        key_hash = hash_key(plaintext_key)
        record = await self._session.scalar(
            select(ApiKeyRecord).where(ApiKeyRecord.key_hash == key_hash)
        )
        if record is None:
            return None
        await self._session.execute(
            delete(ConsoleSessionRecord).where(ConsoleSessionRecord.expires_at <= now)
        )
        token, csrf = new_token(), new_token()
        expires = now + SESSION_LIFETIME
        self._session.add(
            ConsoleSessionRecord(
                token_hash=hash_key(token),
                api_key_hash=key_hash,
                csrf_token=csrf,
                created_at=now,
                expires_at=expires,
            )
        )
        await self._session.flush()
        return token, ConsoleSession(api_key_of(record), csrf, expires)

    async def lookup(self, token: str, now: datetime) -> ConsoleSession | None:
        """The live session of a cookie token, with its key's current scopes."""
        s, k = ConsoleSessionRecord, ApiKeyRecord
        row = (
            await self._session.execute(
                select(s, k)
                .join(k, k.key_hash == s.api_key_hash)
                .where(s.token_hash == hash_key(token), s.expires_at > now)
            )
        ).first()
        if row is None:
            return None
        session_record, key_record = row
        return ConsoleSession(
            api_key_of(key_record), session_record.csrf_token, session_record.expires_at
        )

    async def end(self, token: str) -> None:
        await self._session.execute(
            delete(ConsoleSessionRecord).where(ConsoleSessionRecord.token_hash == hash_key(token))
        )


class ShareLinkRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def create(self, onboarding_id: str, created_by: str, now: datetime) -> str:
        """A new link's token (shown once; only its hash is kept)."""
        token = new_token()
        self._session.add(
            ShareLinkRecord(
                token_hash=hash_key(token),
                onboarding_id=onboarding_id,
                created_by=created_by,
                created_at=now,
                revoked_at=None,
            )
        )
        await self._session.flush()
        return token

    async def resolve(self, token: str) -> ShareLink | None:
        """The link a token opens, revoked or not; None when no link has this token."""
        record = await self._session.get(ShareLinkRecord, hash_key(token))
        return _link(record) if record is not None else None

    async def for_onboarding(self, onboarding_id: str) -> list[ShareLink]:
        stmt = (
            select(ShareLinkRecord)
            .where(ShareLinkRecord.onboarding_id == onboarding_id)
            .order_by(ShareLinkRecord.created_at.desc())
        )
        return [_link(r) for r in (await self._session.scalars(stmt)).all()]

    async def revoke(self, onboarding_id: str, token_hash: str, now: datetime) -> bool:
        """Revoke one link of this onboarding; False if it has no such live link."""
        r = ShareLinkRecord
        stmt = (
            update(r)
            .where(
                r.token_hash == token_hash,
                r.onboarding_id == onboarding_id,
                r.revoked_at.is_(None),
            )
            .values(revoked_at=now)
            .returning(r.token_hash)
            .execution_options(synchronize_session=False)
        )
        return (await self._session.scalar(stmt)) is not None


def _link(record: ShareLinkRecord) -> ShareLink:
    return ShareLink(
        token_hash=record.token_hash,
        onboarding_id=record.onboarding_id,
        created_by=record.created_by,
        created_at=record.created_at,
        revoked_at=record.revoked_at,
    )
