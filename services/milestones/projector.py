"""``project``: the one path from facts to stored state, shared by the consumer, the timers,
manual facts and replay.

load the onboarding's facts → ``evaluate`` → ``transitions(old, new)`` → save the
projection and queue the transitions in the outbox, all in the caller's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.milestones.errors import UnknownOnboarding, UnknownPlan
from shared.bus import topics
from shared.domain.evaluate import evaluate
from shared.domain.plans import Plan
from shared.domain.state import OnboardingState
from shared.domain.transitions import ESCALATION_TRANSITIONS, Transition, transitions
from shared.storage.onboardings import OnboardingRepository
from shared.storage.outbox import OutboxRepository
from shared.storage.projections import ProjectionRepository

log = logging.getLogger(__name__)


def topic_of(transition: Transition) -> str:
    if isinstance(transition, ESCALATION_TRANSITIONS):
        return topics.ESCALATIONS
    return topics.TRANSITIONS


async def _previous(
    projections: ProjectionRepository, onboarding_id: str
) -> OnboardingState | None:
    try:
        return await projections.state(onboarding_id)
    except (KeyError, TypeError, ValueError):
        # A state stored by an older version that no longer decodes: treat as first
        # projection. Transition ids are deterministic, so the outbox drops repeats.
        log.warning("stored state of %s does not decode; re-announcing", onboarding_id)
        return None


async def project(
    session: AsyncSession, plans: Mapping[str, Plan], onboarding_id: str, now: datetime
) -> OnboardingState:
    """Re-derive one onboarding's state as of ``now``, store it, queue its transitions."""
    onboardings = OnboardingRepository(session)
    registration = await onboardings.lock(onboarding_id)
    if registration is None:
        raise UnknownOnboarding(onboarding_id)
    plan = plans.get(registration.plan_key)
    if plan is None:
        raise UnknownPlan(
            f"onboarding {onboarding_id!r} uses unknown plan {registration.plan_key!r}"
        )
    loaded = await onboardings.facts_for(onboarding_id)
    assert loaded is not None  # locked above
    state = evaluate(plan, registration, loaded[1], now)
    projections = ProjectionRepository(session)
    previous = await _previous(projections, onboarding_id)
    await projections.save(state, now)
    outbox = OutboxRepository(session)
    for transition in transitions(previous, state):
        await outbox.add(
            topic_of(transition), state.account_id, transition.id, transition.to_dict(), now
        )
    return state


async def project_many(
    session: AsyncSession, plans: Mapping[str, Plan], onboarding_ids: Iterable[str], now: datetime
) -> list[OnboardingState]:
    """Project each onboarding; one that cannot be (unknown id, plan no longer configured) is
    logged and skipped — its last projection stays — instead of stalling all the others."""
    states = []
    for onboarding_id in onboarding_ids:
        try:
            states.append(await project(session, plans, onboarding_id, now))
        except (UnknownOnboarding, UnknownPlan) as error:
            log.error("not projected: %s", error)
    return states


async def project_accounts(
    session: AsyncSession, plans: Mapping[str, Plan], account_ids: Iterable[str], now: datetime
) -> list[OnboardingState]:
    """Project every onboarding of these accounts."""
    onboardings = OnboardingRepository(session)
    ids: list[str] = []
    for account_id in dict.fromkeys(account_ids):
        ids.extend(await onboardings.ids_for_account(account_id))
    return await project_many(session, plans, ids, now)


async def replay(
    sessionmaker: async_sessionmaker[AsyncSession],
    plans: Mapping[str, Plan],
    now: datetime,
    *,
    batch_size: int = 200,
) -> int:
    """Re-project every onboarding (e.g. after a plan change), one transaction per page."""
    after: str | None = None
    count = 0
    while True:
        async with sessionmaker() as session, session.begin():
            ids = await OnboardingRepository(session).ids(after, batch_size)
            count += len(await project_many(session, plans, ids, now))
        if len(ids) < batch_size:
            return count
        after = ids[-1]
