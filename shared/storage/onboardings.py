"""Onboardings: registrations and the manual facts recorded against them, append-only.

``facts_for`` gathers everything an onboarding's state is derived from: its registration,
its account's usage events and its own manual facts; ``facts_for_many`` does the same for a
page of onboardings in three queries, whatever the page's size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.domain.facts import (
    EvidenceRecorded,
    Fact,
    ManualFact,
    MilestoneAmended,
    OnboardingPaused,
    OnboardingRegistered,
    OnboardingResumed,
)
from shared.storage import dialect
from shared.storage.account_events import IDS_PER_QUERY, events_by_account
from shared.storage.tables import OnboardingFactRecord, OnboardingRecord

FACT_KINDS: dict[str, type[ManualFact]] = {
    "evidence": EvidenceRecorded,
    "pause": OnboardingPaused,
    "resume": OnboardingResumed,
    "amendment": MilestoneAmended,
}
_KIND_OF = {cls: kind for kind, cls in FACT_KINDS.items()}
_COLUMNS = {"id", "onboarding_id", "at"}  # stored as columns, not in the payload

REGISTER_CHUNK = 1000  # rows per statement: 10 parameters each, under the drivers' limits


def _registration(r: OnboardingRecord) -> OnboardingRegistered:
    return OnboardingRegistered(
        id=r.fact_id,
        onboarding_id=r.onboarding_id,
        account_id=r.account_id,
        plan_key=r.plan_key,
        at=r.signed_at,
        csm=r.csm,
        champion_user_id=r.champion_user_id,
        licensed_seats=r.licensed_seats,
        account_name=r.account_name,
    )


def _payload(fact: ManualFact) -> dict[str, Any]:
    return {
        f.name: getattr(fact, f.name) for f in dataclasses.fields(fact) if f.name not in _COLUMNS
    }


def _manual_fact(r: OnboardingFactRecord) -> ManualFact:
    cls = FACT_KINDS[r.kind]
    return cls(id=r.id, onboarding_id=r.onboarding_id, at=r.occurred_at, **r.payload)


class OnboardingRepository:
    """Registrations (one account may have several onboardings) and manual facts."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def register(self, registration: OnboardingRegistered, recorded_at: datetime) -> bool:
        """Store a registration; False when the onboarding exists (the first one wins)."""
        stmt = (
            dialect.insert(self._session, OnboardingRecord)
            .values(
                onboarding_id=registration.onboarding_id,
                fact_id=registration.id,
                account_id=registration.account_id,
                plan_key=registration.plan_key,
                signed_at=registration.at,
                csm=registration.csm,
                champion_user_id=registration.champion_user_id,
                licensed_seats=registration.licensed_seats,
                account_name=registration.account_name,
                recorded_at=recorded_at,
            )
            .on_conflict_do_nothing()
            .returning(OnboardingRecord.onboarding_id)
        )
        return (await self._session.scalar(stmt)) is not None

    async def register_many(
        self, registrations: Sequence[OnboardingRegistered], recorded_at: datetime
    ) -> set[str]:
        """Store many registrations in one statement (ingest batches); the onboarding ids
        that were new. As with ``register``, the first registration of an id wins, also
        within ``registrations``."""
        first: dict[str, OnboardingRegistered] = {}
        for registration in registrations:
            first.setdefault(registration.onboarding_id, registration)
        if not first:
            return set()
        ordered = sorted(first.values(), key=_onboarding_id)  # lock order
        if dialect.is_postgresql(self._session):
            registered = (
                (r.onboarding_id, r.id, r.account_id, r.plan_key, r.at, r.csm,
                 r.champion_user_id, r.licensed_seats, r.account_name)
                for r in ordered
            )  # fmt: skip
            return await dialect.insert_json_rows(
                self._session, _JSON_REGISTER, registered, recorded_at=recorded_at
            )
        rows = [
            {
                "onboarding_id": r.onboarding_id,
                "fact_id": r.id,
                "account_id": r.account_id,
                "plan_key": r.plan_key,
                "signed_at": r.at,
                "csm": r.csm,
                "champion_user_id": r.champion_user_id,
                "licensed_seats": r.licensed_seats,
                "account_name": r.account_name,
                "recorded_at": recorded_at,
            }
            for r in ordered
        ]
        new: set[str] = set()
        for start in range(0, len(rows), REGISTER_CHUNK):
            stmt = (
                dialect.insert(self._session, OnboardingRecord)
                .values(rows[start : start + REGISTER_CHUNK])
                .on_conflict_do_nothing()
                .returning(OnboardingRecord.onboarding_id)
            )
            new.update((await self._session.scalars(stmt)).all())
        return new

    async def registration(self, onboarding_id: str) -> OnboardingRegistered | None:
        record = await self._session.get(OnboardingRecord, onboarding_id)
        return _registration(record) if record else None

    async def lock(self, onboarding_id: str) -> OnboardingRegistered | None:
        """The registration, row-locked until commit (PostgreSQL) so that projections of
        one onboarding never interleave and a stale one never overwrites a fresh one."""
        return (await self.lock_many([onboarding_id])).get(onboarding_id)

    async def lock_many(self, onboarding_ids: Iterable[str]) -> dict[str, OnboardingRegistered]:
        """``lock`` for many onboardings, in one statement per thousand, locking in id order
        (so two lockers of overlapping sets cannot deadlock); unknown ids are left out."""
        return await self._registrations(onboarding_ids, lock=True)

    async def registrations(self, onboarding_ids: Iterable[str]) -> dict[str, OnboardingRegistered]:
        """Many registrations by onboarding id, unlocked; unknown ids are left out."""
        return await self._registrations(onboarding_ids, lock=False)

    async def _registrations(
        self, onboarding_ids: Iterable[str], *, lock: bool
    ) -> dict[str, OnboardingRegistered]:
        ordered = sorted(set(onboarding_ids))
        found: dict[str, OnboardingRegistered] = {}
        o = OnboardingRecord
        for start in range(0, len(ordered), IDS_PER_QUERY):
            stmt = (
                select(o)
                .where(o.onboarding_id.in_(ordered[start : start + IDS_PER_QUERY]))
                .order_by(o.onboarding_id)
            )
            if lock:
                stmt = stmt.with_for_update()
            for record in (await self._session.scalars(stmt)).all():
                found[record.onboarding_id] = _registration(record)
        return found

    async def ids_for_account(self, account_id: str) -> list[str]:
        return await self.ids_for_accounts([account_id])

    async def ids_for_accounts(self, account_ids: Iterable[str]) -> list[str]:
        """``ids_for_account`` of many accounts in one query per thousand: the accounts in
        the order given, each one's onboardings in id order."""
        wanted = list(dict.fromkeys(account_ids))
        by_account: dict[str, list[str]] = {account_id: [] for account_id in wanted}
        o = OnboardingRecord
        for start in range(0, len(wanted), IDS_PER_QUERY):
            stmt = (
                select(o.account_id, o.onboarding_id)
                .where(o.account_id.in_(wanted[start : start + IDS_PER_QUERY]))
                .order_by(o.onboarding_id)
            )
            for account_id, onboarding_id in await self._session.execute(stmt):
                by_account[account_id].append(onboarding_id)
        return [i for ids in by_account.values() for i in ids]

    async def count_off_plans(self, plan_keys: Iterable[str]) -> int:
        """How many onboardings use a plan not among ``plan_keys`` (they cannot be projected)."""
        o = OnboardingRecord
        stmt = select(func.count()).select_from(o).where(o.plan_key.not_in(sorted(plan_keys)))
        return int(await self._session.scalar(stmt) or 0)

    async def ids(self, after: str | None, limit: int, *, through: str | None = None) -> list[str]:
        """All onboarding ids in id order, a page at a time (for replay); with ``through``,
        only ids up to and including it (one worker's range)."""
        stmt = select(OnboardingRecord.onboarding_id).order_by(OnboardingRecord.onboarding_id)
        if after is not None:
            stmt = stmt.where(OnboardingRecord.onboarding_id > after)
        if through is not None:
            stmt = stmt.where(OnboardingRecord.onboarding_id <= through)
        return list((await self._session.scalars(stmt.limit(limit))).all())

    async def add_fact(self, fact: ManualFact, recorded_at: datetime) -> bool:
        """Append a manual fact; False when a fact with that id is already stored."""
        stmt = (
            dialect.insert(self._session, OnboardingFactRecord)
            .values(
                id=fact.id,
                onboarding_id=fact.onboarding_id,
                kind=_KIND_OF[type(fact)],
                occurred_at=fact.at,
                payload=_payload(fact),
                recorded_at=recorded_at,
            )
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(OnboardingFactRecord.id)
        )
        return (await self._session.scalar(stmt)) is not None

    async def fact(self, fact_id: str) -> ManualFact | None:
        record = await self._session.get(OnboardingFactRecord, fact_id)
        return _manual_fact(record) if record else None

    async def manual_facts(
        self, onboarding_id: str, *, until: datetime | None = None
    ) -> list[ManualFact]:
        """The onboarding's manual facts in event-time order."""
        return (await self.manual_facts_for_many([onboarding_id], until=until))[onboarding_id]

    async def manual_facts_for_many(
        self, onboarding_ids: Iterable[str], *, until: datetime | None = None
    ) -> dict[str, list[ManualFact]]:
        """``manual_facts`` of many onboardings: each requested id maps to its facts in
        event-time order (empty when it has none)."""
        found: dict[str, list[ManualFact]] = {i: [] for i in onboarding_ids}
        ordered = sorted(found)
        f = OnboardingFactRecord
        for start in range(0, len(ordered), IDS_PER_QUERY):
            stmt = select(f).where(f.onboarding_id.in_(ordered[start : start + IDS_PER_QUERY]))
            if until is not None:
                stmt = stmt.where(f.occurred_at <= until)
            stmt = stmt.order_by(f.onboarding_id, f.occurred_at, f.id)
            for record in (await self._session.scalars(stmt)).all():
                found[record.onboarding_id].append(_manual_fact(record))
        return found

    async def facts_for_many(
        self, registrations: Iterable[OnboardingRegistered], *, as_of: datetime | None = None
    ) -> dict[str, list[Fact]]:
        """``facts_for`` of already loaded (or locked) registrations, by onboarding id: the
        events of all their accounts in one query, their manual facts in another."""
        chosen = {r.onboarding_id: r for r in registrations}
        events = await events_by_account(
            self._session, {r.account_id for r in chosen.values()}, until=as_of
        )
        manual = await self.manual_facts_for_many(chosen, until=as_of)
        return {
            onboarding_id: [*events[r.account_id], *manual[onboarding_id]]
            for onboarding_id, r in chosen.items()
        }

    async def facts_for(
        self, onboarding_id: str, *, as_of: datetime | None = None
    ) -> tuple[OnboardingRegistered, list[Fact]] | None:
        """Registration, the account's events and the onboarding's manual facts."""
        registration = await self.registration(onboarding_id)
        if registration is None:
            return None
        return registration, (await self.facts_for_many([registration], as_of=as_of))[onboarding_id]


def _onboarding_id(registration: OnboardingRegistered) -> str:
    return registration.onboarding_id


# The PostgreSQL form of ``register_many``: rows as one JSON array, expanded by the server.
_JSON_REGISTER = text(
    """
    INSERT INTO onboardings (onboarding_id, fact_id, account_id, plan_key, signed_at, csm,
                             champion_user_id, licensed_seats, account_name, recorded_at)
    SELECT row->>0, row->>1, row->>2, row->>3, CAST(row->>4 AS timestamptz), row->>5,
           row->>6, CAST(row->>7 AS integer), row->>8, CAST(:recorded_at AS timestamptz)
    FROM jsonb_array_elements(CAST(CAST(:rows AS text) AS jsonb)) AS batch(row)
    ON CONFLICT DO NOTHING
    RETURNING onboarding_id
    """
)
