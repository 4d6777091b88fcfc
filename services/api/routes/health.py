"""Probes: liveness and readiness (the database answers). ``/metrics``: services/api/metrics.py."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from services.api.dependencies import RuntimeDep

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Ready when the database answers a trivial query."""
    try:
        async with runtime.read_sessionmaker() as session:
            await session.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        body = {"error": {"code": "unavailable", "message": f"database unreachable: {exc}"}}
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ready"})
