"""Events produced to ``analytics.events`` on a real broker move the right milestones: the
ingest and milestones consumers on KafkaBus, PostgreSQL behind them, the projection read
back as the API reads it."""

from __future__ import annotations

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.analytics.registration import onboarding_id_for
from shared.bus import topics
from shared.domain import codec
from shared.domain.evaluate import evaluate
from shared.domain.state import OnboardingState
from shared.plan_files import default_plans
from shared.storage.onboardings import OnboardingRepository
from shared.storage.projections import ProjectionRepository

from .conftest import BusFactory
from .harness import drained, eventually, ingesting, produce, projecting, read_topic
from .scenario import NOW, SIGNED, demo_messages, onboarding_messages

PLANS = default_plans()


async def _state(
    sessions: async_sessionmaker[AsyncSession], onboarding_id: str
) -> OnboardingState | None:
    async with sessions() as session:
        return await ProjectionRepository(session).state(onboarding_id)


async def test_segment_events_on_kafka_complete_the_setup_milestones_in_the_projection(
    buses: BusFactory, pg_sessions: async_sessionmaker[AsyncSession]
) -> None:
    bus = await buses("pipeline")
    onboarding_id = onboarding_id_for("acme", "smb")
    async with ingesting(bus, pg_sessions, PLANS, NOW), projecting(bus, pg_sessions, PLANS, NOW):
        await produce(bus, onboarding_messages("acme"))

        async def synced() -> bool:
            state = await _state(pg_sessions, onboarding_id)
            return state is not None and any(
                m.key == "first_sync_verified" and m.progress == "complete"
                for m in state.milestones
            )

        await eventually(synced, "the projection to show the first sync verified")
        transitions = await read_topic(bus, topics.TRANSITIONS, at_least=1)

    state = await _state(pg_sessions, onboarding_id)
    assert state is not None and (state.signed_at, state.csm) == (SIGNED, "dana")
    milestones = {m.key: m for m in state.milestones}
    # the usage event came before its user's group call: parked, then attributed
    assert milestones["integration_connected"].progress == "complete"
    assert milestones["integration_connected"].event_ids == ("acme-int-1",)
    assert milestones["first_sync_verified"].event_ids == ("acme-sync-1",)  # not the failed one
    assert milestones["first_report_delivered"].progress == "not_started"
    published = [orjson.loads(m.value) for m in transitions]
    assert {"type": "StageEntered", "stage": "kickoff"}.items() <= published[0].items()
    assert {m.key for m in transitions} == {"acme"}


async def test_every_projected_onboarding_equals_the_evaluation_of_its_stored_facts(
    buses: BusFactory, pg_sessions: async_sessionmaker[AsyncSession]
) -> None:
    messages = demo_messages(PLANS, accounts=8)
    bus = await buses("pipeline")
    async with ingesting(bus, pg_sessions, PLANS, NOW), projecting(bus, pg_sessions, PLANS, NOW):
        await produce(bus, messages)
        await drained(bus)
        await drained(bus, topics.FACTS, "milestones")

    async with pg_sessions() as session:
        onboardings = OnboardingRepository(session)
        projections = ProjectionRepository(session)
        ids = await onboardings.ids(None, 100)
        assert len(ids) == 8
        completed = 0
        for onboarding_id in ids:
            loaded = await onboardings.facts_for(onboarding_id)
            assert loaded is not None
            registration, facts = loaded
            expected = evaluate(PLANS[registration.plan_key], registration, facts, NOW)
            assert await projections.state_dict(onboarding_id) == codec.state_to_dict(expected)
            completed += sum(m.progress == "complete" for m in expected.milestones)
    assert completed > 8  # the demo history completes milestones: the comparison is not vacuous
