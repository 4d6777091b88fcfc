"""``OnboardingRepository.register_many``, the ingest batch's one statement for every
Contract Signed: the first registration of an onboarding wins, whether it was stored
earlier or comes first in the same call (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.domain.facts import OnboardingRegistered
from shared.storage.onboardings import OnboardingRepository

SIGNED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _registration(onboarding_id: str, csm: str, days: int = 0) -> OnboardingRegistered:
    return OnboardingRegistered(
        id=f"reg:{onboarding_id}:{csm}",
        onboarding_id=onboarding_id,
        account_id=f"acct-{onboarding_id}",
        plan_key="smb",
        at=SIGNED + timedelta(days=days),
        csm=csm,
    )


async def test_register_many_stores_the_new_ones_and_keeps_the_first_of_each_onboarding(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        repository = OnboardingRepository(session)
        assert await repository.register(_registration("a", "first"), SIGNED)
        new = await repository.register_many(
            [
                _registration("b", "first", 1),
                _registration("a", "second"),  # already stored: ignored
                _registration("b", "second", 2),  # the same call's earlier one wins
                _registration("c", "first"),
            ],
            SIGNED,
        )
        assert new == {"b", "c"}
        assert await repository.register_many([], SIGNED) == set()
    async with sessions() as session:
        repository = OnboardingRepository(session)
        stored = {i: await repository.registration(i) for i in ("a", "b", "c")}
    assert {i: r.csm for i, r in stored.items() if r} == {"a": "first", "b": "first", "c": "first"}
    assert stored["b"] is not None and stored["b"].at == SIGNED + timedelta(days=1)
