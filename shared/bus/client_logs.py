"""aiokafka's own log lines, throttled: while a broker is down its clients log every failed
connection, metadata refresh and heartbeat, tens of thousands of ERROR lines a minute. The
outage itself is told once by the readiness probes and the consumer loops
(``outages.Outage``); of aiokafka's lines only the first few of each minute are kept, and
the next one kept says how many were left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

WINDOW_SECONDS = 60.0
BURST = 3  # aiokafka lines kept per window, all kinds together


class ThrottleClientLines(logging.Filter):
    """Let ``burst`` records at WARNING or above through per window (lower levels always
    pass); the first one let through after some were left out carries their count."""

    def __init__(
        self,
        burst: int = BURST,
        window_seconds: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._burst = burst
        self._window = window_seconds
        self._clock = clock
        self._opened: float | None = None  # when the current window began
        self._passed = 0
        self._left_out = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        now = self._clock()
        if self._opened is None or now - self._opened >= self._window:
            self._opened, self._passed = now, 0
        if self._passed >= self._burst:
            self._left_out += 1
            return False
        self._passed += 1
        if self._left_out:
            record.msg = (
                f"{record.getMessage()} (and {self._left_out} more aiokafka lines left out)"
            )
            record.args = ()
            self._left_out = 0
        return True


_THROTTLE = ThrottleClientLines()


def throttle_client_logs() -> None:
    """Install the throttle on every aiokafka logger (a logger's filters do not reach its
    children, so each gets it); idempotent, called when a Kafka bus starts."""
    names = [name for name in logging.root.manager.loggerDict if name.split(".")[0] == "aiokafka"]
    for name in ["aiokafka", *names]:
        logger = logging.getLogger(name)
        if _THROTTLE not in logger.filters:
            logger.addFilter(_THROTTLE)
