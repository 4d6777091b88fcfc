"""Hostile export lines never stop ``firstvalue backfill``: hypothesis-drawn hostile lines
(extreme dates and numbers, wrong types, huge strings, NUL, random JSON, bytes that are not
UTF-8) interleaved with good ones, on SQLite and PostgreSQL. Every line is stored, parked or
rejected with its reason in ``FILE.rejected.ndjson``, and every good line is stored."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from integration.hostile import drawn, good_message, hostile_records

from services.ingest.backfill import backfill, rejected_path
from shared.storage.events import EventRepository

from .stack import BACKENDS
from .test_backfill import OPTIONS, PLANS, database, write_export

pytestmark = pytest.mark.e2e
EXAMPLES = 120


@pytest.mark.parametrize("backend", BACKENDS)
async def test_hostile_lines_are_stored_or_rejected_and_never_stop_the_backfill(
    backend: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    account = f"acct-{uuid.uuid4().hex[:8]}"
    hostile = [h.raw for h in drawn(hostile_records(account, now), EXAMPLES) if b"\n" not in h.raw]
    hostile = [raw.replace(b"\r", b"") for raw in hostile if raw.strip()]
    good = [good_message(account, n, now) for n in range(len(hostile) // 4)]
    lines: list[bytes] = list(hostile)
    for n, message in enumerate(good):
        lines.insert(n * 5, orjson.dumps(message))
    export = write_export(tmp_path / "hostile.ndjson", lines)
    async with database(backend, tmp_path) as db:
        summary = await backfill(
            [export], db.sessions, PLANS, OPTIONS, batch_size=25, clock=lambda: now
        )
        async with db.sessions() as session:
            stored = {e.id for e in await EventRepository(session).for_account(account)}
    totals = summary.totals
    assert totals.lines == len(lines)
    assert totals.accepted + totals.duplicates + totals.pending + totals.rejected == len(lines)
    assert {m["messageId"] for m in good} <= stored
    rejected = [orjson.loads(r) for r in rejected_path(export).read_bytes().splitlines()]
    assert len(rejected) == totals.rejected
    assert all(r["reason"] and r["error"] and r["line"] for r in rejected)
