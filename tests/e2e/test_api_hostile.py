"""Hostile-but-fair requests to the REST API, on SQLite and PostgreSQL: forged cursors,
cohorts and moments at the calendar's limits, NUL and unpaired surrogates in parameters,
path ids and bodies. Each answers a 4xx in the standard error body — never a 500, and the
same on both backends."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio

from .stack import BACKENDS, Stack, api_stack, fresh_database

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

SIGNED = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)
PAGED = {"/v1/onboardings": 2, "/v1/reports/at-risk": 2, "/v1/escalations": 3}
EDGE_MOMENTS = ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00")


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    directory: Path = tmp_path_factory.mktemp("api-hostile")
    async with (
        fresh_database(request.param, directory) as url,
        api_stack(url, None, timer_interval_seconds=3600) as running,
    ):
        yield running


def _writer(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.write_only_key}"}


async def _register(stack: Stack) -> str:
    body = {"account_id": f"acct-{uuid.uuid4().hex[:8]}", "plan": "smb"}
    body["signed_at"] = SIGNED.isoformat()
    response = await stack.client.post("/v1/onboardings", json=body, headers=_writer(stack))
    assert response.status_code == 201, response.text
    onboarding_id: str = response.json()["onboarding"]["onboarding_id"]
    return onboarding_id


def _error(response: httpx.Response, status: int, code: str, *words: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    for word in words:
        assert word in error["message"], error
    return error


def _cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(parts))).decode().rstrip("=")


FORGED = {  # the cursor's first part, then its ids
    "naive moment": ("2026-11-28T17:12:48", "onb_x"),
    "moment overflowing UTC": ("0001-01-01T00:00:00+01:00", "onb_x"),
    "object id": ("2026-11-28T17:12:48+00:00", {"id": "onb_x"}),
    "list id": ("2026-11-28T17:12:48+00:00", ["onb_x"]),
    "null id": ("2026-11-28T17:12:48+00:00", None),
    "bool id": ("2026-11-28T17:12:48+00:00", True),
    "number id": ("2026-11-28T17:12:48+00:00", 7),
    "null moment": (None, "onb_x"),
    "bool moment": (True, "onb_x"),
    "NUL in id": ("2026-11-28T17:12:48+00:00", "onb_\x00x"),
}


@pytest.mark.parametrize("path", PAGED)
@pytest.mark.parametrize("forged", FORGED.values(), ids=FORGED)
async def test_a_forged_cursor_is_400_invalid_cursor_on_every_paged_route(
    stack: Stack, path: str, forged: tuple[Any, Any]
) -> None:
    moment, first_id = forged
    ids = [first_id] + ["rule"] * (PAGED[path] - 2)
    response = await stack.client.get(
        path, params={"cursor": _cursor(moment, *ids)}, headers=stack.auth()
    )
    _error(response, 400, "invalid_cursor", "cursor")


@pytest.mark.parametrize("path", PAGED)
async def test_a_cursor_that_is_not_base64_json_is_400(stack: Stack, path: str) -> None:
    for cursor in ("%%%", "bm90IGpzb24", _cursor(*["x"] * 5), "é", "A" * 5000):
        response = await stack.client.get(path, params={"cursor": cursor}, headers=stack.auth())
        assert response.status_code in (400, 422), (cursor, response.text)
        assert response.json()["error"]["code"] in ("invalid_cursor", "invalid_request")


async def test_a_handed_out_cursor_still_pages(stack: Stack) -> None:
    for _ in range(3):
        await _register(stack)
    first = await stack.client.get("/v1/onboardings?limit=1", headers=stack.auth())
    cursor = first.json()["next_cursor"]
    assert cursor is not None
    second = await stack.client.get(
        "/v1/onboardings", params={"limit": 1, "cursor": cursor}, headers=stack.auth()
    )
    assert second.status_code == 200, second.text
    assert second.json()["items"][0]["onboarding_id"] != first.json()["items"][0]["onboarding_id"]


@pytest.mark.parametrize("path", ["/v1/onboardings", "/v1/reports/ttfv", "/v1/reports/at-risk"])
@pytest.mark.parametrize("cohort", ["9999-12", "0001-01", "1969-12", "3000-01"])
async def test_a_cohort_beyond_the_calendar_is_422(stack: Stack, path: str, cohort: str) -> None:
    response = await stack.client.get(path, params={"cohort": cohort}, headers=stack.auth())
    _error(response, 422, "invalid_request", "cohort")


@pytest.mark.parametrize("cohort", ["1970-01", "2999-12"])
async def test_a_cohort_at_the_edges_of_the_range_is_answered(stack: Stack, cohort: str) -> None:
    response = await stack.client.get(
        "/v1/onboardings", params={"cohort": cohort}, headers=stack.auth()
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("moment", EDGE_MOMENTS)
async def test_as_of_at_the_limits_of_the_calendar_is_422(stack: Stack, moment: str) -> None:
    onboarding = await _register(stack)
    for target in (onboarding, "onb_unknown"):
        response = await stack.client.get(
            f"/v1/onboardings/{target}", params={"as_of": moment}, headers=stack.auth()
        )
        _error(response, 422, "invalid_request", "as_of")


@pytest.mark.parametrize("moment", EDGE_MOMENTS)
async def test_body_moments_at_the_limits_of_the_calendar_are_422(
    stack: Stack, moment: str
) -> None:
    onboarding = await _register(stack)
    register = {"account_id": "acct-edge", "plan": "smb", "signed_at": moment}
    bodies = {
        "": register,
        "/evidence": {
            "milestone_key": "sponsor_confirmation",
            "confirmed_by": "Dana",
            "channel": "email",
            "at": moment,
        },
        "/pause": {"reason": "holiday", "at": moment},
        "/resume": {"at": moment},
        "/amendments": {
            "milestone_key": "kickoff_call",
            "author": "Ana",
            "reason": "scope",
            "due_day": 9,
            "at": moment,
        },
    }
    for suffix, body in bodies.items():
        path = "/v1/onboardings" + (f"/{onboarding}{suffix}" if suffix else "")
        response = await stack.client.post(path, json=body, headers=_writer(stack))
        field = "signed_at" if not suffix else "at"
        _error(response, 422, "invalid_request", field)


@pytest.mark.parametrize(
    "path", ["/v1/onboardings", "/v1/reports/ttfv", "/v1/reports/at-risk", "/v1/escalations"]
)
async def test_nul_in_a_query_parameter_is_422(stack: Stack, path: str) -> None:
    response = await stack.client.get(f"{path}?csm=a%00b", headers=stack.auth())
    _error(response, 422, "invalid_request", "csm", "NUL")


async def test_nul_in_a_path_id_is_422(stack: Stack) -> None:
    read = await stack.client.get("/v1/onboardings/onb_x%00", headers=stack.auth())
    _error(read, 422, "invalid_request", "onboarding_id", "NUL")
    pause = await stack.client.post(
        "/v1/onboardings/onb_x%00/pause", json={"reason": "holiday"}, headers=_writer(stack)
    )
    _error(pause, 422, "invalid_request", "onboarding_id", "NUL")


async def test_nul_in_a_body_string_is_422(stack: Stack) -> None:
    onboarding = await _register(stack)
    base = f"/v1/onboardings/{onboarding}"
    cases = [
        ("/v1/onboardings", {"account_id": "a\x00b", "plan": "smb", "signed_at": "2026-09-01"}),
        (
            f"{base}/evidence",
            {"milestone_key": "sponsor_confirmation", "confirmed_by": "D\x00", "channel": "call"},
        ),
        (f"{base}/pause", {"reason": "hol\x00iday"}),
        (
            f"{base}/amendments",
            {"milestone_key": "kickoff_call", "author": "Ana", "reason": "r", "title": "\x00"},
        ),
    ]
    for path, body in cases:
        response = await stack.client.post(path, json=body, headers=_writer(stack))
        _error(response, 422, "invalid_request", "NUL")


async def test_an_unpaired_surrogate_in_a_body_string_is_422(stack: Stack) -> None:
    onboarding = await _register(stack)
    raw = b'{"reason": "holiday \\ud800"}'
    response = await stack.client.post(
        f"/v1/onboardings/{onboarding}/pause",
        content=raw,
        headers=_writer(stack) | {"Content-Type": "application/json"},
    )
    _error(response, 422, "invalid_request", "reason")
