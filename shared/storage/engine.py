"""Engines and sessions: made once per process at start-up, disposed at shutdown.

SQLite (embedded mode) is in WAL mode, and a transaction that may write starts as ``BEGIN
IMMEDIATE``: the ingest consumer, the milestones consumer, the timers and the API share one
file, and a deferred transaction that read first and writes later would fail with a stale
WAL snapshot instead of waiting its turn. So writers are serialised, each waiting (up to the
busy timeout) for the one before. Sessions from ``read_only`` only read: they start a
deferred ``BEGIN``, which in WAL mode reads a snapshot without taking the write lock, so
reads run beside each other and beside the one writer instead of queueing behind it.
Read-only transactions also run their calls on the event loop's thread instead of
aiosqlite's (``sqlite_inline``): they never wait for a lock, and the hand-offs to the thread
cost more than such reads.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from shared.config import async_database_url
from shared.storage import sqlite_inline

SQLITE_BUSY_TIMEOUT_MS = 30_000
READ_ONLY = "firstvalue_read_only"  # execution option of ``read_only`` sessions' connections


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def create_engine(url: str, application_name: str) -> AsyncEngine:
    """An async engine for ``url``; ``application_name`` labels PostgreSQL connections."""
    url = async_database_url(url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return create_async_engine(
        url,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        pool_pre_ping=True,
        connect_args={"server_settings": {"application_name": application_name}},
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit (no lazy reloads in async code)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def read_only(sessionmaker: async_sessionmaker[AsyncSession]) -> async_sessionmaker[AsyncSession]:
    """Sessions on the same engine (and pool) for work that never writes. On SQLite their
    transactions take no write lock (see above), so a write in one would fail rather than
    wait: use them only for reads. On PostgreSQL they are ordinary sessions."""
    engine = sessionmaker.kw.get("bind")
    if not isinstance(engine, AsyncEngine):
        raise TypeError("read_only needs a sessionmaker bound to one engine")
    return async_sessionmaker(engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False)


def _sqlite_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(
        url,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        connect_args={
            "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
            "async_creator_fn": sqlite_inline.connect,
        },
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite would defer it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
            "PRAGMA foreign_keys=ON",
            "PRAGMA synchronous=NORMAL",
        ):
            cursor.execute(pragma)
        _use_wal(cursor)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        reading = connection.get_execution_options().get(READ_ONLY, False)
        sqlite_inline.set_inline(connection.connection.driver_connection, reading)
        connection.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        # Back in the pool (its transaction ended): the next user's "begin" decides again.
        sqlite_inline.set_inline(record.driver_connection, False)

    return engine


def _use_wal(cursor: Any) -> None:
    """Switch the file to WAL (persistent, so only its first connection ever does it).

    Two connections opening a brand-new file at once can collide on the switch; the loser
    gets "database is locked" without waiting, while the winner is switching it anyway.
    """
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() == "wal":
        return
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    except Exception as error:
        if "locked" not in str(error):
            raise
