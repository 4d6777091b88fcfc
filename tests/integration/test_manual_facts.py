"""Manual facts: validated with clear errors, stored once, projected at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus import topics
from shared.bus.memory import MemoryBus
from shared.domain.facts import (
    EvidenceRecorded,
    MilestoneAmended,
    OnboardingPaused,
    OnboardingRegistered,
    OnboardingResumed,
)
from shared.plan_files import default_plans
from shared.projection.manual import (
    CommandFact,
    ConflictingRegistration,
    FactRejected,
    InvalidFact,
    InvalidPauseState,
    RecordedFact,
    UnknownMilestone,
    UnknownOnboarding,
    UnknownPlan,
    fact_id,
    record_fact,
)
from shared.projection.publisher import relay_outbox
from shared.storage.onboardings import OnboardingRepository

PLANS = default_plans()
SIGNED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = SIGNED + timedelta(days=10)
ONBOARDING = "onb-acme"
REGISTRATION = OnboardingRegistered(
    f"registered:{ONBOARDING}", ONBOARDING, "acme", "smb", SIGNED, csm="dana"
)


def pause(days: float) -> OnboardingPaused:
    moment = SIGNED + timedelta(days=days)
    return OnboardingPaused(fact_id("pause", ONBOARDING, moment), ONBOARDING, moment, "holidays")


def resume(days: float) -> OnboardingResumed:
    moment = SIGNED + timedelta(days=days)
    return OnboardingResumed(fact_id("resume", ONBOARDING, moment), ONBOARDING, moment)


async def record(sessions: async_sessionmaker[AsyncSession], fact: CommandFact) -> RecordedFact:
    async with sessions() as session, session.begin():
        return await record_fact(session, PLANS, fact, NOW)


async def test_registration_is_idempotent_and_conflicts_are_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    first = await record(sessions, REGISTRATION)
    again = await record(sessions, REGISTRATION)
    assert (first.new, again.new) == (True, False)
    assert first.state.current_stage == "kickoff" and first.state.plan_key == "smb"
    with pytest.raises(ConflictingRegistration):
        await record(
            sessions, OnboardingRegistered(REGISTRATION.id, ONBOARDING, "acme", "smb", NOW)
        )
    with pytest.raises(UnknownPlan, match="unknown plan 'gold'"):
        await record(sessions, OnboardingRegistered("r2", "onb-2", "acme", "gold", SIGNED))


async def test_evidence_completes_a_manual_milestone_and_publishes_through_the_outbox(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await record(sessions, REGISTRATION)
    moment = SIGNED + timedelta(days=1)
    evidence = EvidenceRecorded(
        fact_id("evidence", ONBOARDING, "kickoff_call", moment), ONBOARDING, "kickoff_call",
        moment, confirmed_by="Jo (VP Ops)", channel="call", quote="Kickoff done",
    )  # fmt: skip
    recorded = await record(sessions, evidence)
    retried = await record(sessions, evidence)
    kickoff = next(m for m in recorded.state.milestones if m.key == "kickoff_call")
    assert kickoff.progress == "complete" and kickoff.confirmations == (evidence,)
    assert (recorded.new, retried.new) == (True, False)
    async with sessions() as session:
        assert await OnboardingRepository(session).manual_facts(ONBOARDING) == [evidence]

    bus = MemoryBus()
    assert await relay_outbox(sessions, bus) > 0
    assert await relay_outbox(sessions, bus) == 0
    assert bus.messages(topics.TRANSITIONS)


async def test_facts_naming_unknown_things_are_refused_with_a_value_error(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await record(sessions, REGISTRATION)
    moment = SIGNED + timedelta(days=1)
    with pytest.raises(UnknownOnboarding):
        await record(sessions, EvidenceRecorded("e1", "nope", "kickoff_call", moment, "Jo", "call"))
    with pytest.raises(UnknownMilestone, match="'kickoff_party'"):
        await record(
            sessions, EvidenceRecorded("e2", ONBOARDING, "kickoff_party", moment, "Jo", "call")
        )
    with pytest.raises(UnknownMilestone, match="does not take manual evidence"):
        await record(
            sessions,
            EvidenceRecorded("e4", ONBOARDING, "integration_connected", moment, "Jo", "call"),
        )
    with pytest.raises(UnknownMilestone):
        await record(
            sessions, MilestoneAmended("a1", ONBOARDING, moment, "nope", "dana", "scope change")
        )
    with pytest.raises(InvalidFact, match="future"):
        await record(
            sessions,
            EvidenceRecorded("e3", ONBOARDING, "kickoff_call", NOW + timedelta(days=1), "Jo", "x"),
        )
    assert issubclass(FactRejected, ValueError)


async def test_pause_and_resume_must_alternate_in_time_order(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await record(sessions, REGISTRATION)
    with pytest.raises(InvalidPauseState, match="not paused"):
        await record(sessions, resume(2))
    paused = await record(sessions, pause(2))
    assert paused.state.pause.paused
    with pytest.raises(InvalidPauseState, match="already paused"):
        await record(sessions, pause(3))
    with pytest.raises(InvalidPauseState, match="before the last pause"):
        await record(sessions, resume(1))
    resumed = await record(sessions, resume(4))
    assert not resumed.state.pause.paused
    assert resumed.state.pause.paused_days == pytest.approx(2.0)
    assert (await record(sessions, pause(2))).new is False  # a retried command, not an error
