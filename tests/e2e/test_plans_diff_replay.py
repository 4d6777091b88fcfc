"""``firstvalue plans diff`` and ``firstvalue replay`` on a real plan change over demo data.

The change: the smb TTFV target tightened from 14 to 10 days (plan v2). Two databases take
the same demo history through the real ingest and milestones consumers at one fixed moment:
A under the current plans, B under the new ones (a fresh ingestion). ``plans diff`` on A
must list exactly the onboardings whose stored state differs between A and B in stage,
TTFV or escalations; ``replay`` on A under the new plans must then leave every onboarding's
stored state equal to B's.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from firstvalue import demo_data
from firstvalue.cli import app
from firstvalue.cli import console as cli_console
from services.ingest.consumer import IngestOptions, run_ingest
from services.milestones.consumer import run_milestones
from shared.analytics.normalize import partition_key
from shared.bus import topics
from shared.bus.memory import MemoryBus
from shared.config import load_settings, sqlite_dsn
from shared.default_plans import __file__ as default_plans_init
from shared.domain.plans import Plan
from shared.plan_files import load_plans
from shared.projection.manual import record_fact
from shared.storage import create_engine, create_sessionmaker, migrate
from shared.storage.onboardings import OnboardingRepository
from shared.storage.projections import ProjectionRepository

pytestmark = pytest.mark.e2e

NOW = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
ACCOUNTS = 40
DEFAULTS = Path(default_plans_init).parent
DRAIN_DEADLINE = 120.0


def tightened_plans(folder: Path) -> Path:
    """The default plans with smb's TTFV target cut from 14 to 10 days, as version 2."""
    folder.mkdir()
    for path in DEFAULTS.glob("*.yaml"):
        shutil.copy(path, folder / path.name)
    smb = folder / "smb.yaml"
    text = smb.read_text()
    for old, new in (("version: 1\n", "version: 2\n"), ("{min: 7, max: 14}", "{min: 7, max: 10}")):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    smb.write_text(text)
    return folder


async def ingest(url: str, plans: Mapping[str, Plan], history: demo_data.DemoHistory) -> None:
    """The demo history through the real consumers, every projection made at ``NOW``."""
    await migrate(url)
    engine = create_engine(url, application_name="e2e-plans-diff")
    sessions = create_sessionmaker(engine)
    bus = MemoryBus()
    await bus.start()
    options = IngestOptions.from_settings(load_settings(database_url=url), plans)
    tasks = [
        asyncio.create_task(run_ingest(bus, sessions, options, clock=lambda: NOW)),
        asyncio.create_task(run_milestones(bus, sessions, plans, clock=lambda: NOW)),
    ]
    try:
        keyed = [(partition_key(m), orjson.dumps(m)) for m in history.messages]
        await bus.publish_many(topics.EVENTS, sorted(keyed, key=lambda item: item[0] or ""))
        deadline = time.monotonic() + DRAIN_DEADLINE
        while await bus.lag(topics.EVENTS, "ingest") or await bus.lag(topics.FACTS, "milestones"):
            assert not any(t.done() for t in tasks), [t.exception() for t in tasks if t.done()]
            assert time.monotonic() < deadline, "the consumers did not drain the history"
            await asyncio.sleep(0.05)
        for fact in history.facts:
            async with sessions() as session, session.begin():
                await record_fact(session, plans, fact, NOW)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await bus.stop()
        await engine.dispose()


async def stored(url: str) -> dict[str, dict[str, Any]]:
    """Every onboarding's stored state (``codec.state_to_dict``), by onboarding id."""
    engine = create_engine(url, application_name="e2e-plans-diff")
    sessions = create_sessionmaker(engine)
    try:
        async with sessions() as session:
            ids = await OnboardingRepository(session).ids(None, 100_000)
            projections = ProjectionRepository(session)
            return {i: state for i in ids if (state := await projections.state_dict(i))}
    finally:
        await engine.dispose()


