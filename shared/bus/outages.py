"""Outages: telling a dependency that is down from a batch that cannot be handled, and
logging an outage once per change of state instead of once per failed attempt.

An outage (the database or the broker unreachable, restarting, stalled, failing over) is
waited out: nothing is wrong with the data, so the work is retried until the dependency is
back. Any other error is the data's or the code's, and retrying it forever would hide it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import asyncpg  # type: ignore[import-untyped]
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from sqlalchemy import exc as sa

log = logging.getLogger(__name__)
REMIND_SECONDS = 60.0  # an outage that goes on is logged again this often
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 5.0  # also the longest a recovered dependency waits to be used again

_OUTAGE_TYPES: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable, DNS (ConnectionError is one)
    TimeoutError,
    sa.OperationalError,
    sa.InterfaceError,
    sa.DisconnectionError,
    sa.TimeoutError,  # no pooled connection came free in time
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.InterfaceError,  # "connection is closed", "another operation is in progress"
    asyncpg.OperatorInterventionError,  # 57: shutting down, starting up, query cancelled
    asyncpg.InsufficientResourcesError,  # 53: too many connections, disk full
    asyncpg.ReadOnlySQLTransactionError,  # connected to a standby during a failover
    KafkaConnectionError,
    KafkaTimeoutError,
)


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error, what it wraps (SQLAlchemy's ``orig``) and what caused it, once each."""
    seen: set[int] = set()
    pending = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for inner in (getattr(current, "orig", None), current.__cause__, current.__context__):
            if isinstance(inner, BaseException):
                pending.append(inner)


def is_outage(error: BaseException) -> bool:
    """True when ``error`` says a dependency is unreachable or stalled (retry until it is
    back), False when it is about the work itself (a bug, or data that can never be stored)."""
    for current in _chain(error):
        if isinstance(current, _OUTAGE_TYPES):
            return True
        if isinstance(current, sa.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, KafkaError) and current.retriable:
            return True
    return False


def backoff_seconds(attempt: int) -> float:
    """Capped exponential back-off before retry number ``attempt`` (1, 2, ...)."""
    return float(min(BACKOFF_FIRST_SECONDS * 2 ** (attempt - 1), BACKOFF_MAX_SECONDS))


def describe(error: BaseException | str) -> str:
    """One line for the log: the error's type and message, without a traceback."""
    if isinstance(error, str):
        return error
    name = type(error).__name__
    lines = str(error).strip().splitlines()
    if not lines or not lines[0]:
        return name
    return lines[0] if lines[0].startswith(name) else f"{name}: {lines[0]}"  # aiokafka's own


class Outage:
    """The state of one thing that can be down (a dependency, a consumer's work), logged
    once when it goes down, every ``REMIND_SECONDS`` while it stays down, and once when it is
    back. ``on_change(up)`` is told every state seen (e.g. to set a gauge)."""

    def __init__(
        self,
        name: str,
        *,
        on_change: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger = log,
    ) -> None:
        self.name = name
        self._on_change = on_change
        self._clock = clock
        self._log = logger
        self._since: float | None = None  # when it went down; None while up
        self._reminded = 0.0
        self.reason = ""

    @property
    def is_down(self) -> bool:
        return self._since is not None

    def down_for(self) -> float:
        """Seconds since it went down (0 while up)."""
        return 0.0 if self._since is None else self._clock() - self._since

    def down(self, error: BaseException | str) -> float:
        """Record a failed attempt; returns how long the outage has lasted."""
        now = self._clock()
        self.reason = describe(error)
        if self._since is None:
            self._since = self._reminded = now
            self._log.error("%s is down (%s); waiting for it", self.name, self.reason)
        elif now - self._reminded >= REMIND_SECONDS:
            self._reminded = now
            self._log.error(
                "%s still down after %.0f s (%s)", self.name, now - self._since, self.reason
            )
        if self._on_change is not None:
            self._on_change(False)
        return now - self._since

    def up(self) -> None:
        """Record a success; logs the recovery if it was down."""
        if self._since is not None:
            self._log.warning("%s is back after %.0f s", self.name, self._clock() - self._since)
            self._since = None
            self.reason = ""
        if self._on_change is not None:
            self._on_change(True)


def log_failure(
    outage: Outage, logger: logging.Logger, error: Exception, message: str, *args: object
) -> None:
    """For loops that retry on their own: an outage joins ``outage``'s state-change lines;
    any other error is logged in full, with ``message``."""
    if is_outage(error):
        outage.down(error)
    else:
        logger.exception(message, *args)
