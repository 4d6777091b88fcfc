"""schemathesis against ``/openapi.json``, in process (ASGI), over the seeded history: every
REST operation, generated requests, no 5xx and no response outside the documented schema.

The app here is the standalone API (``create_app(settings)`` making its own engine in its
lifespan, as ``firstvalue api`` does), run by schemathesis on its own loop. The Segment
and Mixpanel ingest routes answer in the vendors' wire formats and have their own tests.
Bounded: a few examples per operation, so the whole file takes seconds.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.api.app import create_app
from shared.config import load_settings

from .api_seed import seed
from .stack import BACKENDS, api_stack, fresh_database

pytestmark = [pytest.mark.e2e]

KEY = "fv_schema_" + secrets.token_urlsafe(16)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
REST = r"^/v1/(onboardings|reports|escalations)"


async def _seeded(
    backend: str, directory: Path, ready: asyncio.Event, done: asyncio.Event, out: dict[str, str]
) -> None:
    async with fresh_database(backend, directory) as url:
        async with api_stack(url, None, timer_interval_seconds=3600) as stack:
            seeded = await seed(stack, datetime.now(UTC))
        out["url"] = url
        out["ids"] = ",".join(s.onboarding_id for s in seeded)
        ready.set()
        await done.wait()


@pytest.fixture(scope="module", params=BACKENDS)
def api_schema(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """The seeded database's API, loaded as a schemathesis schema (REST routes only)."""
    if request.param == "postgresql":
        from .stack import postgres_server_url

        postgres_server_url()  # skips (or fails in CI) without a server
    loop = asyncio.new_event_loop()
    ready, done, out = asyncio.Event(), asyncio.Event(), {}
    task = loop.create_task(
        _seeded(request.param, tmp_path_factory.mktemp("api-schema"), ready, done, out)
    )
    loop.run_until_complete(ready.wait())
    config = load_settings(database_url=out["url"], api_keys=f"schema:write:{KEY}")
    app = create_app(config)
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app).include(path_regex=REST)
        yield schema, out["ids"].split(",")
    finally:
        done.set()
        loop.run_until_complete(task)
        loop.close()


def test_rest_api_conforms_to_its_openapi(api_schema: tuple[Any, list[str]]) -> None:
    schema, seeded_ids = api_schema
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9, [o.label for o in operations]
    seen: Counter[tuple[str, int]] = Counter()
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def conforms(case: Any) -> None:
            response = case.call_and_validate(
                headers={"Authorization": f"Bearer {KEY}"}, checks=CHECKS
            )
            seen[(case.operation.label, response.status_code)] += 1

        conforms()
        if "{onboarding_id}" in operation.path and operation.method.upper() == "GET":
            for onboarding_id in seeded_ids:  # generated ids are unknown ones: 404s
                case = operation.Case(path_parameters={"onboarding_id": onboarding_id})
                response = case.call_and_validate(
                    headers={"Authorization": f"Bearer {KEY}"}, checks=CHECKS
                )
                seen[(operation.label, response.status_code)] += 1
    # The generated requests reached the routes' logic, not only validation: every read
    # operation answered 200 at least once.
    ok = {label for (label, status), _ in seen.items() if status == 200}
    reads = {o.label for o in operations if o.method.upper() == "GET"}
    assert reads <= ok, (reads - ok, seen)