def what_ops_see(state: dict[str, Any]) -> tuple[Any, ...]:
    """Stage, TTFV and escalations as stored: what ``plans diff`` is about."""
    ttfv = state["ttfv"]
    escalations = sorted(
        (e["rule_key"], e["level"], e["fired_at"], e["resolved_at"] is None)
        for e in state["escalations"]
    )
    return (
        state["status"],
        state["current_stage"],
        ttfv["reached_at"],
        ttfv["days"],
        ttfv["breach"],
        tuple(escalations),
    )


def cli(url: str, *args: str, plans: Path | None = None) -> Any:
    env = {"FIRSTVALUE_DATABASE_URL": url, "FIRSTVALUE_KAFKA_BOOTSTRAP_SERVERS": ""}
    if plans is not None:
        env["FIRSTVALUE_PLANS"] = str(plans)
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result


def test_plans_diff_lists_the_affected_onboardings_and_replay_matches_a_fresh_ingestion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_console, "width", 240)  # the table's ids unfolded
    new_dir = tightened_plans(tmp_path / "plans-v2")
    old_plans, new_plans = load_plans([DEFAULTS]), load_plans([new_dir])
    history = demo_data.generate(old_plans, NOW, accounts=ACCOUNTS, days=90)
    current, fresh = sqlite_dsn(tmp_path / "current.db"), sqlite_dsn(tmp_path / "fresh.db")
    asyncio.run(ingest(current, old_plans, history))
    asyncio.run(ingest(fresh, new_plans, history))
    before, expected = asyncio.run(stored(current)), asyncio.run(stored(fresh))
    assert before.keys() == expected.keys() and len(before) == ACCOUNTS

    affected = {i for i in before if what_ops_see(before[i]) != what_ops_see(expected[i])}
    assert affected, "tightening the smb target must move someone into breach"
    at = ("--now", NOW.isoformat())
    report = orjson.loads(
        cli(current, "plans", "diff", str(DEFAULTS), str(new_dir), *at, "--json").stdout
    )
    listed = {d["onboarding_id"]: d for d in report["onboardings"]}
    assert listed.keys() == affected
    assert report["evaluated"] == ACCOUNTS and report["counts"]["changed"] == len(affected)
    assert report["counts"]["ttfv"] == len(affected)  # only smb's TTFV band moved
    assert len(affected) < sum(s["plan_key"] == "smb" for s in before.values())
    for onboarding_id, d in listed.items():
        assert d["plan_key"] == "smb" and (d["old_version"], d["new_version"]) == (1, 2)
        assert d["ttfv"]["new"].endswith("[7–10]")
        assert expected[onboarding_id]["ttfv"]["breach"] in d["ttfv"]["new"]

    table = cli(current, "plans", "diff", str(DEFAULTS), str(new_dir), *at)
    assert f"{ACCOUNTS} onboardings evaluated, {len(affected)} would change" in table.stdout
    assert sorted(affected)[0] in table.stdout

    replayed = cli(current, "replay", *at, plans=new_dir)
    assert f"Replayed {ACCOUNTS} onboardings" in replayed.stdout and "smb v2" in replayed.stdout
    after = asyncio.run(stored(current))
    assert after == expected  # every field of every onboarding, not only what diff shows
    again = orjson.loads(
        cli(current, "plans", "diff", str(new_dir), str(new_dir), *at, "--json").stdout
    )
    assert again["counts"]["changed"] == 0


def test_plans_diff_refuses_unreadable_plans_and_an_unmigrated_database(tmp_path: Path) -> None:
    url = sqlite_dsn(tmp_path / "empty.db")
    env = {"FIRSTVALUE_DATABASE_URL": url, "FIRSTVALUE_KAFKA_BOOTSTRAP_SERVERS": ""}
    runner = CliRunner()
    missing = runner.invoke(app, ["plans", "diff", str(tmp_path / "nope"), str(DEFAULTS)], env=env)
    assert missing.exit_code == 2 and "No such file or directory" in missing.output
    unmigrated = runner.invoke(app, ["plans", "diff", str(DEFAULTS), str(DEFAULTS)], env=env)
    assert unmigrated.exit_code == 2 and "firstvalue migrate" in unmigrated.output
