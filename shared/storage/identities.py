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

from sqlalchemy import and_, case, delete, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.storage import dialect
from shared.storage.tables import IdentityRecord, PendingEventRecord

CHUNK = 1000  # rows per multi-row statement (well under both drivers' parameter limits)


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
        return await self.link_and_claim({}, claim=user_ids)

    async def link(self, user_id: str, account_id: str, at: datetime) -> None:
        """Tie a user to an account; the link with the latest event time wins."""
        await self.link_and_claim({user_id: (account_id, at)})

    async def link_and_claim(
        self, links: Mapping[str, tuple[str, datetime]], claim: Iterable[str] = ()
    ) -> dict[str, str | None]:
        """Apply many links and lock the ``claim`` users' rows in one sorted pass.

        ``links``: user → (account, event time); per user the link with the latest event
        time wins, here or already stored. Every named user's row is locked (created when
        missing) in user order, the order ``claim`` uses too, so concurrent batches cannot
        deadlock on identities. Returns each named user's account after the change.
        """
        users = sorted(set(links) | set(claim))
        if not users:
            return {}
        if dialect.is_postgresql(self._session):
            result = await self._session.execute(
                _UNNEST_LINK,
                {
                    "users": users,
                    "accounts": [links[u][0] if u in links else None for u in users],
                    "times": [links[u][1] if u in links else None for u in users],
                },
            )
            return {user: account for user, account in result}
        settled: dict[str, str | None] = {}
        for start in range(0, len(users), CHUNK):
            settled.update(await self._link_rows(users[start : start + CHUNK], links))
        return settled

    async def _link_rows(
        self, users: Sequence[str], links: Mapping[str, tuple[str, datetime]]
    ) -> dict[str, str | None]:
        rows = [
            {"user_id": u, "account_id": links[u][0], "linked_at": links[u][1]}
            if u in links
            else {"user_id": u, "account_id": None, "linked_at": None}
            for u in users
        ]
        stmt = dialect.insert(self._session, IdentityRecord).values(rows)
        newer = and_(
            stmt.excluded.linked_at.is_not(None),
            or_(
                IdentityRecord.linked_at.is_(None),
                IdentityRecord.linked_at <= stmt.excluded.linked_at,
            ),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["user_id"],
            set_={
                "account_id": case(
                    (newer, stmt.excluded.account_id), else_=IdentityRecord.account_id
                ),
                "linked_at": case((newer, stmt.excluded.linked_at), else_=IdentityRecord.linked_at),
            },
        ).returning(IdentityRecord.user_id, IdentityRecord.account_id)
        return {user: account for user, account in await self._session.execute(stmt)}

    async def add_pending(
        self, events: Sequence[UnattributedEvent], recorded_at: datetime
    ) -> set[str]:
        """Park events; returns the ids that were not already parked."""
        if not events:
            return set()
        unique = {e.id: e for e in events}
        if dialect.is_postgresql(self._session):
            ordered = sorted(unique.values(), key=_event_id)
            pending = ((e.id, e.user_id, e.name, e.at, e.properties, e.source) for e in ordered)
            return await dialect.insert_json_rows(
                self._session, _JSON_ADD_PENDING, pending, recorded_at=recorded_at
            )
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
            for e in unique.values()
        ]
        stmt = (
            dialect.insert(self._session, PendingEventRecord)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(PendingEventRecord.id)
        )
        return set((await self._session.execute(stmt, rows)).scalars().all())

    async def take_pending(self, user_id: str) -> list[UnattributedEvent]:
        """Remove and return the user's parked events, in event-time order."""
        return (await self.take_pending_of([user_id])).get(user_id, [])

    async def take_pending_of(self, user_ids: Iterable[str]) -> dict[str, list[UnattributedEvent]]:
        """``take_pending`` for many users in one statement per chunk: user → events in
        event-time order (users without parked events are absent)."""
        ids = sorted(set(user_ids))
        taken: dict[str, list[UnattributedEvent]] = {}
        if ids and dialect.is_postgresql(self._session):
            # One array parameter: a statement compiled once, whatever the batch's size.
            for row in await self._session.execute(_UNNEST_TAKE_PENDING, {"users": ids}):
                taken.setdefault(row.user_id, []).append(_unattributed(row))
            ids = []
        for start in range(0, len(ids), CHUNK):
            stmt = (
                delete(PendingEventRecord)
                .where(PendingEventRecord.user_id.in_(ids[start : start + CHUNK]))
                .returning(*_PENDING_COLUMNS)
                .execution_options(synchronize_session=False)
            )
            for row in (await self._session.execute(stmt)).all():
                taken.setdefault(row.user_id, []).append(_unattributed(row))
        for events in taken.values():
            events.sort(key=lambda e: (e.at, e.id))
        return taken

    async def pending_count(self) -> int:
        stmt = select(func.count()).select_from(PendingEventRecord)
        return (await self._session.scalar(stmt)) or 0


def _event_id(event: UnattributedEvent) -> str:
    return event.id  # one lock order for concurrent inserts


_PENDING_COLUMNS = (
    PendingEventRecord.id,
    PendingEventRecord.user_id,
    PendingEventRecord.name,
    PendingEventRecord.occurred_at,
    PendingEventRecord.properties,
    PendingEventRecord.source,
)


def _unattributed(row: Any) -> UnattributedEvent:
    return UnattributedEvent(
        id=row.id,
        user_id=row.user_id,
        name=row.name,
        at=row.occurred_at,
        properties=row.properties,
        source=row.source,
    )


# The PostgreSQL form of ``add_pending``: rows as one JSON array, expanded by the server.
_JSON_ADD_PENDING = text(
    """
    INSERT INTO pending_events (id, user_id, name, occurred_at, properties, source, recorded_at)
    SELECT row->>0, row->>1, row->>2, CAST(row->>3 AS timestamptz), row->4, row->>5,
           CAST(:recorded_at AS timestamptz)
    FROM jsonb_array_elements(CAST(CAST(:rows AS text) AS jsonb)) AS batch(row)
    ON CONFLICT (id) DO NOTHING
    RETURNING id
    """
)

# The PostgreSQL form of ``take_pending_of``: one statement, one array parameter.
_UNNEST_TAKE_PENDING = text(
    """
    DELETE FROM pending_events WHERE user_id = ANY(CAST(:users AS varchar[]))
    RETURNING id, user_id, name, occurred_at, properties, source
    """
).columns(*(column.expression for column in _PENDING_COLUMNS))

# The PostgreSQL form of ``link_and_claim``: one statement, three array parameters.
_UNNEST_LINK = text(
    """
    INSERT INTO identities (user_id, account_id, linked_at)
    SELECT * FROM unnest(CAST(:users AS varchar[]), CAST(:accounts AS varchar[]),
                         CAST(:times AS timestamptz[]))
    ON CONFLICT (user_id) DO UPDATE SET
        account_id = CASE WHEN excluded.linked_at IS NOT NULL
                           AND (identities.linked_at IS NULL
                                OR identities.linked_at <= excluded.linked_at)
                          THEN excluded.account_id ELSE identities.account_id END,
        linked_at = CASE WHEN excluded.linked_at IS NOT NULL
                          AND (identities.linked_at IS NULL
                               OR identities.linked_at <= excluded.linked_at)
                         THEN excluded.linked_at ELSE identities.linked_at END
    RETURNING user_id, account_id
    """
)
