"""The REST API over a demo history loaded through the real pipeline, on SQLite and
PostgreSQL: auth, list filters and pagination, detail with evidence, ``as_of``, probes."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from firstvalue.demo_data import DemoAccount, generate
from shared.plan_files import default_plans

from .stack import BACKENDS, Stack, api_stack, fresh_database

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

ACCOUNTS = 60


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    history = generate(
        default_plans(),
        datetime.now(UTC),
        accounts=ACCOUNTS,
        seed=5,
    )
    directory: Path = tmp_path_factory.mktemp("api")
    async with (
        fresh_database(request.param, directory) as url,
        api_stack(url, history, timer_interval_seconds=3600) as running,
    ):
        yield running


def _accounts(stack: Stack, scenario: str) -> list[DemoAccount]:
    assert stack.history is not None
    found = [a for a in stack.history.accounts if a.scenario == scenario]
    assert found, f"the demo history has no {scenario} account"
    return found


async def _walk(stack: Stack, query: str, limit: int = 7) -> list[dict]:
    items: list[dict] = []
    cursor: str | None = None
    while True:
        params = f"{query}&limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        response = await stack.client.get(f"/v1/onboardings?{params}", headers=stack.auth())
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def test_list_without_a_key_is_401_with_the_error_body(stack: Stack) -> None:
    response = await stack.client.get("/v1/onboardings")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_unknown_key_is_401(stack: Stack) -> None:
    response = await stack.client.get("/v1/onboardings", headers=stack.auth("fv_not-a-key"))
    assert response.status_code == 401
    assert response.json() == {"error": {"code": "unauthorized", "message": "unknown API key"}}


async def test_key_without_read_scope_is_403(stack: Stack) -> None:
    response = await stack.client.get("/v1/onboardings", headers=stack.auth(stack.write_only_key))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert "read" in response.json()["error"]["message"]


async def test_walking_every_page_yields_each_onboarding_once(stack: Stack) -> None:
    assert stack.history is not None
    items = await _walk(stack, "", limit=7)
    ids = [i["onboarding_id"] for i in items]
    assert len(ids) == len(set(ids)), "duplicates across pages"
    assert set(ids) == {a.onboarding_id for a in stack.history.accounts}, "gaps across pages"
    signed = [i["signed_at"] for i in items]
    assert signed == sorted(signed, reverse=True)


async def test_segment_filter_returns_exactly_that_segment(stack: Stack) -> None:
    assert stack.history is not None
    expected = Counter(a.segment for a in stack.history.accounts)
    for segment, count in expected.items():
        items = await _walk(stack, f"segment={segment}", limit=50)
        assert len(items) == count
        assert {i["segment"] for i in items} == {segment}


async def test_at_risk_lists_the_accounts_whose_tasks_are_done_without_value(
    stack: Stack,
) -> None:
    items = await _walk(stack, "at_risk=true", limit=200)
    assert items and all(i["tasks_done_no_value"] for i in items)
    listed = {i["onboarding_id"] for i in items}
    assert {a.onboarding_id for a in _accounts(stack, "tasks_done_no_value")} <= listed


async def test_status_breach_and_csm_filters_compose(stack: Stack) -> None:
    onboarded = await _walk(stack, "status=onboarded", limit=200)
    assert onboarded and {i["status"] for i in onboarded} == {"onboarded"}
    assert all(i["onboarded_at"] for i in onboarded)
    severe = await _walk(stack, "breach=severe", limit=200)
    assert {i["breach"] for i in severe} <= {"severe"}
    csm = onboarded[0]["csm"]
    both = await _walk(stack, f"status=onboarded&csm={csm.replace(' ', '%20')}", limit=200)
    assert both and all(i["csm"] == csm and i["status"] == "onboarded" for i in both)


@pytest.mark.parametrize(
    "query",
    [
        "status=finished",
        "breach=maybe",
        "tier=ok",
        "limit=0",
        "limit=201",
        "at_risk=perhaps",
        "segment=galactic",
        "stage=nowhere",
        "plan=unknown",
    ],
)
async def test_bad_filter_values_are_422_with_a_readable_body(stack: Stack, query: str) -> None:
    response = await stack.client.get(f"/v1/onboardings?{query}", headers=stack.auth())
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert query.split("=")[0] in error["message"]


async def test_bad_cursor_is_400(stack: Stack) -> None:
    response = await stack.client.get("/v1/onboardings?cursor=not-a-cursor", headers=stack.auth())
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_cursor"


async def test_unknown_onboarding_is_404(stack: Stack) -> None:
    response = await stack.client.get("/v1/onboardings/nope", headers=stack.auth())
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_detail_shows_each_milestone_with_its_evidence(stack: Stack) -> None:
    account = _accounts(stack, "onboarded_with_sponsor")[0]
    response = await stack.client.get(
        f"/v1/onboardings/{account.onboarding_id}", headers=stack.auth()
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["successfully_onboarded"]["value"] == "Yes"
    assert body["first_value"]["reached"] is True
    for milestone in body["milestones"]:
        assert milestone["progress"] == "complete", milestone["key"]
        assert milestone["due_at"] and milestone["completed_at"]
        evidence = milestone["evidence"]
        assert evidence["event_ids"] or evidence["confirmations"], milestone["key"]
    confirmations = [c for m in body["milestones"] for c in m["evidence"]["confirmations"]]
    assert confirmations and confirmations[0]["confirmed_by"] and confirmations[0]["channel"]
    contributions = body["health"]["contributions"]
    assert contributions and sum(c["points"] for c in contributions) == pytest.approx(
        body["health"]["points"]
    )
    decomposition = body["decomposition"]
    assert decomposition["total_days"] == pytest.approx(body["ttfv"]["days"], abs=0.01)
    assert [s["state"] for s in body["stages"]] == ["exited"] * len(body["stages"])


async def test_detail_of_a_stalled_account_explains_its_escalation(stack: Stack) -> None:
    account = _accounts(stack, "stalled_in_setup")[0]
    response = await stack.client.get(
        f"/v1/onboardings/{account.onboarding_id}", headers=stack.auth()
    )
    body = response.json()
    open_ones = [e for e in body["escalations"] if e["open"]]
    assert open_ones, body["escalations"]
    for escalation in open_ones:
        assert escalation["rule_key"] and escalation["action"]
        assert escalation["sla_due_at"] <= escalation["fired_at"]


async def test_as_of_gives_the_state_at_that_moment(stack: Stack) -> None:
    account = _accounts(stack, "fast_first_value")[0]
    url = f"/v1/onboardings/{account.onboarding_id}"
    now = (await stack.client.get(url, headers=stack.auth())).json()
    early = account.signed_at + timedelta(hours=1)
    response = await stack.client.get(
        url, params={"as_of": early.isoformat()}, headers=stack.auth()
    )
    assert response.status_code == 200, response.text
    then = response.json()
    assert now["status"] == "onboarded" and now["first_value"]["reached"]
    assert then["status"] == "onboarding"
    assert then["first_value"]["reached"] is False
    assert datetime.fromisoformat(then["as_of"]) == early
    completed_then = [m for m in then["milestones"] if m["progress"] == "complete"]
    assert len(completed_then) < len(now["milestones"])


async def test_as_of_before_the_signature_is_404(stack: Stack) -> None:
    account = _accounts(stack, "on_track")[0]
    response = await stack.client.get(
        f"/v1/onboardings/{account.onboarding_id}",
        params={"as_of": (account.signed_at - timedelta(days=1)).isoformat()},
        headers=stack.auth(),
    )
    assert response.status_code == 404
    assert "did not exist yet" in response.json()["error"]["message"]


async def test_as_of_that_is_not_a_moment_is_422(stack: Stack) -> None:
    account = _accounts(stack, "on_track")[0]
    response = await stack.client.get(
        f"/v1/onboardings/{account.onboarding_id}?as_of=yesterday", headers=stack.auth()
    )
    assert response.status_code == 422
    assert "as_of" in response.json()["error"]["message"]


async def test_probes_and_metrics(stack: Stack) -> None:
    assert (await stack.client.get("/healthz")).json() == {"status": "ok"}
    ready = (await stack.client.get("/readyz")).json()
    assert ready["status"] == "ready"
    assert ready["checks"]["database"] == {"status": "up"}
    metrics = await stack.client.get("/metrics")
    assert metrics.status_code == 200
    assert 'firstvalue_http_requests_total{method="GET",route="/v1/onboardings"' in metrics.text
    assert "firstvalue_http_request_duration_seconds_bucket" in metrics.text


async def test_unknown_route_uses_the_error_body(stack: Stack) -> None:
    response = await stack.client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_openapi_documents_the_rest_and_ingest_routes(stack: Stack) -> None:
    paths = (await stack.client.get("/openapi.json")).json()["paths"]
    assert {
        "/v1/onboardings",
        "/v1/onboardings/{onboarding_id}",
        "/v1/batch",
        "/v1/track",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= set(paths)
