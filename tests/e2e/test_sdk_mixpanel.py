"""The official ``mixpanel`` client (5.x), unchanged, against a real uvicorn server of the app
(SQLite and PostgreSQL): ``track`` and ``import_data`` through ``Consumer`` and
``BufferedConsumer`` (form ``data=…&verbose=1``), with service-account, API-secret and token
auth, succeed without an exception and move milestones, one request per send; refusals raise
``MixpanelException`` carrying our message, and a strict import still stores its valid events.

Never call ``Mixpanel.alias`` here: it ignores the consumer and posts to api.mixpanel.com.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mixpanel import (
    BufferedConsumer,
    Consumer,
    Mixpanel,
    MixpanelException,
    ServiceAccountCredentials,
)

from shared.analytics.registration import onboarding_id_for

from .live_server import LiveServer, completed_milestone, live_server, wait_stored
from .stack import BACKENDS

pytestmark = pytest.mark.e2e

TOKEN = "mp_token_e2e"
API_SECRET = "mp_api_secret_e2e"
ACCOUNT = ServiceAccountCredentials("sa-e2e", "sa-secret-e2e", "4242")


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    directory: Path = tmp_path_factory.mktemp("sdk-mixpanel")
    tokens = f"{TOKEN},{API_SECRET},{ACCOUNT.username}:{ACCOUNT.secret}"
    with live_server(
        request.param, directory, mixpanel_tokens=tokens, timer_interval_seconds=3600
    ) as running:
        yield running


def _urls(server: LiveServer) -> dict[str, str]:
    return {"events_url": f"{server.url}/track", "import_url": f"{server.url}/import"}


def _ids() -> tuple[str, str]:
    return f"acct_{uuid.uuid4().hex[:8]}", f"user_{uuid.uuid4().hex[:8]}"


def test_track_registers_and_moves_a_milestone_one_request_per_event(server: LiveServer) -> None:
    mp = Mixpanel(TOKEN, consumer=Consumer(**_urls(server)))
    account, user = _ids()
    before = len(server.requests("/track"))
    mp.track(user, "Contract Signed", {"company_id": account, "plan": "smb", "csm": "Avery Chen"})
    mp.track(user, "Kickoff Call Completed", {"company_id": [account]})
    requests = server.requests("/track")[before:]
    assert [r.status for r in requests] == [200, 200]  # one each: nothing retried
    assert all(r.headers["content-type"] == "application/x-www-form-urlencoded" for r in requests)
    done = completed_milestone(server, onboarding_id_for(account, "smb"), "kickoff_call")
    [event_id] = done["evidence"]["event_ids"]
    assert event_id.startswith("mp:")


def test_buffered_import_with_service_account_and_api_secret_moves_milestones(
    server: LiveServer,
) -> None:
    account, user = _ids()
    signed = int(time.time()) - 3 * 86400
    buffered = BufferedConsumer(credentials=ACCOUNT, **_urls(server))
    mp = Mixpanel(TOKEN, consumer=buffered)
    before = len(server.requests("/import"))
    mp.import_data(None, user, "Contract Signed", signed, {"company_id": account, "plan": "smb"})
    mp.import_data(None, user, "Success Criteria Agreed", (signed + 3600) * 1000,  # in ms
                   {"company_id": account})  # fmt: skip
    buffered.flush()
    legacy = Mixpanel(TOKEN, consumer=Consumer(**_urls(server)))
    legacy.import_data(None, user, "Integration Connected", signed + 7200,
                       {"company_id": account}, api_secret=API_SECRET)  # fmt: skip
    requests = server.requests("/import")[before:]
    assert [r.status for r in requests] == [200, 200]  # one per send: nothing retried
    assert requests[0].query == "project_id=4242"
    onboarding = onboarding_id_for(account, "smb")
    agreed = completed_milestone(server, onboarding, "success_criteria_agreed")
    assert agreed["completed_at"].startswith(
        time.strftime("%Y-%m-%dT%H", time.gmtime(signed + 3600))
    )
    completed_milestone(server, onboarding, "integration_connected")


def test_an_unknown_token_or_credential_raises_mixpanel_exception_with_our_message(
    server: LiveServer,
) -> None:
    stranger = Mixpanel("not-a-token", consumer=Consumer(**_urls(server)))
    with pytest.raises(MixpanelException, match="token, missing or unknown"):
        stranger.track("user_x", "Logged In", {})
    wrong = ServiceAccountCredentials("sa-e2e", "wrong-secret", "4242")
    impostor = Mixpanel(TOKEN, consumer=Consumer(credentials=wrong, **_urls(server)))
    with pytest.raises(MixpanelException, match="unknown service account"):
        impostor.import_data(None, "user_x", "Logged In", int(time.time()))


def test_a_strict_import_failure_raises_our_message_and_still_stores_the_valid_events(
    server: LiveServer,
) -> None:
    account, user = _ids()
    buffered = BufferedConsumer(credentials=ACCOUNT, **_urls(server))
    mp = Mixpanel(TOKEN, consumer=buffered)
    now = int(time.time())
    mp.import_data(None, user, "Logged In", now - 60, {"company_id": account})
    mp.import_data(None, user, "Logged In", now - 30, {"company_id": account,
                                                      "$insert_id": "not a valid id!"})  # fmt: skip
    mp.import_data(None, "null", "Logged In", now - 20, {"company_id": account})
    with pytest.raises(MixpanelException) as refused:
        buffered.flush()
    message = str(refused.value)
    assert "2 of 3" in message and "event 1" in message
    assert "$insert_id must be at most 36 characters" in message
    assert server.requests("/import")[-1].status == 400
    [stored] = wait_stored(server, account, count=1)
    assert (stored.user_id, stored.name) == (user, "Logged In")
