"""Manual facts — registration, evidence, pause, resume, amendment — validated, stored
append-only and projected at once, in the caller's transaction.

After committing, call ``publisher.relay_outbox`` to publish the transitions it caused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from shared.domain.facts import (
    CommandFact,
    EvidenceRecorded,
    ManualFact,
    MilestoneAmended,
    OnboardingPaused,
    OnboardingRegistered,
    OnboardingResumed,
)
from shared.domain.plans import Plan
from shared.domain.state import OnboardingState
from shared.projection.errors import (
    ConflictingRegistration,
    FactRejected,
    InvalidFact,
    InvalidPauseState,
    UnknownMilestone,
    UnknownOnboarding,
    UnknownPlan,
)
from shared.projection.projector import project
from shared.storage.onboardings import OnboardingRepository

__all__ = [
    "CommandFact",
    "ConflictingRegistration",
    "FactRejected",
    "InvalidFact",
    "InvalidPauseState",
    "RecordedFact",
    "UnknownMilestone",
    "UnknownOnboarding",
    "UnknownPlan",
    "fact_id",
    "record_fact",
]

FUTURE_TOLERANCE = timedelta(minutes=5)  # client clocks drift; a week ahead is a mistake


@dataclass(frozen=True)
class RecordedFact:
    fact_id: str
    new: bool  # False: the same fact id was recorded before (an idempotent retry)
    state: OnboardingState


def fact_id(kind: str, onboarding_id: str, *parts: object) -> str:
    """A deterministic fact id: the same command sent twice records one fact."""
    values = [p.isoformat() if isinstance(p, datetime) else p for p in (onboarding_id, *parts)]
    digest = hashlib.sha256(orjson.dumps(values, default=str)).hexdigest()
    return f"{kind}:{digest[:32]}"


async def record_fact(
    session: AsyncSession, plans: Mapping[str, Plan], fact: CommandFact, now: datetime
) -> RecordedFact:
    """Validate, store (idempotent by fact id) and project; raises ``FactRejected``."""
    if fact.at > now + FUTURE_TOLERANCE:
        raise InvalidFact(f"'at' {fact.at.isoformat()} is in the future")
    onboardings = OnboardingRepository(session)
    if isinstance(fact, OnboardingRegistered):
        new = await _register(onboardings, plans, fact, now)
    else:
        new = await _add(onboardings, plans, fact, now)
    state = await project(session, plans, fact.onboarding_id, now)
    return RecordedFact(fact.id, new, state)


async def _register(
    onboardings: OnboardingRepository,
    plans: Mapping[str, Plan],
    fact: OnboardingRegistered,
    now: datetime,
) -> bool:
    if fact.plan_key not in plans:
        known = ", ".join(sorted(plans)) or "none"
        raise UnknownPlan(f"unknown plan {fact.plan_key!r} (known: {known})")
    if await onboardings.register(fact, now):
        return True
    existing = await onboardings.registration(fact.onboarding_id)
    if existing != fact:
        raise ConflictingRegistration(
            f"onboarding {fact.onboarding_id!r} is already registered with other details"
        )
    return False


async def _add(
    onboardings: OnboardingRepository, plans: Mapping[str, Plan], fact: ManualFact, now: datetime
) -> bool:
    registration = await onboardings.lock(fact.onboarding_id)
    if registration is None:
        raise UnknownOnboarding(fact.onboarding_id)
    existing = await onboardings.fact(fact.id)
    if existing is not None:
        if existing != fact:
            raise InvalidFact(f"fact {fact.id!r} is already recorded with other details")
        return False
    plan = plans.get(registration.plan_key)
    if plan is None:
        raise UnknownPlan(f"onboarding uses unknown plan {registration.plan_key!r}")
    if isinstance(fact, EvidenceRecorded | MilestoneAmended):
        _check_milestone(plan, fact.milestone_key)
    if isinstance(fact, EvidenceRecorded) and not plan.milestone(fact.milestone_key).manual:
        raise UnknownMilestone(
            f"milestone {fact.milestone_key!r} completes from events only; "
            "it does not take manual evidence"
        )
    if isinstance(fact, OnboardingPaused | OnboardingResumed):
        _check_pause_order(await onboardings.manual_facts(fact.onboarding_id), fact)
    return await onboardings.add_fact(fact, now)


def _check_milestone(plan: Plan, key: str) -> None:
    if key not in {m.key for m in plan.milestones}:
        raise UnknownMilestone(f"milestone {key!r} is not in plan {plan.key!r} v{plan.version}")


def _check_pause_order(facts: list[ManualFact], fact: OnboardingPaused | OnboardingResumed) -> None:
    history = [f for f in facts if isinstance(f, OnboardingPaused | OnboardingResumed)]
    last = max(history, key=lambda f: (f.at, f.id), default=None)
    if isinstance(fact, OnboardingPaused) and isinstance(last, OnboardingPaused):
        raise InvalidPauseState(f"already paused since {last.at.isoformat()}")
    if isinstance(fact, OnboardingResumed) and not isinstance(last, OnboardingPaused):
        raise InvalidPauseState("not paused: nothing to resume")
    if last is not None and fact.at < last.at:
        raise InvalidPauseState(
            f"'at' {fact.at.isoformat()} is before the last pause/resume at {last.at.isoformat()}"
        )
