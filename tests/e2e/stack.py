"""End-to-end helpers: a fresh database per backend, the embedded pipeline, an HTTP client.

Backends: a SQLite file, and a new database created on the PostgreSQL server named by
``FIRSTVALUE_TEST_DATABASE_URL`` (dropped afterwards). Without that variable the PostgreSQL
cases are skipped locally and fail in CI (``CI=true``), where the server must be there.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from firstvalue.demo_data import DemoHistory
from firstvalue.embedded import Pipeline, load_history, start_pipeline
from services.api.app import create_app
from shared.config import Settings, load_settings, sqlite_dsn
from shared.storage.api_keys import ApiKeyRepository
from shared.storage.scratch import scratch_database

BACKENDS = ("sqlite", "postgresql")


def postgres_server_url() -> str:
    """The test server's URL, or skip (locally) / fail (in CI) when there is none."""
    url = os.environ.get("FIRSTVALUE_TEST_DATABASE_URL")
    if url:
        return url
    if os.environ.get("CI") == "true":
        pytest.fail("FIRSTVALUE_TEST_DATABASE_URL is not set: CI must run the PostgreSQL tests")
    pytest.skip("FIRSTVALUE_TEST_DATABASE_URL is not set: PostgreSQL e2e tests skipped")


@contextlib.asynccontextmanager
async def fresh_database(backend: str, directory: Path) -> AsyncIterator[str]:
    """The URL of an empty database of that backend, removed on exit."""
    if backend == "sqlite":
        yield sqlite_dsn(directory / f"e2e-{uuid.uuid4().hex[:8]}.db")
        return
    async with scratch_database(postgres_server_url(), "fv_e2e") as url:
        yield url


@dataclass
class Stack:
    """A running pipeline and an HTTP client on the API that shares it."""

    settings: Settings
    pipeline: Pipeline
    client: httpx.AsyncClient
    read_key: str
    write_only_key: str
    history: DemoHistory | None

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.read_key}"}


@contextlib.asynccontextmanager
async def api_stack(
    database_url: str, history: DemoHistory | None = None, **settings: Any
) -> AsyncIterator[Stack]:
    """Pipeline + API on ``database_url``, with ``history`` loaded through the real path.
    HTTP ingest accepts any write key unless the test configures keys."""
    config = load_settings(database_url=database_url, **({"ingest_auth": "open"} | settings))
    async with start_pipeline(config) as pipeline:
        if history is not None:
            await load_history(pipeline, history)
        async with pipeline.sessionmaker() as session, session.begin():
            keys = ApiKeyRepository(session)
            now = datetime.now(UTC)
            read_key = await keys.create("e2e-reader", ("read",), now)
            write_only_key = await keys.create("e2e-writer", ("write",), now)
        app = create_app(
            config, plans=pipeline.plans, sessionmaker=pipeline.sessionmaker, bus=pipeline.bus
        )
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://firstvalue.test") as client,
        ):
            yield Stack(config, pipeline, client, read_key, write_only_key, history)
