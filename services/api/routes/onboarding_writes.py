"""Write side of onboardings: register, evidence, pause, resume, amendments.

Each request is one shell: validate the body → build the fact → ``record_fact`` (checks
against the stored onboarding and plan, stores, projects, queues transitions) → store the
response under its ``Idempotency-Key`` → commit → relay the outbox to the bus. The write
key is required; refusals are 4xx with the standard error body and change nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.auth import WriteKey
from services.api.commands import (
    AmendMilestone,
    PauseOnboarding,
    RecordEvidence,
    RegisterOnboarding,
    ResumeOnboarding,
)
from services.api.dependencies import Runtime, RuntimeDep, SessionDep
from services.api.errors import WRITE_ERRORS, ApiError
from services.api.idempotency import IdempotencyKey, fingerprint, respond_once
from services.api.params import OnboardingId
from services.api.report_schemas import WriteResult
from services.api.schemas import detail
from shared.domain.facts import OnboardingRegistered
from shared.projection.manual import (
    CommandFact,
    ConflictingRegistration,
    FactRejected,
    InvalidPauseState,
    RecordedFact,
    UnknownMilestone,
    UnknownOnboarding,
    UnknownPlan,
    record_fact,
)
from shared.projection.publisher import relay_outbox
from shared.storage.onboardings import OnboardingRepository

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/onboardings", tags=["onboardings"], responses=WRITE_ERRORS)

_CREATED: dict[str, Any] = {
    "status_code": 201,
    "response_model": WriteResult,
    "responses": {200: {"model": WriteResult, "description": "that exact fact existed already"}},
}


@dataclass(frozen=True)
class _Shell:
    """What every write route takes besides its path and body."""

    request: Request
    runtime: Runtime
    session: AsyncSession
    key_name: str
    idempotency_key: str | None


async def _shell(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    key: WriteKey,
    idempotency_key: IdempotencyKey = None,
) -> _Shell:
    return _Shell(request, runtime, session, key.name, idempotency_key)


Shell = Annotated[_Shell, Depends(_shell)]


@router.post("", **_CREATED)
async def register_onboarding(body: RegisterOnboarding, shell: Shell) -> JSONResponse:
    """Register an onboarding at contract signature (200 if that exact one exists)."""
    return await _write(shell, body, lambda _now: body.fact())


@router.post("/{onboarding_id}/evidence", **_CREATED)
async def record_evidence(
    onboarding_id: OnboardingId, body: RecordEvidence, shell: Shell
) -> JSONResponse:
    """Record manual evidence for a milestone that takes it (e.g. sponsor confirmation)."""
    return await _write(shell, body, lambda now: body.fact(onboarding_id, now, shell.key_name))


@router.post("/{onboarding_id}/pause", **_CREATED)
async def pause_onboarding(
    onboarding_id: OnboardingId, body: PauseOnboarding, shell: Shell
) -> JSONResponse:
    """Pause SLA and escalation clocks (409 if already paused)."""
    return await _write(shell, body, lambda now: body.fact(onboarding_id, now, shell.key_name))


@router.post("/{onboarding_id}/resume", **_CREATED)
async def resume_onboarding(
    onboarding_id: OnboardingId, body: ResumeOnboarding, shell: Shell
) -> JSONResponse:
    """End a pause (409 if not paused)."""
    return await _write(shell, body, lambda now: body.fact(onboarding_id, now, shell.key_name))


@router.post("/{onboarding_id}/amendments", **_CREATED)
async def amend_milestone(
    onboarding_id: OnboardingId, body: AmendMilestone, shell: Shell
) -> JSONResponse:
    """Record an amendment to one milestone, with author and reason (history is kept)."""
    return await _write(shell, body, lambda now: body.fact(onboarding_id, now, shell.key_name))


async def _write(
    shell: _Shell, body: BaseModel, build: Callable[[datetime], CommandFact]
) -> JSONResponse:
    runtime, session = shell.runtime, shell.session

    async def run() -> tuple[int, BaseModel]:
        now = datetime.now(UTC)
        recorded = await record_command(session, runtime, build(now), now)
        state = recorded.state
        result = WriteResult(
            fact_id=recorded.fact_id,
            recorded=recorded.new,
            onboarding=detail(state, runtime.plans.get(state.plan_key)),
        )
        return (201 if recorded.new else 200), result

    request_hash = fingerprint(shell.request.method, shell.request.url.path, body)
    response = await respond_once(session, shell.key_name, shell.idempotency_key, request_hash, run)
    await session.commit()  # the request owns the transaction; the relay reads committed rows
    await relay(runtime)
    return response


async def record_command(
    session: AsyncSession, runtime: Runtime, fact: CommandFact, now: datetime
) -> RecordedFact:
    """Check and record one command's fact: the one path of the REST writes and the console
    forms. A refusal is the ``ApiError`` the REST route answers with."""
    if not isinstance(fact, OnboardingRegistered):
        await _check_after_signature(session, fact.onboarding_id, fact.at)
    try:
        return await record_fact(session, runtime.plans, fact, now)
    except FactRejected as exc:
        raise _refusal(exc) from exc


async def _check_after_signature(session: AsyncSession, onboarding_id: str, at: datetime) -> None:
    registration = await OnboardingRepository(session).registration(onboarding_id)
    if registration is None:
        raise _refusal(UnknownOnboarding(onboarding_id))
    if at < registration.at:
        raise ApiError(
            422,
            "invalid_fact",
            f"'at' {at.isoformat()} is before the contract signature "
            f"({registration.at.isoformat()}) of onboarding '{onboarding_id}'",
        )


async def relay(runtime: Runtime) -> None:
    """Publish the transitions the write caused. If the bus fails, the rows stay in the
    outbox (committed) and the milestones service's next relay sends them."""
    if runtime.bus is None:
        return
    try:
        await relay_outbox(runtime.sessionmaker, runtime.bus)
    except Exception:  # the write is committed; the outbox keeps the messages for later
        log.warning(
            "outbox relay after an API write failed; left for the next relay", exc_info=True
        )


_REFUSALS: tuple[tuple[type[FactRejected], int, str], ...] = (
    (UnknownOnboarding, 404, "not_found"),
    (ConflictingRegistration, 409, "already_registered"),
    (InvalidPauseState, 409, "invalid_pause_state"),
    (UnknownPlan, 422, "unknown_plan"),
    (UnknownMilestone, 422, "unknown_milestone"),
)


def _refusal(exc: FactRejected) -> ApiError:
    for kind, status, code in _REFUSALS:
        if isinstance(exc, kind):
            return ApiError(status, code, str(exc))
    return ApiError(422, "invalid_fact", str(exc))
