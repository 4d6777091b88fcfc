"""The console's forms: evidence, pause, resume, amendment and share links. Each builds the
REST route's command model (``services.api.commands``) from the form and records it through
``record_command`` — the REST writes' own path — then shows the onboarding again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ValidationError

from services.api.commands import (
    AmendMilestone,
    PauseOnboarding,
    RecordEvidence,
    ResumeOnboarding,
)
from services.api.console.pages import onboarding_view
from services.api.console.session import ConsoleRefusal, ViewerDep, writer_form
from services.api.dependencies import RuntimeDep, SessionDep
from services.api.errors import ApiError
from services.api.params import OnboardingId
from services.api.routes.onboarding_writes import record_command, relay
from shared.domain.facts import (
    EvidenceRecorded,
    MilestoneAmended,
    OnboardingPaused,
    OnboardingResumed,
)
from shared.storage.console_access import ShareLinkRepository
from shared.storage.onboardings import OnboardingRepository

router = APIRouter(include_in_schema=False)

Fact = EvidenceRecorded | OnboardingPaused | OnboardingResumed | MilestoneAmended


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'form'}: {e['msg']}" for e in exc.errors()
    )


async def _command(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    viewer: ViewerDep,
    onboarding_id: OnboardingId,
    model: type[BaseModel],
    build: Callable[[BaseModel, datetime, str], Fact],
    done: str,
) -> Response:
    fields = await writer_form(request, viewer)
    now = datetime.now(UTC)
    try:
        command = model.model_validate(fields)
        await record_command(session, runtime, build(command, now, viewer.key.name), now)
    except ValidationError as exc:
        await session.rollback()
        return await onboarding_view(
            request, runtime, session, viewer, onboarding_id,
            error=_problems(exc), status_code=422,
        )  # fmt: skip
    except ApiError as exc:
        await session.rollback()
        return await onboarding_view(
            request, runtime, session, viewer, onboarding_id,
            error=exc.message, status_code=exc.status,
        )  # fmt: skip
    await session.commit()
    await relay(runtime)
    return RedirectResponse(f"/onboardings/{onboarding_id}?done={done}", status_code=303)


@router.post("/onboardings/{onboarding_id}/evidence")
async def record_evidence(
    onboarding_id: OnboardingId,
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    viewer: ViewerDep,
) -> Response:
    def build(c: BaseModel, now: datetime, key: str) -> Fact:
        assert isinstance(c, RecordEvidence)
        return c.fact(onboarding_id, now, key)

    return await _command(
        request, runtime, session, viewer, onboarding_id, RecordEvidence, build, "evidence"
    )


@router.post("/onboardings/{onboarding_id}/pause")
async def pause(
    onboarding_id: OnboardingId,
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    viewer: ViewerDep,
) -> Response:
    def build(c: BaseModel, now: datetime, key: str) -> Fact:
        assert isinstance(c, PauseOnboarding)
        return c.fact(onboarding_id, now, key)

    return await _command(
        request, runtime, session, viewer, onboarding_id, PauseOnboarding, build, "pause"
    )


@router.post("/onboardings/{onboarding_id}/resume")
async def resume(
    onboarding_id: OnboardingId,
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    viewer: ViewerDep,
) -> Response:
    def build(c: BaseModel, now: datetime, key: str) -> Fact:
        assert isinstance(c, ResumeOnboarding)
        return c.fact(onboarding_id, now, key)

    return await _command(
        request, runtime, session, viewer, onboarding_id, ResumeOnboarding, build, "resume"
    )


@router.post("/onboardings/{onboarding_id}/amendments")
async def amend(
    onboarding_id: OnboardingId,
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    viewer: ViewerDep,
) -> Response:
    def build(c: BaseModel, now: datetime, _key: str) -> Fact:
        assert isinstance(c, AmendMilestone)
        return c.fact(onboarding_id, now)

    return await _command(
        request, runtime, session, viewer, onboarding_id, AmendMilestone, build, "amend"
    )


@router.post("/onboardings/{onboarding_id}/share")
async def create_share_link(
    onboarding_id: OnboardingId,
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    viewer: ViewerDep,
) -> Response:
    """A new customer link, shown once on the page that answers (only its hash is kept)."""
    await writer_form(request, viewer)
    if await OnboardingRepository(session).registration(onboarding_id) is None:
        raise ConsoleRefusal(404, f"no onboarding '{onboarding_id}'")
    token = await ShareLinkRepository(session).create(
        onboarding_id, viewer.key.name, datetime.now(UTC)
    )
    url = str(request.url_for("share_page", token=token))
    return await onboarding_view(
        request, runtime, session, viewer, onboarding_id,
        notice="Share link made: copy it now, it is shown only once.", new_link=url,
        status_code=201,
    )  # fmt: skip


@router.post("/onboardings/{onboarding_id}/share/{token_hash}/revoke")
async def revoke_share_link(
    onboarding_id: OnboardingId,
    token_hash: str,
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
) -> Response:
    await writer_form(request, viewer)
    if not await ShareLinkRepository(session).revoke(onboarding_id, token_hash, datetime.now(UTC)):
        raise ConsoleRefusal(404, "no such live share link for this onboarding")
    return RedirectResponse(f"/onboardings/{onboarding_id}?done=revoke", status_code=303)
