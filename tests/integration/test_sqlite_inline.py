"""SQLite read-only transactions run on the event loop's thread (``sqlite_inline``), writes
on aiosqlite's; and the inline path answers exactly what plain aiosqlite (the reference,
every call on its thread) answers, rows and errors alike."""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.config import async_database_url, sqlite_dsn
from shared.storage.engine import create_engine, create_sessionmaker, read_only
from shared.storage.sqlite_inline import InlineConnection

EXAMPLES = 60


def _with_thread_id(engine: AsyncEngine) -> AsyncEngine:
    """``thread_id()`` in SQL: the thread that steps the statement."""

    @event.listens_for(engine.sync_engine, "connect")
    def _register(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.create_function("thread_id", 0, threading.get_ident)

    return engine


async def test_reads_run_on_the_loop_thread_and_writes_on_the_connections(
    tmp_path: Path,
) -> None:
    engine = _with_thread_id(create_engine(sqlite_dsn(tmp_path / "t.db"), "test"))
    writes = create_sessionmaker(engine)
    reads = read_only(writes)
    loop_thread = threading.get_ident()
    try:
        for _ in range(2):  # the same pooled connection, reading and writing in turn
            async with reads() as session:
                assert await session.scalar(text("SELECT thread_id()")) == loop_thread
                await session.commit()
            async with writes() as session, session.begin():
                assert await session.scalar(text("SELECT thread_id()")) != loop_thread
            async with reads() as session:  # rolled back at the end, not committed
                assert await session.scalar(text("SELECT thread_id()")) == loop_thread
        async with engine.connect() as connection:
            raw = await connection.get_raw_connection()
            assert isinstance(raw.driver_connection, InlineConnection)
            assert not raw.driver_connection.inline  # outside a read-only transaction
    finally:
        await engine.dispose()


async def test_concurrent_reads_beside_a_writer_see_committed_rows(tmp_path: Path) -> None:
    engine = create_engine(sqlite_dsn(tmp_path / "t.db"), "test")
    writes = create_sessionmaker(engine)
    reads = read_only(writes)
    try:
        async with writes() as session, session.begin():
            await session.execute(text("CREATE TABLE n (v INTEGER)"))

        async def write(v: int) -> None:
            async with writes() as session, session.begin():
                await session.execute(text("INSERT INTO n VALUES (:v)"), {"v": v})

        async def read() -> list[int]:
            async with reads() as session:
                return list((await session.scalars(text("SELECT v FROM n ORDER BY v"))).all())

        seen = await asyncio.gather(*(f for v in range(20) for f in (write(v), read())))
        reads_seen = [rows for rows in seen if rows is not None]
        assert len(reads_seen) == 20
        assert all(set(rows) <= set(range(20)) for rows in reads_seen)
        assert await read() == list(range(20))
    finally:
        await engine.dispose()


_values = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(),
    st.binary(max_size=64),
)
_queries = st.sampled_from(
    [
        "SELECT k, v FROM t ORDER BY k",
        "SELECT k, v FROM t WHERE v IS NOT NULL ORDER BY k DESC LIMIT 3",
        "SELECT count(*), typeof(v) FROM t GROUP BY typeof(v) ORDER BY 2",
        "SELECT k FROM t WHERE v = :probe ORDER BY k",
        "SELECT no_such_column FROM t",  # an error, the same on both paths
        "SELECT k FROM no_such_table",
    ]
)


async def _answers(engine: AsyncEngine, query: str, probe: Any) -> Any:
    async with read_only(create_sessionmaker(engine))() as session:
        try:
            result = await session.execute(text(query), {"probe": probe})
            return [tuple(row) for row in result]
        except (OperationalError, IntegrityError) as error:
            return type(error.orig).__name__, str(error.orig)


async def _compare(rows: list[tuple[int, Any]], query: str, probe: Any) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = sqlite_dsn(Path(folder) / "t.db")
        inline = create_engine(url, "test")
        reference = create_async_engine(async_database_url(url))  # plain aiosqlite
        try:
            async with create_sessionmaker(inline)() as session, session.begin():
                await session.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY, v)"))
                for k, v in rows:
                    await session.execute(text("INSERT INTO t VALUES (:k, :v)"), {"k": k, "v": v})
            ours = await _answers(inline, query, probe)
            theirs = await _answers(reference, query, probe)
        finally:
            await inline.dispose()
            await reference.dispose()
    assert ours == theirs


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(1, 10_000), _values), unique_by=lambda r: r[0]),
    query=_queries,
    probe=_values,
)
def test_inline_reads_answer_what_aiosqlite_answers(
    rows: list[tuple[int, Any]], query: str, probe: Any
) -> None:
    asyncio.run(_compare(rows, query, probe))


async def test_a_write_in_a_read_only_transaction_fails_at_once_and_writes_still_work(
    tmp_path: Path,
) -> None:
    engine = create_engine(sqlite_dsn(tmp_path / "t.db"), "test")
    writes = create_sessionmaker(engine)
    try:
        async with writes() as session, session.begin():
            await session.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY, v)"))
        # Another connection holds the write lock. Waiting for it on the loop's thread would
        # stop every other task for the busy timeout (30 s): the write is refused at once.
        async with writes() as holder, holder.begin():
            await holder.execute(text("INSERT INTO t VALUES (1, 1)"))
            async with read_only(writes)() as session:
                started = time.monotonic()
                with pytest.raises(OperationalError, match="readonly"):
                    await session.execute(text("INSERT INTO t VALUES (2, 2)"))
                assert time.monotonic() - started < 1
                await session.rollback()
        for k in (3, 4):  # the pooled connections write again once back from reading
            async with writes() as session, session.begin():
                await session.execute(text("INSERT INTO t VALUES (:k, 0)"), {"k": k})
        async with writes() as session:
            assert list((await session.scalars(text("SELECT k FROM t ORDER BY k"))).all()) == [
                1,
                3,
                4,
            ]
    finally:
        await engine.dispose()
