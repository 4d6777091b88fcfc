"""Replay a page at a time: the batched projector and ``firstvalue replay --workers`` must
store exactly what evaluating each onboarding on its own gives, queue each transition once,
and leave a state that re-derives unchanged untouched."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from firstvalue import demo_data
from services.ingest.consumer import IngestOptions, ingest_messages
from shared.config import load_settings
from shared.domain import codec
from shared.domain.codec import state_to_dict as encode_state
from shared.domain.evaluate import evaluate
from shared.domain.transitions import transitions
from shared.plan_files import default_plans
from shared.projection.manual import record_fact
from shared.projection.projector import project_many
from shared.projection.replay import replay_all
from shared.projection.replay_processes import ranges
from shared.storage.onboardings import OnboardingRepository
from shared.storage.projections import ProjectionRepository
from shared.storage.tables import EscalationRecord, OutboxRecord, ProjectionRecord

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PLANS = default_plans()
ACCOUNTS = 12


async def store_demo(sessions: async_sessionmaker[AsyncSession], url: str) -> list[str]:
    """The demo history's events and manual facts through the real store path."""
    history = demo_data.generate(PLANS, NOW, accounts=ACCOUNTS)
    options = IngestOptions.from_settings(load_settings(database_url=url), PLANS)
    async with sessions() as session, session.begin():
        await ingest_messages(session, history.messages, options, received_at=NOW)
    for fact in history.facts:
        async with sessions() as session, session.begin():
            await record_fact(session, PLANS, fact, NOW)
    async with sessions() as session:
        return await OnboardingRepository(session).ids(None, 1000)


async def fresh(sessions: async_sessionmaker[AsyncSession], ids: list[str], at: datetime) -> Any:
    """Each onboarding evaluated on its own, the unbatched way: encoded states (by
    ``codec.state_to_dict``), escalation count and every transition id a first projection
    announces."""
    states, escalations, announced = {}, 0, set()
    async with sessions() as session:
        for onboarding_id in ids:
            loaded = await OnboardingRepository(session).facts_for(onboarding_id)
            assert loaded is not None
            registration, facts = loaded
            state = evaluate(PLANS[registration.plan_key], registration, facts, at)
            states[onboarding_id] = codec.state_to_dict(state)
            assert encode_state(state) == states[onboarding_id]  # the projector's fast codec
            escalations += len({(e.rule_key, e.fired_at) for e in state.escalations})
            announced |= {t.id for t in transitions(None, state)}
    return states, escalations, announced


async def stored(sessions: async_sessionmaker[AsyncSession], ids: list[str]) -> Any:
    async with sessions() as session:
        states = await ProjectionRepository(session).state_dicts(ids)
        escalations = await session.scalar(select(func.count()).select_from(EscalationRecord))
        queued = set((await session.scalars(select(OutboxRecord.message_id))).all())
    return states, escalations, queued


async def row_versions(sessions: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    """PostgreSQL's ``xmin`` of every projection row: changes whenever a row is rewritten."""
    async with sessions() as session:
        rows = await session.execute(
            text("SELECT onboarding_id, xmin::text FROM onboarding_projections")
        )
        return {r[0]: r[1] for r in rows}


async def test_replay_stores_what_each_onboarding_evaluates_to_and_skips_unchanged_states(
    sessions: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    ids = await store_demo(sessions, database_url)
    assert len(ids) == ACCOUNTS
    # three processes on PostgreSQL (SQLite: one), pages of 500 each holding a few ids
    assert await replay_all(sessions, PLANS, NOW, workers=3) == ACCOUNTS
    states, escalations, announced = await fresh(sessions, ids, NOW)
    assert await stored(sessions, ids) == (states, escalations, announced)
    assert escalations > 0 and len(announced) > 5 * ACCOUNTS

    postgres = sessions.kw["bind"].dialect.name == "postgresql"
    versions = await row_versions(sessions) if postgres else {}
    assert await replay_all(sessions, PLANS, NOW) == ACCOUNTS  # same moment: same states
    assert await stored(sessions, ids) == (states, escalations, announced)
    if postgres:
        assert await row_versions(sessions) == versions, "an unchanged state was rewritten"

    later = NOW + timedelta(days=20)  # timers fire, escalations open, stages move
    assert await replay_all(sessions, PLANS, later, workers=2) == ACCOUNTS
    states_later, escalations_later, announced_later = await fresh(sessions, ids, later)
    got_states, got_escalations, queued = await stored(sessions, ids)
    assert got_states == states_later and got_escalations == escalations_later
    assert states_later != states
    assert announced_later <= queued  # each change announced; earlier ones stay queued


async def test_a_page_with_unknown_and_repeated_ids_projects_the_rest_once(
    sessions: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    ids = await store_demo(sessions, database_url)
    page = [ids[0], "no-such-onboarding", ids[1], ids[0]]
    async with sessions() as session, session.begin():
        projected = await project_many(session, PLANS, page, NOW)
    assert [s.onboarding_id for s in projected] == [ids[0], ids[1]]


async def test_a_stored_state_that_no_longer_decodes_is_rederived_and_announced_again(
    sessions: async_sessionmaker[AsyncSession], database_url: str, caplog: Any
) -> None:
    ids = await store_demo(sessions, database_url)
    assert await replay_all(sessions, PLANS, NOW) == ACCOUNTS
    states, _, _ = await fresh(sessions, ids, NOW)
    broken = ids[0]
    async with sessions() as session, session.begin():
        await session.execute(
            update(ProjectionRecord)
            .where(ProjectionRecord.onboarding_id == broken)
            .values(state={"written_by": "an older version"}, fold=None)
        )
        await session.execute(delete(OutboxRecord))
    with caplog.at_level(logging.WARNING, logger="shared.projection.projector"):
        assert await replay_all(sessions, PLANS, NOW) == ACCOUNTS
    assert f"stored state of {broken} does not decode" in caplog.text
    got_states, _, queued = await stored(sessions, ids)
    assert got_states == states  # re-derived from its facts
    first = {t.id for t in transitions(None, codec.state_from_dict(states[broken]))}
    assert first and queued == first  # announced as a first projection; no other queued


def test_ranges_split_sorted_ids_into_contiguous_disjoint_slices() -> None:
    ids = [f"onb-{n:03d}" for n in range(10)]
    bounds = ranges(ids, 3)
    assert bounds == [(None, "onb-002"), ("onb-002", "onb-005"), ("onb-005", "onb-009")]
    covered = [i for after, through in bounds for i in ids if (after is None or i > after)
               and i <= through]  # fmt: skip
    assert covered == ids
    assert ranges(ids[:2], 5) == [(None, "onb-000"), ("onb-000", "onb-001")]
    assert ranges([], 4) == []
