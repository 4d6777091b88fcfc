"""SQLite connections whose read-only transactions run on the event loop's thread.

aiosqlite runs every call (``cursor()``, ``execute``, ``fetchall``, ``commit``) on the
connection's own thread and wakes the event loop when it is done: about nine hand-offs for
one API read, which cost more CPU than the read itself (a page of the list is well under a
millisecond of SQLite work). A transaction that only reads, in WAL mode, never waits for a
lock (the writer's lock is not taken and readers do not block each other), so it can run
its calls directly instead (``InlineConnection``). Transactions that may write keep the
thread: ``BEGIN IMMEDIATE`` may wait for the writer before it up to the busy timeout, and
that wait must not stop the loop.

The sqlite3 connection is then used from two threads, one call at a time (the pool hands a
connection to one user at a time, and each call is awaited), hence
``check_same_thread=False``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from functools import partial
from typing import Any

import aiosqlite

ITER_CHUNK_SIZE = 64  # aiosqlite.connect's default


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection that runs its calls inline while ``inline`` is set (the
    engine sets it, with ``set_inline``, for the length of a read-only transaction)."""

    inline = False

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self.inline:
            return await super()._execute(fn, *args, **kwargs)
        if not self._running or not self._connection:
            raise ValueError("Connection closed")  # what aiosqlite raises
        return fn(*args, **kwargs)


def connect(database: str, **kwargs: Any) -> InlineConnection:
    """``aiosqlite.connect`` with ``InlineConnection`` (the dialect's ``async_creator_fn``:
    it gets the arguments the dialect derived from the URL, as ``aiosqlite.connect``
    would)."""
    kwargs["check_same_thread"] = False
    connection = InlineConnection(partial(sqlite3.connect, database, **kwargs), ITER_CHUNK_SIZE)
    connection._thread.daemon = True  # as the dialect does for its own aiosqlite connections
    return connection


def set_inline(driver_connection: object, inline: bool) -> None:
    """Switch a pooled connection between transactions (a no-op for any other kind).

    Inline, the connection is also ``query_only``: a write in a read-only transaction fails
    at once instead of waiting for the write lock on the loop's thread, which would stop
    every other task for up to the busy timeout. (The connection's thread is idle between
    transactions, so the pragma runs here, directly.)
    """
    if not isinstance(driver_connection, InlineConnection):
        return
    if driver_connection.inline != inline and driver_connection._connection is not None:
        driver_connection._connection.execute(f"PRAGMA query_only={int(inline)}")
    driver_connection.inline = inline
