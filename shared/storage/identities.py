"""Identities: which account a user belongs to, and the events parked until we know.

A user is a Segment ``userId`` (or ``anonymousId``). An event whose user is not tied to an
account yet is parked in ``pending_events`` and moved to ``events`` when the link arrives —
never dropped, never counted twice (both tables are keyed by the event id).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.storage import dialect
from shared.storage.tables import IdentityRecord, PendingEventRecord


@dataclass(frozen=True)
class UnattributedEvent:
    """A usage event whose account is not known yet."""

    id: str
    user_id: str
    name: str
    at: datetime
    properties: Mapping[str, Any] = field(default_factory=dict, compare=False)
    source: str = "segment"


class IdentityRepository:
    """User → account links and the pending events waiting for them."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def accounts_of(self, user_ids: Iterable[str]) -> dict[str, str]:
        """The accounts of the users that are linked (unlinked users are absent)."""
        ids = sorted(set(user_ids))
        if not ids:
            return {}
        stmt = select(IdentityRecord.user_id, IdentityRecord.account_id).where(
            IdentityRecord.user_id.in_(ids), IdentityRecord.account_id.is_not(None)
        )
        return {
            user: account for user, account in (await self._session.execute(stmt)).all() if account
        }

    async def claim(self, user_ids: Iterable[str]) -> dict[str, str | None]:
        """Lock the users' identity rows (creating empty ones) and return their accounts.

        Parking an event and linking its user touch the same row, so on PostgreSQL a
        concurrent ``link`` waits for this transaction and then sees what it parked.
        """
        ids = sorted(set(user_ids))  # one lock order for every transaction: no deadlocks
        if not ids:
            return {}
        stmt = dialect.insert(self._session, IdentityRecord).values(
            [{"user_id": u, "account_id": None, "linked_at": None} for u in ids]
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["user_id"], set_={"account_id": IdentityRecord.account_id}
        ).returning(IdentityRecord.user_id, IdentityRecord.account_id)
        return {user: account for user, account in (await self._session.execute(stmt)).all()}

    async def link(self, user_id: str, account_id: str, at: datetime) -> None:
        """Tie a user to an account; the link with the latest event time wins."""
        stmt = dialect.insert(self._session, IdentityRecord).values(
            user_id=user_id, account_id=account_id, linked_at=at
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["user_id"],
            set_={"account_id": stmt.excluded.account_id, "linked_at": stmt.excluded.linked_at},
            where=or_(
                IdentityRecord.linked_at.is_(None),
                IdentityRecord.linked_at <= stmt.excluded.linked_at,
            ),
        )
        await self._session.execute(stmt)

    async def add_pending(
        self, events: Sequence[UnattributedEvent], recorded_at: datetime
    ) -> set[str]:
        """Park events; returns the ids that were not already parked."""
        if not events:
            return set()
        rows = [
            {
                "id": e.id,
                "user_id": e.user_id,
                "name": e.name,
                "occurred_at": e.at,
                "properties": dict(e.properties),
                "source": e.source,
                "recorded_at": recorded_at,
            }
            for e in {e.id: e for e in events}.values()
        ]
        stmt = (
            dialect.insert(self._session, PendingEventRecord)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(PendingEventRecord.id)
        )
        return set((await self._session.execute(stmt, rows)).scalars().all())

    async def take_pending(self, user_id: str) -> list[UnattributedEvent]:
        """Remove and return the user's parked events, in event-time order."""
        stmt = (
            delete(PendingEventRecord)
            .where(PendingEventRecord.user_id == user_id)
            .returning(
                PendingEventRecord.id,
                PendingEventRecord.user_id,
                PendingEventRecord.name,
                PendingEventRecord.occurred_at,
                PendingEventRecord.properties,
                PendingEventRecord.source,
            )
            .execution_options(synchronize_session=False)
        )
        rows = (await self._session.execute(stmt)).all()
        events = [
            UnattributedEvent(
                id=r.id,
                user_id=r.user_id,
                name=r.name,
                at=r.occurred_at,
                properties=r.properties,
                source=r.source,
            )
            for r in rows
        ]
        return sorted(events, key=lambda e: (e.at, e.id))

    async def pending_count(self) -> int:
        stmt = select(func.count()).select_from(PendingEventRecord)
        return (await self._session.scalar(stmt)) or 0
