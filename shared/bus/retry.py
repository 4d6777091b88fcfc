"""The one retry policy every consumer loop follows: subscribe, consume, and on a failure
leave the group (the uncommitted batch is redelivered to the next member), back off and
rejoin.

Two kinds of failure, two answers (``outages.is_outage``):
- an outage (database or broker unreachable, restarting, stalled) is waited out for as long
  as it takes, with capped exponential back-off and one log line per change of state; an
  optional budget (``outage_budget``, ``FIRSTVALUE_OUTAGE_BUDGET_SECONDS``) makes the
  process exit instead once an outage has lasted longer, for a supervisor to restart it;
- anything else is the batch's or the code's fault: after several in a row the loop raises,
  so the process stops loudly instead of spinning on a batch it can never handle.

Nothing is committed while failing: offsets are committed only after the batch's database
transaction, so a batch that failed on an unreachable database is redelivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar

from shared.bus.bus import Bus, Subscription
from shared.bus.outages import Outage, backoff_seconds, is_outage

log = logging.getLogger(__name__)
MAX_CONSECUTIVE_FAILURES = 5
MAX_BACKOFF_SECONDS = 30.0

Consume = Callable[[Subscription, Callable[[], None]], Awaitable[None]]

# Set once at a service's start-up (tasks inherit it); None: wait out any outage.
_OUTAGE_BUDGET: ContextVar[float | None] = ContextVar("outage_budget", default=None)


class OutageBudgetExceeded(RuntimeError):
    """An outage lasted longer than ``FIRSTVALUE_OUTAGE_BUDGET_SECONDS``."""


@contextlib.contextmanager
def outage_budget(seconds: float | None) -> Iterator[None]:
    """Within the block (and the tasks it starts), consumers give up on an outage that lasts
    longer than ``seconds`` (None or 0: never)."""
    token = _OUTAGE_BUDGET.set(seconds or None)
    try:
        yield
    finally:
        _OUTAGE_BUDGET.reset(token)


async def consume_with_retries(
    bus: Bus, topic: str, group: str, consume: Consume, *, label: str, max_records: int = 500
) -> None:
    """Run ``consume(subscription, succeeded)`` until it returns (the bus stopped); it calls
    ``succeeded()`` after each committed batch, which ends an outage and resets the count of
    failures."""
    failures = attempts = 0
    outage = Outage(f"{label} consumer", logger=log)
    budget = _OUTAGE_BUDGET.get()

    def succeeded() -> None:
        nonlocal failures, attempts
        failures = attempts = 0
        outage.up()

    while True:
        try:
            async with bus.subscribe(topic, group, max_records=max_records) as subscription:
                await consume(subscription, succeeded)
            return
        except Exception as error:
            if is_outage(error):
                attempts += 1
                lasted = outage.down(error)
                if budget is not None and lasted > budget:
                    raise OutageBudgetExceeded(
                        f"{label}: outage lasted over {budget:g} s (FIRSTVALUE_OUTAGE_BUDGET_"
                        f"SECONDS): {outage.reason}"
                    ) from error
                await asyncio.sleep(backoff_seconds(attempts))
                continue
            failures += 1
            if failures >= MAX_CONSECUTIVE_FAILURES:
                raise
            log.exception("%s batch failed (%d in a row); retrying", label, failures)
            await asyncio.sleep(min(2.0 ** (failures - 1), MAX_BACKOFF_SECONDS))
