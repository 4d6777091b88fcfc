"""Probes: liveness and readiness. ``/metrics``: services/api/metrics.py.

``/readyz`` answers within a second whatever its dependencies do: each is probed with a
timeout (``shared.observability.readiness``), and the body names each check, so a 503 says
what is down. ``checks`` is a dict: more checks join it without changing its shape.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from services.api.dependencies import Runtime, RuntimeDep
from shared.observability.readiness import PROBE_TIMEOUT_SECONDS, Readiness, is_ready
from shared.storage.onboardings import OnboardingRepository

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Ready when the database (and, with HTTP ingest, the broker) answer their probes. The
    body also counts the onboardings on a plan this server does not load: they cannot be
    projected, which must never be silent."""
    checks = await Readiness(runtime.read_sessionmaker, runtime.bus).check()
    if is_ready(checks):
        body: dict[str, object] = {"status": "ready", "checks": checks}
        off_plan = await _off_plan(runtime)
        if off_plan:
            body["unprojectable_onboardings"] = off_plan
        return JSONResponse(body)
    down = ", ".join(
        f"{name} ({check['error']})" for name, check in checks.items() if "error" in check
    )
    failed = {
        "error": {"code": "unavailable", "message": f"not ready: {down} down"},
        "status": "unavailable",
        "checks": checks,
    }
    return JSONResponse(failed, status_code=503)


async def _off_plan(runtime: Runtime) -> int | None:
    """Onboardings whose plan is not loaded here; None when the count does not come in time
    (readiness answers within a second whatever the database does)."""

    async def count() -> int:
        async with runtime.read_sessionmaker() as session:
            return await OnboardingRepository(session).count_off_plans(runtime.plans)

    try:
        return await asyncio.wait_for(count(), PROBE_TIMEOUT_SECONDS)
    except Exception:  # readiness reports, it never raises
        return None
