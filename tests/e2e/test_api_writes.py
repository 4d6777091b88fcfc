"""Write endpoints: scopes, full validation with clear 4xx bodies, the relay to the bus, and
``Idempotency-Key`` replay, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio

from shared.bus import topics
from shared.storage.api_keys import ApiKeyRepository
from shared.storage.onboardings import OnboardingRepository
from shared.storage.outbox import OutboxRepository

from .stack import BACKENDS, Stack, api_stack, fresh_database

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

SIGNED = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    directory: Path = tmp_path_factory.mktemp("api-writes")
    async with (
        fresh_database(request.param, directory) as url,
        api_stack(url, None, timer_interval_seconds=3600) as running,
    ):
        yield running


def _w(stack: Stack, idempotency_key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {stack.write_only_key}"}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return headers


async def _post(
    stack: Stack, path: str, body: dict[str, Any], key: str | None = None
) -> httpx.Response:
    return await stack.client.post(path, json=body, headers=_w(stack, key))


async def _register(stack: Stack, plan: str = "smb", **extra: Any) -> str:
    body = {
        "account_id": f"acct-{uuid.uuid4().hex[:8]}",
        "plan": plan,
        "signed_at": SIGNED.isoformat(),
        "csm": "Ana",
    } | extra
    response = await _post(stack, "/v1/onboardings", body)
    assert response.status_code == 201, response.text
    onboarding_id: str = response.json()["onboarding"]["onboarding_id"]
    return onboarding_id


def _error(response: httpx.Response, status: int, code: str, *words: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    for word in words:
        assert word in error["message"], error


WRITES = ["", "/x/evidence", "/x/pause", "/x/resume", "/x/amendments"]


@pytest.mark.parametrize("suffix", WRITES)
async def test_writes_without_a_key_are_401_and_with_a_read_key_403(
    stack: Stack, suffix: str
) -> None:
    path = f"/v1/onboardings{suffix}"
    _error(await stack.client.post(path, json={}), 401, "unauthorized", "API key")
    read = await stack.client.post(path, json={}, headers=stack.auth())
    _error(read, 403, "forbidden", "write")


async def test_register_publishes_the_transition_and_empties_the_outbox(stack: Stack) -> None:
    account = f"acct-{uuid.uuid4().hex[:8]}"
    body = {
        "account_id": account,
        "plan": "smb",
        "signed_at": SIGNED.isoformat(),
        "csm": "Ana",
        "licensed_seats": 10,
    }
    response = await _post(stack, "/v1/onboardings", body)
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["recorded"] is True and result["fact_id"].startswith("registered:")
    onboarding = result["onboarding"]
    assert onboarding["account_id"] == account and onboarding["current_stage"] == "kickoff"
    published = [orjson.loads(m.value) for m in stack.pipeline.bus.messages(topics.TRANSITIONS)]
    assert any(
        p["type"] == "StageEntered" and p["onboarding_id"] == onboarding["onboarding_id"]
        for p in published
    )
    async with stack.pipeline.sessionmaker() as session:
        assert await OutboxRepository(session).unsent_count() == 0
    again = await _post(stack, "/v1/onboardings", body)
    assert again.status_code == 200 and again.json()["recorded"] is False
    changed = await _post(stack, "/v1/onboardings", body | {"csm": "Ben"})
    _error(changed, 409, "already_registered", "already registered")


@pytest.mark.parametrize(
    ("change", "status", "code", "word"),
    [
        ({"plan": "platinum"}, 422, "unknown_plan", "platinum"),
        ({"signed_at": "2999-01-01T00:00:00Z"}, 422, "invalid_fact", "future"),
        ({"signed_at": "last tuesday"}, 422, "invalid_request", "signed_at"),
        ({"licensed_seats": -1}, 422, "invalid_request", "licensed_seats"),
        ({"account_id": ""}, 422, "invalid_request", "account_id"),
        ({"colour": "red"}, 422, "invalid_request", "colour"),
    ],
)
async def test_bad_registrations_are_refused(
    stack: Stack, change: dict[str, Any], status: int, code: str, word: str
) -> None:
    body = {"account_id": "acct-bad", "plan": "smb", "signed_at": SIGNED.isoformat()} | change
    _error(await _post(stack, "/v1/onboardings", body), status, code, word)


async def test_evidence_is_recorded_and_explained(stack: Stack) -> None:
    onboarding = await _register(stack)
    at = SIGNED + timedelta(days=20)
    response = await _post(
        stack,
        f"/v1/onboardings/{onboarding}/evidence",
        {
            "milestone_key": "sponsor_confirmation",
            "confirmed_by": "Dana (VP Ops)",
            "channel": "email",
            "at": at.isoformat(),
            "quote": "We have our first report.",
        },
    )
    assert response.status_code == 201, response.text
    milestone = next(
        m for m in response.json()["onboarding"]["milestones"] if m["key"] == "sponsor_confirmation"
    )
    assert milestone["progress"] == "complete"
    assert datetime.fromisoformat(milestone["completed_at"]) == at
    confirmation = milestone["evidence"]["confirmations"][0]
    assert confirmation["confirmed_by"] == "Dana (VP Ops)" and confirmation["channel"] == "email"
    assert confirmation["recorded_by"] == "e2e-writer"  # defaults to the API key's name


@pytest.mark.parametrize(
    ("body", "status", "code", "word"),
    [
        ({"milestone_key": "moon_landing"}, 422, "unknown_milestone", "moon_landing"),
        ({"milestone_key": "integration_connected"}, 422, "unknown_milestone", "events only"),
        ({"at": "2026-08-01T00:00:00Z"}, 422, "invalid_fact", "before the contract signature"),
        ({"at": "2999-01-01T00:00:00Z"}, 422, "invalid_fact", "future"),
        ({"channel": "carrier pigeon"}, 422, "invalid_request", "channel"),
        ({"confirmed_by": None}, 422, "invalid_request", "confirmed_by"),
    ],
)
async def test_bad_evidence_is_refused(
    stack: Stack, body: dict[str, Any], status: int, code: str, word: str
) -> None:
    onboarding = await _register(stack)
    evidence = {
        "milestone_key": "sponsor_confirmation",
        "confirmed_by": "Dana",
        "channel": "email",
    } | body
    evidence = {k: v for k, v in evidence.items() if v is not None}
    response = await _post(stack, f"/v1/onboardings/{onboarding}/evidence", evidence)
    _error(response, status, code, word)


async def test_writes_to_an_unknown_onboarding_are_404(stack: Stack) -> None:
    for suffix, body in [
        (
            "evidence",
            {"milestone_key": "sponsor_confirmation", "confirmed_by": "D", "channel": "call"},
        ),
        ("pause", {"reason": "holiday"}),
        ("resume", {}),
        (
            "amendments",
            {"milestone_key": "kickoff_call", "author": "A", "reason": "r", "due_day": 9},
        ),
    ]:
        response = await _post(stack, f"/v1/onboardings/nope/{suffix}", body)
        _error(response, 404, "not_found", "nope")


async def test_pause_and_resume_in_order_only(stack: Stack) -> None:
    onboarding = await _register(stack)
    base = f"/v1/onboardings/{onboarding}"
    _error(await _post(stack, f"{base}/resume", {}), 409, "invalid_pause_state", "not paused")
    paused = await _post(stack, f"{base}/pause", {"reason": "customer re-org"})
    assert paused.status_code == 201, paused.text
    pause = paused.json()["onboarding"]["pause"]
    assert pause["paused"] is True and pause["paused_since"]
    _error(
        await _post(stack, f"{base}/pause", {"reason": "again"}),
        409,
        "invalid_pause_state",
        "already paused",
    )
    early = {"at": (SIGNED + timedelta(days=1)).isoformat()}
    _error(await _post(stack, f"{base}/resume", early), 409, "invalid_pause_state", "before")
    resumed = await _post(stack, f"{base}/resume", {})
    assert resumed.status_code == 201 and resumed.json()["onboarding"]["pause"]["paused"] is False


async def test_amendments_are_recorded_with_author_and_reason(stack: Stack) -> None:
    onboarding = await _register(stack)
    base = f"/v1/onboardings/{onboarding}/amendments"
    nothing = {"milestone_key": "first_report_delivered", "author": "Ana", "reason": "scope"}
    _error(await _post(stack, base, nothing), 422, "invalid_request", "at least one")
    _error(
        await _post(stack, base, nothing | {"milestone_key": "zzz", "due_day": 20}),
        422,
        "unknown_milestone",
        "zzz",
    )
    response = await _post(stack, base, nothing | {"due_day": 21})
    assert response.status_code == 201, response.text
    amendments = response.json()["onboarding"]["amendments"]
    assert [(a["milestone_key"], a["author"], a["reason"], a["due_day"]) for a in amendments] == [
        ("first_report_delivered", "Ana", "scope", 21)
    ]
    assert amendments[0]["previous"]["due_day"] == 14  # the plan's SMB due day it replaced
    report = next(
        m
        for m in response.json()["onboarding"]["milestones"]
        if m["key"] == "first_report_delivered"
    )
    assert datetime.fromisoformat(report["due_at"]) == SIGNED + timedelta(days=21)


async def test_same_idempotency_key_and_body_replays_the_first_response(stack: Stack) -> None:
    onboarding = await _register(stack)
    path = f"/v1/onboardings/{onboarding}/pause"
    key = f"pause-{uuid.uuid4()}"
    first = await _post(stack, path, {"reason": "holiday"}, key)
    assert first.status_code == 201, first.text
    # Without the key, a second pause would be a 409; with it, the first answer comes back.
    second = await _post(stack, path, {"reason": "holiday"}, key)
    assert second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    async with stack.pipeline.sessionmaker() as session:
        facts = await OnboardingRepository(session).manual_facts(onboarding)
    assert len(facts) == 1  # recorded once


async def test_same_idempotency_key_with_another_body_is_422(stack: Stack) -> None:
    onboarding = await _register(stack)
    key = f"k-{uuid.uuid4()}"
    path = f"/v1/onboardings/{onboarding}/pause"
    assert (await _post(stack, path, {"reason": "holiday"}, key)).status_code == 201
    _error(await _post(stack, path, {"reason": "budget"}, key), 422, "idempotency_key_reused", key)
    _error(
        await _post(stack, f"/v1/onboardings/{onboarding}/resume", {}, key),
        422,
        "idempotency_key_reused",
        "different request",
    )


async def test_a_refused_request_does_not_use_up_its_key(stack: Stack) -> None:
    onboarding = await _register(stack)
    key = f"k-{uuid.uuid4()}"
    base = f"/v1/onboardings/{onboarding}"
    _error(await _post(stack, f"{base}/resume", {}, key), 409, "invalid_pause_state")
    assert (await _post(stack, f"{base}/pause", {"reason": "r"})).status_code == 201
    assert (await _post(stack, f"{base}/resume", {}, key)).status_code == 201


async def test_idempotency_keys_are_scoped_to_the_api_key(stack: Stack) -> None:
    async with stack.pipeline.sessionmaker() as session, session.begin():
        other = await ApiKeyRepository(session).create(
            f"other-{uuid.uuid4().hex[:6]}", ("write",), datetime.now(UTC)
        )
    key = f"shared-{uuid.uuid4()}"
    first = await _register(stack)
    second = await _register(stack)
    mine = await _post(stack, f"/v1/onboardings/{first}/pause", {"reason": "r"}, key)
    theirs = await stack.client.post(
        f"/v1/onboardings/{second}/pause",
        json={"reason": "r"},
        headers={"Authorization": f"Bearer {other}", "Idempotency-Key": key},
    )
    assert mine.status_code == 201 and theirs.status_code == 201, theirs.text
    assert theirs.json()["onboarding"]["onboarding_id"] == second


async def test_an_overlong_idempotency_key_is_422(stack: Stack) -> None:
    response = await _post(stack, "/v1/onboardings", {}, "k" * 256)
    _error(response, 422, "invalid_request", "Idempotency-Key")


async def test_a_retry_racing_its_original_gets_the_same_answer(stack: Stack) -> None:
    onboarding = await _register(stack)
    path = f"/v1/onboardings/{onboarding}/pause"
    key = f"race-{uuid.uuid4()}"
    first, second = await asyncio.gather(
        _post(stack, path, {"reason": "holiday"}, key),
        _post(stack, path, {"reason": "holiday"}, key),
    )
    assert (first.status_code, second.status_code) == (201, 201), (first.text, second.text)
    assert first.json() == second.json()
    replayed = sorted(str(r.headers.get("idempotent-replayed")) for r in (first, second))
    assert replayed == ["None", "true"]  # one ran, the other waited and replayed it
    async with stack.pipeline.sessionmaker() as session:
        assert len(await OnboardingRepository(session).manual_facts(onboarding)) == 1
