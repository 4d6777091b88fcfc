"""The official Node SDKs, unchanged, against a real uvicorn server of the app (SQLite and
PostgreSQL): ``@segment/analytics-node`` and ``mixpanel`` (Node, default options) each send
a full smb onboarding with no error reported by the SDK, and the onboarding reaches first
value with those events as its evidence; mixpanel-node's ``import()``, ``import_batch``,
``people.set`` and ``groups.set`` are accepted too, and a group profile's name shows as the
account name in the API."""

from __future__ import annotations

import base64
import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from shared.analytics.registration import onboarding_id_for

from .live_server import LiveServer, completed_milestone, live_server, wait_stored
from .sdk_journey import DRIVERS, NODE_MODULES, account_events, journey, require, run_driver
from .stack import BACKENDS

pytestmark = pytest.mark.e2e

WRITE_KEY = "wk_node_e2e"
TOKEN = "mp_token_node_e2e"


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    require(NODE_MODULES / "@segment" / "analytics-node", "@segment/analytics-node")
    require(NODE_MODULES / "mixpanel", "mixpanel (Node)")
    directory: Path = tmp_path_factory.mktemp("sdk-node")
    with live_server(
        request.param, directory, segment_write_keys=WRITE_KEY, mixpanel_tokens=TOKEN,
        timer_interval_seconds=3600,
    ) as running:  # fmt: skip
        yield running


def _first_value(server: LiveServer, account: str) -> dict[str, object]:
    return completed_milestone(server, onboarding_id_for(account, "smb"), "first_report_delivered")


def test_analytics_node_sends_an_smb_onboarding_to_first_value(server: LiveServer) -> None:
    account, user = f"acct_{uuid.uuid4().hex[:8]}", f"user_{uuid.uuid4().hex[:8]}"
    messages: list[dict[str, object]] = [
        {"type": "identify", "userId": user, "traits": {"email": "ada@park.example"}},
        {"type": "group", "userId": user, "groupId": account, "traits": {"name": "Park"}},
    ]
    for event, properties, at in journey():
        messages.append({"type": "track", "userId": user, "event": event, "properties":
                         properties, "timestamp": at.isoformat(),
                         "messageId": f"{account}-{event}"})  # fmt: skip
    out = json.loads(
        run_driver(
            ["node", str(DRIVERS / "segment_node.js"), server.url, WRITE_KEY],
            json.dumps(messages),
        )
    )
    assert out["errors"] == []
    assert out["http"] and all(url.endswith("/v1/batch") for url in out["http"])
    done = _first_value(server, account)
    assert done["evidence"]["event_ids"] == [f"{account}-Report Delivered"]  # type: ignore[index]


def _mixpanel(server: LiveServer, calls: list[dict[str, object]]) -> list[str]:
    url = urlsplit(server.url)
    out = run_driver(
        ["node", str(DRIVERS / "mixpanel_node.js"), url.hostname or "", str(url.port), TOKEN],
        json.dumps(calls),
    )
    return list(json.loads(out)["errors"])


def test_mixpanel_node_tracks_imports_and_sets_profiles_with_default_options(
    server: LiveServer,
) -> None:
    account, user = f"acct_{uuid.uuid4().hex[:8]}", f"user_{uuid.uuid4().hex[:8]}"
    steps = journey()
    (contract, terms, signed), *rest = steps
    calls: list[dict[str, object]] = [
        {"call": "import", "args": [contract, int(signed.timestamp()),
                                    {**terms, "distinct_id": user, "company_id": account}]},
        {"call": "groups.set", "args": ["company_id", account,
                                        {"$name": "Park Industries", "licensed_seats": 12}]},
        {"call": "people.set", "args": [user, {"$email": "ada@park.example",
                                               "company_id": account}]},
        {"call": "import_batch", "args": [[
            {"event": event, "properties": {**properties, "distinct_id": user,
                                            "time": int(at.timestamp())}}
            for event, properties, at in rest[:-1]
        ]]},
        {"call": "track", "args": [rest[-1][0], {**rest[-1][1], "distinct_id": user,
                                                 "company_id": account}]},
    ]  # fmt: skip
    assert _mixpanel(server, calls) == []
    done = _first_value(server, account)
    [evidence] = done["evidence"]["event_ids"]  # type: ignore[index]
    assert account_events(server, account)[evidence] == "Report Delivered"
    detail = _detail_eventually(server, onboarding_id_for(account, "smb"), "Park Industries")
    assert detail["account_name"] == "Park Industries"


def _detail_eventually(server: LiveServer, onboarding_id: str, name: str) -> dict[str, object]:
    until = time.monotonic() + 30
    while True:
        detail = httpx.get(
            f"{server.url}/v1/onboardings/{onboarding_id}", headers=server.auth, timeout=10
        ).json()
        if detail.get("account_name") == name or time.monotonic() > until:
            return dict(detail)
        time.sleep(0.05)  # poll interval, bounded by the deadline


def test_two_bare_mixpanel_node_tracks_count_twice(server: LiveServer) -> None:
    account, user = f"acct_{uuid.uuid4().hex[:8]}", f"user_{uuid.uuid4().hex[:8]}"
    track = {"call": "track", "args": ["Logged In", {"distinct_id": user, "company_id": account}]}
    assert _mixpanel(server, [track]) == []
    assert _mixpanel(server, [track]) == []  # the same call again: a second genuine event
    assert len(wait_stored(server, account, count=2)) == 2


def test_a_45_kb_get_track_is_accepted_and_a_head_past_the_limit_gets_mixpanels_shape(
    server: LiveServer,
) -> None:
    account, user = f"acct_{uuid.uuid4().hex[:8]}", f"user_{uuid.uuid4().hex[:8]}"
    big = {"distinct_id": user, "company_id": account, "notes": "x" * 45_000}
    assert _mixpanel(server, [{"call": "track", "args": ["Logged In", big]}]) == []
    assert len(wait_stored(server, account, count=1)) == 1
    huge = base64.b64encode(b'{"event": "A", "properties": {"blob": "' + b"y" * 1_100_000 + b'"}}')
    status, body = _raw_get(server, b"/track?verbose=1&data=" + huge)
    assert status == 400
    assert body["status"] == 0 and "limited to" in body["error"]


def _raw_get(server: LiveServer, target: bytes) -> tuple[int, dict[str, object]]:
    """A GET with a request line longer than HTTP clients allow (httpx refuses past 64 KB),
    as a browser or an SDK on a raw socket can send; (status, JSON body)."""
    url = urlsplit(server.url)
    with socket.create_connection((url.hostname, url.port), timeout=30) as connection:
        connection.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: firstvalue\r\n\r\n")
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)
