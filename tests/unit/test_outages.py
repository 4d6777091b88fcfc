"""Outage policy: which errors are outages, back-off, one log line per change of state, the
aiokafka throttle and the durability refusal — the parts that need no server."""

from __future__ import annotations

import logging

import asyncpg  # type: ignore[import-untyped]
import pytest
from aiokafka.errors import (
    CommitFailedError,
    KafkaConnectionError,
    NodeNotReadyError,
    RequestTimedOutError,
)
from sqlalchemy import exc as sa

from shared.bus.client_logs import ThrottleClientLines
from shared.bus.outages import Outage, backoff_seconds, describe, is_outage
from shared.storage.durability import refusal

URL = "postgresql+asyncpg://fv:secret@db.internal:5432/firstvalue"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _wrapped(orig: BaseException) -> sa.DBAPIError:
    """How SQLAlchemy hands a driver's error to the caller."""
    return sa.DBAPIError.instance("SELECT 1", None, orig, Exception)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        ConnectionResetError(104, "Connection reset by peer"),
        TimeoutError(),
        sa.OperationalError("SELECT 1", None, Exception("server closed the connection")),
        sa.InterfaceError("SELECT 1", None, Exception("connection is closed")),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),
        KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 9092)]"),
        NodeNotReadyError(),
        RequestTimedOutError(),
    ],
    ids=type,
)
def test_unreachable_and_stalled_dependencies_are_outages(error: BaseException) -> None:
    assert is_outage(error)


def test_an_outage_wrapped_by_sqlalchemy_or_raised_from_another_error_is_one() -> None:
    assert is_outage(_wrapped(asyncpg.CannotConnectNowError("starting up")))
    try:
        try:
            raise ConnectionResetError(104, "reset")
        except ConnectionResetError as inner:
            raise RuntimeError("batch failed") from inner
    except RuntimeError as outer:
        assert is_outage(outer)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad record"),
        sa.IntegrityError("INSERT", None, Exception("duplicate key")),
        sa.DataError("INSERT", None, Exception("invalid input syntax")),
        asyncpg.UniqueViolationError("duplicate key value"),
        CommitFailedError("rebalanced"),
        KeyError("plan"),
    ],
    ids=type,
)
def test_errors_about_the_work_itself_are_not_outages(error: BaseException) -> None:
    assert not is_outage(error)


def test_backoff_doubles_up_to_its_cap() -> None:
    delays = [backoff_seconds(n) for n in range(1, 9)]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert delays[4:] == [5.0] * 4


def test_an_outage_is_logged_once_then_every_minute_then_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    states: list[bool] = []
    outage = Outage("database", on_change=states.append, clock=clock)
    with caplog.at_level(logging.INFO):
        for _ in range(1000):  # a second of failed attempts, 1 ms apart
            outage.down(ConnectionRefusedError(111, "Connect call failed"))
            clock.now += 0.001
        clock.now += 60
        outage.down(ConnectionRefusedError(111, "Connect call failed"))
        assert outage.down_for() == pytest.approx(61, abs=0.01)
        outage.up()
        outage.up()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "database is down (ConnectionRefusedError: [Errno 111] Connect call failed); "
        "waiting for it",
        "database still down after 61 s (ConnectionRefusedError: [Errno 111] Connect call failed)",
        "database is back after 61 s",
    ]
    assert states[-3:] == [False, True, True] and not outage.is_down


def test_client_lines_pass_a_few_a_minute_and_the_next_one_counts_the_rest() -> None:
    clock = Clock()
    throttle = ThrottleClientLines(burst=3, window_seconds=60, clock=clock)

    def record(msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
        return logging.LogRecord("aiokafka.conn", level, __file__, 1, msg, args, None)

    passed = []
    for n in range(10_000):  # ten seconds of a broker down, two kinds of line
        line = record("Unable connect to node with id %s: %s", 1, f"attempt {n}")
        if throttle.filter(line):
            passed.append(line.getMessage())
        if throttle.filter(record("Unable to update metadata from %s", [1])):
            passed.append("metadata")
        clock.now += 0.001
    assert passed == [
        "Unable connect to node with id 1: attempt 0",
        "metadata",
        "Unable connect to node with id 1: attempt 1",
    ]
    assert throttle.filter(record("connecting", level=logging.DEBUG))  # below WARNING
    clock.now += 60
    again = record("Unable connect to node with id %s: %s", 1, "later")
    assert throttle.filter(again)
    assert again.getMessage() == (
        "Unable connect to node with id 1: later (and 19997 more aiokafka lines left out)"
    )


def test_durable_settings_pass() -> None:
    settings = {"fsync": "on", "synchronous_commit": "local", "full_page_writes": "on"}
    assert refusal(URL, settings) is None


def test_a_lossy_setting_is_refused_in_one_line_naming_it_and_the_override() -> None:
    reason = refusal(URL, {"fsync": "on", "synchronous_commit": "off", "full_page_writes": "on"})
    assert reason is not None and "\n" not in reason
    assert "synchronous_commit=off" in reason and "fsync" not in reason
    assert "FIRSTVALUE_ALLOW_NON_DURABLE_DATABASE=true" in reason
    assert "secret" not in reason and "db.internal:5432/firstvalue" in reason


def test_an_error_is_described_in_one_line_naming_its_type_once() -> None:
    assert describe(NodeNotReadyError("node 1 not ready")) == "NodeNotReadyError: node 1 not ready"
    assert (
        describe(ConnectionResetError(104, "reset\nmore"))
        == "ConnectionResetError: [Errno 104] reset"
    )
    assert describe(TimeoutError()) == "TimeoutError"
