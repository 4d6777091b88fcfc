"""The API's composition root: ``create_app(settings)`` wires routes, auth, errors, metrics.

Engine and bus are made once in the lifespan and released at shutdown; the embedded runner
passes its own sessionmaker and in-memory bus instead, so one process shares them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api import console, errors, metrics
from services.api.auth import bearer_token
from services.api.body_guard import BodyGuard
from services.api.dependencies import Runtime
from services.api.headers import SecurityHeaders
from services.api.routes import (
    escalations,
    health,
    mixpanel,
    onboarding_writes,
    onboardings,
    reports,
    segment,
)
from shared.bus.bus import Bus
from shared.bus.factory import create_bus
from shared.config import Settings
from shared.domain.plans import Plan
from shared.plan_files import configured_plans
from shared.storage.api_keys import ApiKeyRepository
from shared.storage.engine import create_engine, create_sessionmaker

_ROUTERS = (
    onboardings.router,
    onboarding_writes.router,
    reports.router,
    escalations.router,
    segment.router,
    mixpanel.router,
    health.router,
    metrics.router,
)


def create_app(
    settings: Settings,
    *,
    plans: Mapping[str, Plan] | None = None,
    sessionmaker: async_sessionmaker[AsyncSession] | None = None,
    bus: Bus | None = None,
) -> FastAPI:
    """Build the API. Resources not passed in are created (and disposed) by the lifespan."""
    loaded = dict(plans) if plans is not None else configured_plans(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            makers = sessionmaker
            if makers is None:
                engine = create_engine(settings.database_url, application_name="firstvalue-api")
                stack.push_async_callback(engine.dispose)
                makers = create_sessionmaker(engine)
            app_bus = bus
            if app_bus is None and settings.kafka_bootstrap_servers:
                app_bus = create_bus(settings)
                await app_bus.start()
                stack.push_async_callback(app_bus.stop)
            await _bootstrap_keys(settings, makers)
            app.state.runtime = Runtime(settings, loaded, makers, app_bus)
            yield

    app = FastAPI(
        title="firstvalue",
        summary="Onboarding is done when the customer has a result, not when your checklist is.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc: the console serves them with local assets
        redoc_url=None,
    )
    errors.install(app)
    for router in _ROUTERS:
        app.include_router(router)
    console.install(app)
    app.add_middleware(BodyGuard, limit=settings.max_body_bytes, guarded=_keyed_routes())
    app.add_middleware(metrics.RequestMetrics)
    app.add_middleware(SecurityHeaders)  # outermost: on every response, refusals included
    return app


def _keyed_routes() -> list[re.Pattern[str]]:
    """The paths of the routes that take an API key (bearer): the REST routes, whose bodies
    ``BodyGuard`` bounds. The vendor ingest routes take the vendors' write keys and bound
    their bodies themselves; the probes and docs read no body."""
    return [
        route.path_regex
        for router in _ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute) and _calls(route.dependant, bearer_token)
    ]


def _calls(dependant: Dependant, function: Callable[..., object]) -> bool:
    return dependant.call is function or any(_calls(d, function) for d in dependant.dependencies)


async def _bootstrap_keys(settings: Settings, makers: async_sessionmaker[AsyncSession]) -> None:
    """Keys given in ``FIRSTVALUE_API_KEYS`` exist (hashed) before the first request."""
    if not settings.api_keys:
        return
    async with makers() as session, session.begin():
        keys = ApiKeyRepository(session)
        for spec in settings.api_keys:
            await keys.ensure(spec.name, spec.scopes, spec.key, datetime.now(UTC))
