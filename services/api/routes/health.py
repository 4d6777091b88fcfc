"""Probes: liveness and readiness. ``/metrics``: services/api/metrics.py.

``/readyz`` answers within a second whatever its dependencies do: each is probed with a
timeout (``shared.observability.readiness``), and the body names each check, so a 503 says
what is down. ``checks`` is a dict: more checks join it without changing its shape.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from services.api.dependencies import RuntimeDep
from shared.observability.readiness import Readiness, is_ready

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Ready when the database (and, with HTTP ingest, the broker) answer their probes."""
    checks = await Readiness(runtime.sessionmaker, runtime.bus).check()
    if is_ready(checks):
        return JSONResponse({"status": "ready", "checks": checks})
    down = ", ".join(
        f"{name} ({check['error']})" for name, check in checks.items() if "error" in check
    )
    body = {
        "error": {"code": "unavailable", "message": f"not ready: {down} down"},
        "status": "unavailable",
        "checks": checks,
    }
    return JSONResponse(body, status_code=503)
