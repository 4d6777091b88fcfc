"""The demo history: deterministic, big and varied enough, and each scenario shows what it
claims when the core evaluates it."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime

import pytest

from firstvalue.demo_data import SCENARIOS, DemoHistory, generate
from shared.analytics.registration import onboarding_id_for, registration_id
from shared.domain.evaluate import evaluate
from shared.domain.facts import EventObserved, Fact, OnboardingRegistered
from shared.domain.plans import Plan
from shared.domain.state import OnboardingState
from shared.plan_files import default_plans

pytestmark = pytest.mark.e2e

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def plans() -> dict[str, Plan]:
    return default_plans()


@pytest.fixture(scope="module")
def history(plans: dict[str, Plan]) -> DemoHistory:
    return generate(plans, NOW, seed=11)


@pytest.fixture(scope="module")
def states(history: DemoHistory, plans: dict[str, Plan]) -> dict[str, OnboardingState]:
    """Every account evaluated by the core at the history's end (scenario → account id)."""
    return {
        a.account_id: evaluate(plans[a.segment], reg, facts, history.now)
        for a, reg, facts in _facts_per_account(history)
    }


def _facts_per_account(
    history: DemoHistory,
) -> list[tuple[object, OnboardingRegistered, list[Fact]]]:
    """What the ingest makes of the messages, done directly: enough to check the generator."""
    events: dict[str, list[Fact]] = defaultdict(list)
    registrations: dict[str, OnboardingRegistered] = {}
    for m in history.messages:
        if m["type"] != "track":
            continue
        account = m["context"]["groupId"]
        at = datetime.fromisoformat(m["timestamp"])
        if m["event"] == "Contract Signed":
            p = m["properties"]
            onboarding_id = onboarding_id_for(account, p["plan"])
            registrations[account] = OnboardingRegistered(
                id=registration_id(onboarding_id),
                onboarding_id=onboarding_id,
                account_id=account,
                plan_key=p["plan"],
                at=at,
                csm=p["csm"],
                champion_user_id=p["champion_user_id"],
                licensed_seats=p["licensed_seats"],
                account_name=p["account_name"],
            )
        events[account].append(
            EventObserved(m["messageId"], account, m["userId"], m["event"], at, m["properties"])
        )
    manual: dict[str, list[Fact]] = defaultdict(list)
    for fact in history.facts:
        manual[fact.onboarding_id].append(fact)
    return [
        (a, registrations[a.account_id], events[a.account_id] + manual[a.onboarding_id])
        for a in history.accounts
    ]


def _of(history: DemoHistory, states: dict[str, OnboardingState], scenario: str):
    picked = [states[a.account_id] for a in history.accounts if a.scenario == scenario]
    assert picked, f"no {scenario} account"
    return picked


def test_same_seed_same_history_byte_for_byte(plans: dict[str, Plan]) -> None:
    first = generate(plans, NOW, accounts=40, seed=3)
    again = generate(plans, NOW, accounts=40, seed=3)
    other = generate(plans, NOW, accounts=40, seed=4)
    assert first.messages == again.messages
    assert first.facts == again.facts
    assert first.messages != other.messages


def test_history_has_300_accounts_in_three_segments_and_every_scenario(
    history: DemoHistory,
) -> None:
    segments = Counter(a.segment for a in history.accounts)
    assert len(history.accounts) >= 300
    assert set(segments) == {"smb", "mid_market", "enterprise"}
    assert segments["smb"] > segments["mid_market"] > segments["enterprise"]
    assert set(SCENARIOS) == {a.scenario for a in history.accounts}
    assert 30_000 <= len(history.messages) <= 80_000


def test_every_message_is_a_wellformed_segment_message(history: DemoHistory) -> None:
    ids = [m["messageId"] for m in history.messages]
    assert len(ids) == len(set(ids))
    for m in history.messages:
        assert m["type"] in ("track", "identify", "group")
        assert datetime.fromisoformat(m["timestamp"]) <= history.now
        assert m["userId"]
    stamps = [m["timestamp"] for m in history.messages]
    assert stamps == sorted(stamps)


