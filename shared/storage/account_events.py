"""Usage events of many accounts in one query: projecting a page of onboardings (replay, the
milestones consumer, timers) reads its accounts' events together instead of one query per
onboarding. ``EventRepository.for_account`` is this read for one account.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.domain.facts import EventObserved
from shared.storage import dialect
from shared.storage.tables import EventRecord

IDS_PER_QUERY = 1000  # bound parameters per ``IN`` list, well under the drivers' limits


async def events_by_account(
    session: AsyncSession, account_ids: Collection[str], *, until: datetime | None = None
) -> dict[str, list[EventObserved]]:
    """Each account's events in event-time order (only ``at <= until`` when given); every
    requested account is a key, with an empty list when it has no events."""
    found: dict[str, list[EventObserved]] = {account_id: [] for account_id in account_ids}
    ordered = sorted(found)
    read = _driver_rows if dialect.is_postgresql(session) else _rows
    for start in range(0, len(ordered), IDS_PER_QUERY):
        for r in await read(session, ordered[start : start + IDS_PER_QUERY], until):
            found[r[1]].append(
                EventObserved(
                    id=r[0], account_id=r[1], user_id=r[2], name=r[3], at=r[4], properties=r[5]
                )
            )
    return found


async def _rows(
    session: AsyncSession, account_ids: list[str], until: datetime | None
) -> Sequence[Any]:
    e = EventRecord
    stmt = select(e.id, e.account_id, e.user_id, e.name, e.occurred_at, e.properties).where(
        e.account_id.in_(account_ids)
    )
    if until is not None:
        stmt = stmt.where(e.occurred_at <= until)
    return (await session.execute(stmt.order_by(e.account_id, e.occurred_at, e.id))).all()


async def _driver_rows(
    session: AsyncSession, account_ids: list[str], until: datetime | None
) -> Sequence[Any]:
    """The same query straight on asyncpg, in the session's transaction: SQLAlchemy's
    per-row result processing was over half the cost of a page's ~50,000 events. asyncpg
    returns ``timestamptz`` as UTC-aware datetimes (what ``UTCDateTime`` yields) and JSONB
    through the codec SQLAlchemy installed on the connection (the engine's ``orjson``)."""
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    bound = "" if until is None else " AND occurred_at <= $2"
    rows: Sequence[Any] = await driver.fetch(
        "SELECT id, account_id, user_id, name, occurred_at, properties FROM events"
        f" WHERE account_id = ANY($1::varchar[]){bound}"
        " ORDER BY account_id, occurred_at, id",
        account_ids,
        *([] if until is None else [until]),
    )
    return rows
