"""Projections: upsert, filters, keyset pagination, due timers and escalation rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.domain.facts import OnboardingRegistered
from shared.domain.state import (
    TTFV,
    Decomposition,
    EscalationStatus,
    Health,
    OnboardingState,
    PauseStatus,
    Signals,
)
from shared.storage.onboardings import OnboardingRepository
from shared.storage.projections import InvalidCursor, ProjectionFilter, ProjectionRepository

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def state(
    n: int,
    *,
    segment: str = "smb",
    signed_days_ago: int = 10,
    stage: str | None = "setup",
    breach: str = "none",
    tier: str = "healthy",
    at_risk: bool = False,
    csm: str | None = "dana",
    next_due_at: datetime | None = None,
    escalations: tuple[EscalationStatus, ...] = (),
) -> OnboardingState:
    signed_at = NOW - timedelta(days=signed_days_ago)
    return OnboardingState(
        onboarding_id=f"onb-{n:03d}",
        account_id=f"acct-{n:03d}",
        account_name=f"Account {n}",
        plan_key=segment,
        plan_version=1,
        segment=segment,
        csm=csm,
        signed_at=signed_at,
        as_of=NOW,
        status="onboarding",
        current_stage=stage,
        onboarded_at=None,
        stages=(),
        milestones=(),
        ttfv=TTFV(None, None, float(signed_days_ago), 7, 14, breach),  # type: ignore[arg-type]
        decomposition=Decomposition(None, None, None, None, None, None, None),
        health=Health(70.0 if tier == "at_risk" else 90.0, tier, 0, 0, ()),  # type: ignore[arg-type]
        completion_rate=0.0,
        escalations=escalations,
        signals=Signals(None, 0.0, False, False, 0),
        pause=PauseStatus(False, None, 0.0),
        tasks_done_no_value=at_risk,
        amendments=(),
        next_due_at=next_due_at,
    )


async def save(sessions: async_sessionmaker[AsyncSession], *states: OnboardingState) -> None:
    async with sessions() as session, session.begin():
        onboardings = OnboardingRepository(session)
        for s in states:
            registration = OnboardingRegistered(
                f"registered:{s.onboarding_id}", s.onboarding_id, s.account_id, s.plan_key,
                s.signed_at,
            )  # fmt: skip
            await onboardings.register(registration, NOW)
            await ProjectionRepository(session).save(s, NOW)


async def test_filters_select_by_list_columns(sessions: async_sessionmaker[AsyncSession]) -> None:
    await save(
        sessions,
        state(1),
        state(2, segment="mid_market", stage="first_value", breach="breach"),
        state(3, tier="at_risk", at_risk=True, csm="lee"),
        state(4, breach="severe", stage=None),
    )

    async def ids(**filters: Any) -> list[str]:
        async with sessions() as session:
            page = await ProjectionRepository(session).list(ProjectionFilter(**filters), limit=50)
        return sorted(item.onboarding_id for item in page.items)

    assert await ids(segment="smb") == ["onb-001", "onb-003", "onb-004"]
    assert await ids(plan_key="mid_market") == ["onb-002"]
    assert await ids(stage="first_value") == ["onb-002"]
    assert await ids(breach="severe") == ["onb-004"]
    assert await ids(breach=("breach", "severe")) == ["onb-002", "onb-004"]
    assert await ids(tier="at_risk") == ["onb-003"]
    assert await ids(at_risk=True) == ["onb-003"]
    assert await ids(csm="lee", segment="smb") == ["onb-003"]
    assert await ids(status="onboarded") == []


async def test_cursor_pages_walk_every_row_once_newest_signature_first(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # 25 onboardings over 10 distinct signature days: ties are broken by onboarding id
    await save(sessions, *(state(n, signed_days_ago=n % 10) for n in range(25)))
    seen: list[tuple[datetime, str]] = []
    cursor: str | None = None
    while True:
        async with sessions() as session:
            page = await ProjectionRepository(session).list(
                ProjectionFilter(segment="smb"), limit=7, cursor=cursor
            )
        seen.extend((item.signed_at, item.onboarding_id) for item in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == 25 == len(set(seen))
    assert seen == sorted(seen, key=lambda item: (-item[0].timestamp(), item[1]))
    async with sessions() as session:
        with pytest.raises(InvalidCursor):
            await ProjectionRepository(session).list(ProjectionFilter(), limit=5, cursor="nope")


async def test_summary_columns_and_state_round_trip(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    fired = NOW - timedelta(days=1)
    escalation = EscalationStatus(
        "technical_completion_late", "stage_not_exited", 2, "flag_cs_manager", "Setup late",
        fired, fired, None, "setup not exited by day 14",
    )  # fmt: skip
    original = state(1, escalations=(escalation,), next_due_at=NOW + timedelta(hours=3))
    await save(sessions, original)
    async with sessions() as session:
        projections = ProjectionRepository(session)
        summary = await projections.get("onb-001")
        decoded = await projections.state("onb-001")
        page = await projections.escalations(limit=10)
    assert summary is not None
    assert (summary.open_escalations, summary.max_escalation_level) == (1, 2)
    assert summary.next_due_at == NOW + timedelta(hours=3)
    assert summary.state["onboarding_id"] == "onb-001"
    assert decoded == original
    assert [(e.onboarding_id, e.rule_key, e.level) for e in page.items] == [
        ("onb-001", "technical_completion_late", 2)
    ]


async def test_due_returns_only_onboardings_whose_moment_has_come(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await save(
        sessions,
        state(1, next_due_at=NOW - timedelta(minutes=1)),
        state(2, next_due_at=NOW + timedelta(minutes=1)),
        state(3, next_due_at=None),
        state(4, next_due_at=NOW - timedelta(days=2)),
    )
    async with sessions() as session:
        assert await ProjectionRepository(session).due(NOW, 10) == ["onb-004", "onb-001"]
        assert await ProjectionRepository(session).due(NOW, 1) == ["onb-004"]
