"""Probes: liveness and readiness (the database answers). ``/metrics``: services/api/metrics.py."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from services.api.dependencies import RuntimeDep
from shared.storage.onboardings import OnboardingRepository

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Ready when the database answers; also how many onboardings use a plan this server
    does not load (they cannot be projected: never silent)."""
    try:
        async with runtime.sessionmaker() as session:
            off_plan = await OnboardingRepository(session).count_off_plans(runtime.plans)
    except (SQLAlchemyError, OSError) as exc:
        body = {"error": {"code": "unavailable", "message": f"database unreachable: {exc}"}}
        return JSONResponse(body, status_code=503)
    if off_plan:
        return JSONResponse({"status": "ready", "unprojectable_onboardings": off_plan})
    return JSONResponse({"status": "ready"})
