"""A small history whose report figures are worked out by hand in the tests.

Onboardings are registered through ``POST /v1/onboardings``; their usage events go through
the real ingest path (Segment ``track`` messages on ``analytics.events``). TTFV is the
``Report Delivered`` event time minus the signature, so each reached TTFV below is exact.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from firstvalue.demo_data import DemoHistory
from firstvalue.embedded import load_history

from .stack import Stack

DAY = timedelta(days=1)
FIRST_VALUE_EVENT = "Report Delivered"
SMB_TASKS = (  # every SMB task milestone, met by an event
    ("Kickoff Call Completed", {}),
    ("Success Criteria Agreed", {}),
    ("Executive Sponsor Named", {}),
    ("Integration Connected", {}),
    ("Data Sync Completed", {"status": "success"}),
    ("Workflow Run", {"environment": "production"}),
    ("Training Completed", {}),
)


@dataclass
class Seeded:
    account_id: str
    plan: str
    csm: str
    signed_at: datetime
    ttfv_days: float | None = None  # None: no first value
    tasks_done: bool = False
    onboarding_id: str = ""
    message_ids: dict[str, str] = field(default_factory=dict)  # event name → messageId


def history(now: datetime) -> list[Seeded]:
    """The seeded onboardings (see the test module for the figures they give)."""

    def at(y: int, m: int, d: int) -> datetime:
        return datetime(y, m, d, 9, 0, tzinfo=UTC)

    return [
        # smb, Ana: TTFV 3, 5, 10 (March cohort), 12, 20, 30 (April cohort)
        Seeded("acme", "smb", "Ana", at(2026, 3, 2), 3),
        Seeded("birch", "smb", "Ana", at(2026, 3, 9), 5),
        Seeded("cedar", "smb", "Ana", at(2026, 3, 16), 10),
        Seeded("delta", "smb", "Ana", at(2026, 4, 6), 12),
        Seeded("ember", "smb", "Ana", at(2026, 4, 13), 20),
        Seeded("fjord", "smb", "Ana", at(2026, 4, 20), 30),
        # smb, Ana: the worked example: Jan 1 → kickoff Jan 5 → go-live Jan 19 → Feb 2
        Seeded("gamma", "smb", "Ana", at(2026, 1, 1), 32, tasks_done=True),
        # mid-market, Ben: TTFV 40 (March) and 50 (April)
        Seeded("heron", "mid_market", "Ben", at(2026, 3, 5), 40),
        Seeded("ibex", "mid_market", "Ben", at(2026, 4, 1), 50),
        # still open
        Seeded("juniper", "smb", "Ana", now - 5 * DAY),
        Seeded("kestrel", "smb", "Cleo", now - 25 * DAY, tasks_done=True),  # at risk
        Seeded("lumen", "smb", "Cleo", now - 16 * DAY, tasks_done=True),  # at risk
        Seeded("mosaic", "mid_market", "Ben", now - 100 * DAY),
    ]


def _track(seeded: Seeded, name: str, at: datetime, props: dict[str, Any]) -> dict[str, Any]:
    message_id = str(uuid.uuid4())
    seeded.message_ids[name] = message_id
    return {
        "type": "track",
        "userId": f"{seeded.account_id}-user",
        "event": name,
        "properties": {**props, "account_id": seeded.account_id},
        "context": {"groupId": seeded.account_id},
        "messageId": message_id,
        "timestamp": at.isoformat(timespec="milliseconds"),
    }


def _messages(seeded: Seeded) -> list[dict[str, Any]]:
    signed = seeded.signed_at
    messages = []
    if seeded.account_id == "gamma":  # 4 + 14 + 14 = 32 days
        kickoff, sync = signed + 4 * DAY, signed + 18 * DAY
        for name, props in SMB_TASKS[:3]:
            messages.append(_track(seeded, name, kickoff, props))
        messages.append(_track(seeded, "Integration Connected", signed + 9 * DAY, {}))
        messages.append(_track(seeded, "Data Sync Completed", sync, {"status": "success"}))
        messages.append(
            _track(seeded, "Workflow Run", signed + 18 * DAY, {"environment": "production"})
        )
        messages.append(_track(seeded, "Training Completed", signed + 8 * DAY, {}))
    elif seeded.tasks_done:
        for n, (name, props) in enumerate(SMB_TASKS):
            messages.append(_track(seeded, name, signed + (1 + n) * DAY, props))
    if seeded.ttfv_days is not None:
        reached = signed + seeded.ttfv_days * DAY
        messages.append(_track(seeded, FIRST_VALUE_EVENT, reached, {}))
    return messages


async def seed(stack: Stack, now: datetime) -> list[Seeded]:
    """Register every onboarding over HTTP, then send its events through ingest."""
    seeded = history(now)
    headers = {"Authorization": f"Bearer {stack.write_only_key}"}
    for s in seeded:
        response = await stack.client.post(
            "/v1/onboardings",
            json={
                "account_id": s.account_id,
                "plan": s.plan,
                "signed_at": s.signed_at.isoformat(),
                "csm": s.csm,
                "account_name": s.account_id.title(),
            },
            headers=headers,
        )
        assert response.status_code == 201, response.text
        s.onboarding_id = response.json()["onboarding"]["onboarding_id"]
    messages = [m for s in seeded for m in _messages(s)]
    await load_history(stack.pipeline, DemoHistory(now, messages, [], []))
    return seeded
