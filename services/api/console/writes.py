"""The console's forms: evidence, pause, resume, amendment and share links. Each builds the
REST route's command model (``services.api.commands``) from the form and records it through
``record_command`` — the REST writes' own path — then shows the onboarding again."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

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
from shared.storage.console_access import ShareLinkRepository
from shared.storage.onboardings import OnboardingRepository

router = APIRouter(include_in_schema=False)


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'form'}: {e['msg']}" for e in exc.errors()
    )


OnboardingCommand = RecordEvidence | PauseOnboarding | ResumeOnboarding | AmendMilestone


async def _command(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    viewer: ViewerDep,
    onboarding_id: OnboardingId,
    model: type[OnboardingCommand],
    done: str,
) -> Response:
    fields = await writer_form(request, viewer)
    now = datetime.now(UTC)
    try:
        command = model.model_validate(fields)
        fact = command.fact(onboarding_id, now, viewer.key.name)
        await record_command(session, runtime, fact, now)
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


def _command_route(path: str, model: type[OnboardingCommand], done: str) -> None:
    """``POST /onboardings/{id}/<path>``: the form of one REST write command."""

    async def post(
        onboarding_id: OnboardingId,
        request: Request,
        runtime: RuntimeDep,
        session: SessionDep,
        viewer: ViewerDep,
    ) -> Response:
        return await _command(request, runtime, session, viewer, onboarding_id, model, done)

    router.add_api_route(f"/onboardings/{{onboarding_id}}/{path}", post, methods=["POST"])


_command_route("evidence", RecordEvidence, "evidence")
_command_route("pause", PauseOnboarding, "pause")
_command_route("resume", ResumeOnboarding, "resume")
_command_route("amendments", AmendMilestone, "amend")


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
