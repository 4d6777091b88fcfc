"""The ``firstvalue`` command's offline subcommands: ``plans check`` and ``demo-data``."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from firstvalue import records
from firstvalue.cli import app

pytestmark = pytest.mark.e2e

DEFAULT_PLANS = Path(__file__).resolve().parents[2] / "shared" / "default_plans"


def test_plans_check_says_ok_for_each_default_plan() -> None:
    files = sorted(DEFAULT_PLANS.glob("*.yaml"))
    result = CliRunner().invoke(app, ["plans", "check", *map(str, files)])
    assert result.exit_code == 0, result.output
    assert result.output.count("OK") == len(files) >= 3


def test_plans_check_names_file_line_and_reason_and_exits_1(tmp_path: Path) -> None:
    good = sorted(DEFAULT_PLANS.glob("*.yaml"))[0]
    broken = tmp_path / "broken.yaml"
    text = good.read_text().replace("kind: outcome", "kind: task")  # onboarded gate: no outcome
    broken.write_text(text)
    result = CliRunner().invoke(app, ["plans", "check", str(good), str(broken)])
    assert result.exit_code == 1
    assert "OK" in result.output
    assert f"{broken}:" in result.output and "FAIL" in result.output
    assert "outcome" in result.output


def test_plans_check_of_a_missing_file_fails(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["plans", "check", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1
    assert "nope.yaml" in result.output


def test_demo_data_writes_segment_messages_and_typed_facts(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        app,
        [
            "demo-data",
            "--out",
            str(out),
            "--accounts",
            "40",
            "--seed",
            "2",
            "--now",
            "2026-05-01T00:00:00Z",
        ],
    )
    assert result.exit_code == 0, result.output
    messages = [orjson.loads(line) for line in (out / "events.ndjson").read_bytes().splitlines()]
    facts = [
        records.from_record(orjson.loads(line))
        for line in (out / "facts.ndjson").read_bytes().splitlines()
    ]
    assert sum(1 for m in messages if m.get("event") == "Contract Signed") == 40
    assert all(m["messageId"] and m["timestamp"] for m in messages)
    assert facts and {type(f).__name__ for f in facts} >= {"EvidenceRecorded", "OnboardingPaused"}
    again = tmp_path / "again"
    CliRunner().invoke(
        app,
        [
            "demo-data",
            "--out",
            str(again),
            "--accounts",
            "40",
            "--seed",
            "2",
            "--now",
            "2026-05-01T00:00:00Z",
        ],
    )
    assert (again / "events.ndjson").read_bytes() == (out / "events.ndjson").read_bytes()


@pytest.mark.parametrize("command", ["ingest", "milestones"])
def test_services_alone_need_kafka_and_say_so(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FIRSTVALUE_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    result = CliRunner().invoke(app, [command])
    assert result.exit_code == 2
    assert "FIRSTVALUE_KAFKA_BOOTSTRAP_SERVERS" in result.output


def test_prune_deletes_old_idempotency_keys_and_says_how_many(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    from datetime import UTC, datetime, timedelta

    from shared.storage import create_engine, create_sessionmaker, migrate_sync
    from shared.storage.idempotency import IdempotencyRepository

    url = f"sqlite+aiosqlite:///{tmp_path / 'fv.db'}"
    migrate_sync(url)
    now = datetime.now(UTC)

    async def seed() -> None:
        engine = create_engine(url, application_name="test")
        async with create_sessionmaker(engine)() as session, session.begin():
            keys = IdempotencyRepository(session)
            await keys.save("writer", "old", "h", 201, {}, now - timedelta(days=45))
            await keys.save("writer", "new", "h", 201, {}, now - timedelta(days=1))
        await engine.dispose()

    asyncio.run(seed())
    monkeypatch.setenv("FIRSTVALUE_DATABASE_URL", url)
    result = CliRunner().invoke(app, ["prune", "--older-than-days", "30"])
    assert result.exit_code == 0, result.output
    assert "1 idempotency keys, 0 settled webhook deliveries" in " ".join(result.output.split())
    again = CliRunner().invoke(app, ["prune", "--older-than-days", "30"])
    assert "0 idempotency keys" in again.output
