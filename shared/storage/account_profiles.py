"""Account profiles: the name and licensed seats a Mixpanel group profile gives an account.

A profile update ``$set`` overwrites, ``$set_once`` fills only what is still unknown — in the
profile and in the account's registrations (``onboardings``), so the projection shows the
profile's name and evaluates seat-based rules on its seats. A registration that arrives later
without its own name or seats takes the profile's (``of``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.storage import dialect
from shared.storage.tables import AccountProfileRecord, OnboardingRecord

FIELDS = {"name": "account_name", "licensed_seats": "licensed_seats"}  # profile → onboarding


@dataclass(frozen=True)
class ProfileUpdate:
    """One group profile update: ``values`` by field (``name``, ``licensed_seats``),
    ``once``: only where the field is still unknown."""

    account_id: str
    values: Mapping[str, Any]
    once: bool
    at: datetime


@dataclass(frozen=True)
class AccountProfile:
    name: str | None
    licensed_seats: int | None


class AccountProfileRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def of(self, account_ids: Collection[str]) -> dict[str, AccountProfile]:
        if not account_ids:
            return {}
        rows = await self._session.execute(
            select(
                AccountProfileRecord.account_id,
                AccountProfileRecord.name,
                AccountProfileRecord.licensed_seats,
            ).where(AccountProfileRecord.account_id.in_(sorted(account_ids)))
        )
        return {account: AccountProfile(name, seats) for account, name, seats in rows}

    async def apply(self, updates: Sequence[ProfileUpdate]) -> None:
        """Apply the updates in order (few per batch: one statement pair each)."""
        for change in updates:
            values = {k: v for k, v in change.values.items() if k in FIELDS}
            if not values:
                continue
            current = (await self.of([change.account_id])).get(change.account_id)
            known = {
                "name": current.name if current else None,
                "licensed_seats": current.licensed_seats if current else None,
            }
            merged = {
                field: (known[field] if change.once and known[field] is not None else value)
                for field, value in values.items()
            }
            row = {**known, **merged, "account_id": change.account_id, "updated_at": change.at}
            statement = dialect.insert(self._session, AccountProfileRecord).values(row)
            await self._session.execute(
                statement.on_conflict_do_update(
                    index_elements=["account_id"],
                    set_={k: row[k] for k in ("name", "licensed_seats", "updated_at")},
                )
            )
            await self._fill_registrations(change.account_id, merged, change.once)

    async def _fill_registrations(
        self, account_id: str, values: Mapping[str, Any], once: bool
    ) -> None:
        for field, value in values.items():
            column = getattr(OnboardingRecord, FIELDS[field])
            statement = update(OnboardingRecord).where(OnboardingRecord.account_id == account_id)
            if once:
                statement = statement.where(column.is_(None))
            await self._session.execute(statement.values({FIELDS[field]: value}))
