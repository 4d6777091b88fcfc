"""The demo history through the real consumers: every stored state, folded batch by batch,
equals ``evaluate`` over all of its onboarding's facts (what the projection stored before
folding existed), field for field as stored."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from firstvalue import demo_data
from shared.config import sqlite_dsn
from shared.domain.codec import state_to_dict
from shared.domain.evaluate import evaluate
from shared.plan_files import load_plans
from shared.storage import create_engine, create_sessionmaker
from shared.storage.onboardings import OnboardingRepository

from .test_plans_diff_replay import DEFAULTS, NOW, ingest, stored

pytestmark = pytest.mark.e2e


async def _oracle(url: str, plans) -> dict[str, dict]:
    engine = create_engine(url, application_name="e2e-demo-exact")
    sessions = create_sessionmaker(engine)
    try:
        async with sessions() as session:
            onboardings = OnboardingRepository(session)
            found = {}
            for onboarding_id in await onboardings.ids(None, 100_000):
                loaded = await onboardings.facts_for(onboarding_id)
                assert loaded is not None
                registration, facts = loaded
                plan = plans[registration.plan_key]
                found[onboarding_id] = state_to_dict(evaluate(plan, registration, facts, NOW))
            return found
    finally:
        await engine.dispose()


def test_every_demo_onboarding_stored_by_the_consumers_equals_evaluate(tmp_path: Path) -> None:
    plans = load_plans([DEFAULTS])
    history = demo_data.generate(plans, NOW, accounts=60, days=90)
    url = sqlite_dsn(tmp_path / "demo.db")
    asyncio.run(ingest(url, plans, history))
    states, oracle = asyncio.run(stored(url)), asyncio.run(_oracle(url, plans))
    assert len(states) == 60 and states == oracle
