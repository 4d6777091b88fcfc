"""Probes: liveness and readiness. ``/metrics``: services/api/metrics.py.

``/readyz`` answers within a second whatever its dependencies do: each is probed with a
timeout (``shared.observability.readiness``), and the body names each check, so a 503 says
what is down. ``checks`` is a dict: more checks join it without changing its shape.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from services.api.dependencies import Runtime, RuntimeDep
from shared.observability.metrics import record_watermark_lag
from shared.observability.readiness import PROBE_TIMEOUT_SECONDS, Readiness, is_ready
from shared.projection.announce import watermark_lag
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
        off_plan, lag = await asyncio.gather(_off_plan(runtime), _watermark_lag(runtime))
        if lag is not None:
            checks["watermark"] = {"status": "up", "lag_seconds": round(lag, 3)}
        body: dict[str, object] = {"status": "ready", "checks": checks}
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


async def _watermark_lag(runtime: Runtime) -> float | None:
    """How far the input's watermark is behind the clock (announcements wait for it: it is
    detail, never a reason to be unready); None when it does not come in time."""
    idle = timedelta(seconds=runtime.settings.watermark_idle_seconds)

    async def lag() -> float:
        async with runtime.read_sessionmaker() as session:
            return await watermark_lag(session, datetime.now(UTC), idle)

    try:
        seconds = await asyncio.wait_for(lag(), PROBE_TIMEOUT_SECONDS)
    except Exception:  # readiness reports, it never raises
        return None
    record_watermark_lag(seconds)
    return seconds
