"""schemathesis against ``/openapi.json``, in process (ASGI), over the seeded history: every
REST operation, generated requests, no 5xx and no response outside the documented schema.

The app here is the standalone API (``create_app(settings)`` making its own engine in its
lifespan, as ``firstvalue api`` does), run by schemathesis on its own loop. The Segment
and Mixpanel ingest routes answer in the vendors' wire formats and have their own tests.

Beyond what the schema alone makes schemathesis send, each generated request may have its
cursor, cohort, moments (``as_of``, ``signed_at``, ``at``) and a text field replaced by a
value drawn from its whole range: cursors of every JSON shape and every moment and offset,
months of years 0000–9999, moments from year 1 to 9999 with offsets up to ±23:59, and text
holding NUL. ``EXAMPLES`` per operation (more under ``CI=true``) keeps the file to a minute
or two on both backends.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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
EXAMPLES = 300 if os.environ.get("CI") == "true" else 150

OFFSETS = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
MOMENTS = st.one_of(
    st.datetimes(timezones=st.none() | OFFSETS).map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59-01:00",
            "9999-12-31T23:59:59.999999Z",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:00:00Z",
            "2999-12-31T23:59:59Z",
            "3000-01-01T00:00:00Z",
        ]
    ),
)
COHORTS = st.builds(
    lambda year, month: f"{year:04d}-{month:02d}",
    st.integers(min_value=0, max_value=9999),
    st.integers(min_value=1, max_value=12),
)
IDS = st.one_of(
    st.text(max_size=300),
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.lists(st.text(max_size=5), max_size=2),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)


def _encoded(parts: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(parts)).decode().rstrip("=")


CURSORS = st.one_of(
    st.builds(lambda at, ids: _encoded([at, *ids]), MOMENTS, st.lists(IDS, min_size=1, max_size=3)),
    st.builds(
        lambda at, ids: _encoded([at, *ids]), MOMENTS, st.lists(st.text(), min_size=1, max_size=2)
    ),
    st.text(max_size=100),
)
NUL_TEXT = st.builds(lambda a, b: f"{a}\x00{b}", st.text(max_size=5), st.text(max_size=5))


def _hostile(case: Any, data: st.DataObject) -> None:
    """Replace some of the case's values with ones drawn from their whole range."""
    names = {p.name for p in case.operation.query}
    query = dict(case.query or {})
    for name, values in (("cursor", CURSORS), ("cohort", COHORTS), ("as_of", MOMENTS)):
        if name in names and data.draw(st.booleans(), label=f"replace {name}"):
            query[name] = data.draw(values, label=name)
    if "csm" in names and data.draw(st.integers(0, 9), label="NUL csm") == 0:
        query["csm"] = data.draw(NUL_TEXT, label="csm")
    case.query = query
    if isinstance(case.body, dict):
        body = dict(case.body)
        for name in ("signed_at", "at"):
            if name in body and data.draw(st.booleans(), label=f"replace {name}"):
                body[name] = data.draw(MOMENTS, label=name)
        texts = sorted(k for k, v in body.items() if isinstance(v, str))
        if texts and data.draw(st.integers(0, 9), label="NUL in body") == 0:
            body[data.draw(st.sampled_from(texts), label="NUL field")] = data.draw(NUL_TEXT)
        case.body = body


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

        @given(case=operation.as_strategy(), data=st.data())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def conforms(case: Any, data: st.DataObject) -> None:
            _hostile(case, data)
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
