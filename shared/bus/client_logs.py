"""aiokafka's own log lines, throttled: while a broker is down its clients log every failed
connection and metadata refresh, tens of thousands of ERROR lines a minute. The outage is
told once by the readiness probes and the consumer loops (``outages.Outage``); of each
aiokafka message only the first is kept per minute, with a count of the ones left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

WINDOW_SECONDS = 60.0


class ThrottleRepeats(logging.Filter):
    """Let one record of each (logger, message template) through per window; the next one
    after the window says how many were left out meanwhile. Records below WARNING pass."""

    def __init__(
        self, window_seconds: float = WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._window = window_seconds
        self._clock = clock
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}  # → (last let through, left out)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, str(record.msg))
        now = self._clock()
        last, left_out = self._seen.get(key, (None, 0))
        if last is not None and now - last < self._window:
            self._seen[key] = (last, left_out + 1)
            return False
        self._seen[key] = (now, 0)
        if left_out and last is not None:
            record.msg = (
                f"{record.getMessage()} (and {left_out} more like it in {now - last:.0f} s)"
            )
            record.args = ()
        return True


_THROTTLE = ThrottleRepeats()


def throttle_client_logs() -> None:
    """Install the throttle on every aiokafka logger (a logger's filters do not reach its
    children, so each gets it); idempotent, called when a Kafka bus starts."""
    names = [name for name in logging.root.manager.loggerDict if name.split(".")[0] == "aiokafka"]
    for name in ["aiokafka", *names]:
        logger = logging.getLogger(name)
        if _THROTTLE not in logger.filters:
            logger.addFilter(_THROTTLE)
