"""The Alembic revision creates exactly the schema the models describe, on both backends."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from shared.storage import create_engine, migrate
from shared.storage.tables import metadata

ROOT = Path(__file__).resolve().parents[2]


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def _tables_and_indexes(connection: Connection) -> dict[str, set[str]]:
    inspector = inspect(connection)
    return {
        table: {index["name"] or "" for index in inspector.get_indexes(table)}
        for table in inspector.get_table_names()
    }


async def test_migrations_create_every_table_and_index(empty_database_url: str) -> None:
    await migrate(empty_database_url)
    engine = create_engine(empty_database_url, application_name="firstvalue-tests")
    try:
        async with engine.connect() as connection:
            found = await connection.run_sync(_tables_and_indexes)
            diff = await connection.run_sync(_diff)
    finally:
        await engine.dispose()
    assert set(metadata.tables) <= set(found)
    assert "ix_events_account_id_name_occurred_at" in found["events"]
    assert "ix_onboarding_projections_next_due_at" in found["onboarding_projections"]
    assert diff == []  # autogenerate finds nothing to add, drop or alter


async def test_migrate_twice_is_a_no_op(database_url: str) -> None:
    await migrate(database_url)


def test_alembic_command_line_upgrades_from_the_repository_root(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "FIRSTVALUE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        "PYTHONPATH": str(ROOT),
    }
    alembic = [sys.executable, "-m", "alembic"]
    subprocess.run([*alembic, "upgrade", "head"], cwd=ROOT, env=env, check=True)
    check = subprocess.run(
        [*alembic, "check"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No new upgrade operations detected" in check.stdout + check.stderr


async def test_concurrent_migrations_do_not_collide(empty_database_url: str) -> None:
    await asyncio.gather(*(migrate(empty_database_url) for _ in range(3)))
    engine = create_engine(empty_database_url, application_name="firstvalue-tests")
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(_tables_and_indexes)
            if connection.dialect.name == "sqlite":
                journal = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar()
                foreign_keys = (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar()
                assert (journal, foreign_keys) == ("wal", 1)
    finally:
        await engine.dispose()
    assert set(metadata.tables) <= set(tables)
