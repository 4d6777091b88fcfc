"""``project``: the one path from facts to stored state, shared by the consumer, the timers,
manual facts and replay.

fold the onboarding's state from its stored projection and the few facts that can change
it (``folded.fold_page``, equal to ``evaluate`` over every fact: docs/projection.md) →
save the projection with its fold record → queue in the outbox the transitions the
watermark of its input lets announce (``announce.announce_page``: ``transitions(announced,
state seen at the watermark)``, docs/watermark.md), all in the caller's transaction. A page
of onboardings goes through together (a handful of statements per page, not per onboarding),
and a state that re-derives unchanged is neither rewritten nor re-announced.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shared.domain.codec import state_to_dict
from shared.domain.facts import OnboardingRegistered
from shared.domain.plans import Plan
from shared.domain.state import OnboardingState
from shared.domain.stored_state import StoredState
from shared.observability.metrics import UNPROJECTABLE
from shared.projection.announce import IDLE, Heard, announce_page
from shared.projection.errors import UnknownOnboarding, UnknownPlan
from shared.projection.folded import fold_page
from shared.storage.onboardings import OnboardingRepository
from shared.storage.projections import ProjectionRepository

log = logging.getLogger(__name__)


async def _project_page(
    session: AsyncSession,
    plans: Mapping[str, Plan],
    onboarding_ids: Iterable[str],
    now: datetime,
    heard: Mapping[str, Heard] | None = None,
    idle: timedelta = IDLE,
    input_watermark: datetime | None = None,
) -> tuple[list[OnboardingState], list[UnknownOnboarding | UnknownPlan]]:
    """Project a page of onboardings with a fixed number of statements, whatever its size:
    lock the registrations (in id order), load every fact, evaluate, then write only the
    projections whose encoded state changed and queue their transitions."""
    ids = list(dict.fromkeys(onboarding_ids))
    onboardings = OnboardingRepository(session)
    registrations = await onboardings.lock_many(ids)
    errors: list[UnknownOnboarding | UnknownPlan] = []
    chosen: list[tuple[OnboardingRegistered, Plan]] = []
    for onboarding_id in ids:
        registration = registrations.get(onboarding_id)
        if registration is None:
            errors.append(UnknownOnboarding(onboarding_id))
            continue
        plan = plans.get(registration.plan_key)
        if plan is None:
            errors.append(
                UnknownPlan(
                    f"onboarding {onboarding_id!r} uses unknown plan {registration.plan_key!r}"
                )
            )
            continue
        chosen.append((registration, plan))
    if not chosen:
        return [], errors
    projections = ProjectionRepository(session)
    ids = [r.onboarding_id for r, _ in chosen]
    stored = await projections.state_dicts(ids)
    folded = await fold_page(session, chosen, stored, await projections.folds(ids), now)
    states: list[OnboardingState] = []
    changed: list[tuple[OnboardingState, StoredState]] = []
    folds: dict[str, dict[str, Any]] = {}
    announcing: list[tuple[OnboardingState, OnboardingState | None]] = []
    for (registration, _plan), result in zip(chosen, folded, strict=True):
        onboarding_id = registration.onboarding_id
        state = result.state
        folds[onboarding_id] = result.fold
        states.append(state)
        encoded = state_to_dict(state)
        before = stored.get(onboarding_id)
        if encoded == before:
            # Re-derived to the very same state (``as_of`` included, so the stored one was
            # made at this same moment): writing it again would change nothing; only a
            # watermark heard since can announce more of it.
            if heard and registration.account_id in heard:
                announcing.append((state, state))
            continue
        changed.append((state, encoded))
        if result.previous is None and before is not None:
            # A state stored by an older version that no longer decodes: treat as first
            # projection. Transition ids are deterministic, so the outbox drops repeats.
            log.warning("stored state of %s does not decode; re-announcing", onboarding_id)
        announcing.append((state, result.previous))
    await projections.save_many(changed, now, folds)
    await announce_page(
        session, announcing, now, heard=heard, idle=idle, input_watermark=input_watermark
    )
    return states, errors


async def project(
    session: AsyncSession, plans: Mapping[str, Plan], onboarding_id: str, now: datetime
) -> OnboardingState:
    """Re-derive one onboarding's state as of ``now``, store it, queue its transitions."""
    states, errors = await _project_page(session, plans, [onboarding_id], now)
    if errors:
        raise errors[0]
    return states[0]


async def project_many(
    session: AsyncSession,
    plans: Mapping[str, Plan],
    onboarding_ids: Iterable[str],
    now: datetime,
    *,
    heard: Mapping[str, Heard] | None = None,
    idle: timedelta = IDLE,
    input_watermark: datetime | None = None,
) -> list[OnboardingState]:
    """Project each onboarding (a repeated id once); one that cannot be (unknown id, plan no
    longer configured) is logged and skipped — its last projection stays — instead of
    stalling all the others."""
    states, errors = await _project_page(
        session, plans, onboarding_ids, now, heard, idle, input_watermark
    )
    for error in errors:
        log.error("not projected: %s", error)
        reason = "unknown_plan" if isinstance(error, UnknownPlan) else "unknown_onboarding"
        UNPROJECTABLE.labels(reason).inc()
    return states


async def project_accounts(
    session: AsyncSession,
    plans: Mapping[str, Plan],
    account_ids: Iterable[str],
    now: datetime,
    *,
    heard: Mapping[str, Heard] | None = None,
    idle: timedelta = IDLE,
    input_watermark: datetime | None = None,
) -> list[OnboardingState]:
    """Project every onboarding of these accounts (``heard``: the watermarks their facts
    notices carried, by account id; ``input_watermark``: the input's as a whole)."""
    ids = await OnboardingRepository(session).ids_for_accounts(account_ids)
    return await project_many(
        session, plans, ids, now, heard=heard, idle=idle, input_watermark=input_watermark
    )
