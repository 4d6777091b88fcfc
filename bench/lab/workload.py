"""The events a bench feeds: the demo history's Segment messages (identify, group, and
track calls shaped by the default plans' rules), so the mix and sizes are realistic."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from firstvalue.demo_data import generate
from shared.plan_files import default_plans

MESSAGES_PER_ACCOUNT = 120  # about what one demo account produces over 120 days


def demo_events(count: int, now: datetime, seed: int = 17) -> list[dict[str, Any]]:
    """The first ``count`` messages, in time order, of a history large enough to hold them."""
    plans = default_plans()
    accounts = max(12, math.ceil(count / MESSAGES_PER_ACCOUNT))
    while True:
        messages = generate(plans, now, accounts=accounts, seed=seed).messages
        if len(messages) >= count:
            return messages[:count]
        accounts = math.ceil(accounts * count / len(messages) * 1.1)