def test_every_active_user_is_grouped_to_its_account_with_the_scenario_in_traits(
    history: DemoHistory,
) -> None:
    groups = {m["userId"]: m for m in history.messages if m["type"] == "group"}
    by_id = {a.account_id: a for a in history.accounts}
    for m in history.messages:
        if m["type"] == "track":
            group = groups[m["userId"]]
            assert group["groupId"] == m["context"]["groupId"]
            assert group["traits"]["scenario"] == by_id[group["groupId"]].scenario
            assert group["timestamp"] <= m["timestamp"]


def test_contract_signed_carries_the_registration(history: DemoHistory) -> None:
    signed = [m for m in history.messages if m.get("event") == "Contract Signed"]
    assert len(signed) == len(history.accounts)
    for m in signed:
        p = m["properties"]
        assert p["plan"] in ("smb", "mid_market", "enterprise")
        assert p["csm"] and p["account_name"] and p["champion_user_id"] == m["userId"]
        assert p["licensed_seats"] in (10, 25, 60)


def test_fast_accounts_are_onboarded_well_inside_the_ttfv_target(history, states) -> None:
    for state in _of(history, states, "fast_first_value"):
        assert state.status == "onboarded", state.onboarding_id
        assert state.ttfv.days is not None and state.ttfv.days < state.ttfv.target_max_days
        assert state.ttfv.breach == "none"


def test_onboarded_accounts_carry_the_sponsors_written_confirmation(history, states) -> None:
    for state in _of(history, states, "onboarded_with_sponsor"):
        assert state.status == "onboarded", state.onboarding_id
        confirmed = [m for m in state.milestones if m.confirmations]
        assert confirmed and all(c.confirmed_by for m in confirmed for c in m.confirmations)


def test_on_track_accounts_have_no_breach_and_no_open_escalation(history, states) -> None:
    for state in _of(history, states, "on_track"):
        assert state.status == "onboarding"
        assert state.ttfv.breach == "none"
        assert not state.open_escalations, (state.onboarding_id, state.open_escalations)


def test_slow_accounts_reach_first_value_in_breach(history, states) -> None:
    for state in _of(history, states, "slow_first_value"):
        assert state.ttfv.reached_at is not None
        assert state.ttfv.breach == "breach", (state.onboarding_id, state.ttfv)


def test_severe_accounts_are_at_twice_the_target_or_more(history, states) -> None:
    for state in _of(history, states, "severe_breach"):
        assert state.ttfv.breach == "severe", (state.onboarding_id, state.ttfv)


def test_stalled_accounts_carry_the_technical_completion_escalation(history, states, plans) -> None:
    for state in _of(history, states, "stalled_in_setup"):
        plan = plans[state.plan_key]
        assert state.decomposition.go_live_at is None
        late = [
            e
            for e in state.open_escalations
            if any(r.key == e.rule_key and r.stage == plan.go_live_stage for r in plan.escalations)
        ]
        assert late, (state.onboarding_id, state.escalations)


def test_silent_accounts_are_flagged_silent(history, states) -> None:
    for state in _of(history, states, "silent"):
        assert state.signals.silent_days >= 14
        assert any(e.kind == "silence" for e in state.open_escalations), state.onboarding_id


def test_champion_gone_quiet_is_signalled(history, states) -> None:
    for state in _of(history, states, "champion_quiet"):
        assert state.signals.champion_quiet, state.onboarding_id


def test_tasks_done_but_no_value_looks_done_and_is_not(history, states, plans) -> None:
    for state in _of(history, states, "tasks_done_no_value"):
        plan = plans[state.plan_key]
        assert state.tasks_done_no_value, state.onboarding_id
        first_value = next(m for m in state.milestones if m.key == plan.first_value)
        assert first_value.progress != "complete"
        assert all(m.progress == "complete" for m in state.milestones if m.kind == "task")


def test_paused_accounts_report_the_pause(history, states) -> None:
    for state in _of(history, states, "paused"):
        assert state.pause.paused or state.pause.paused_days > 0, state.onboarding_id


def test_amended_accounts_keep_author_and_reason(history, states) -> None:
    for state in _of(history, states, "amended_success_milestone"):
        assert state.amendments
        assert all(a.author and a.reason for a in state.amendments)
