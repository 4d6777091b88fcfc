"""A realistic, deterministic synthetic onboarding history for demos and end-to-end tests.

``generate(plans, now)`` spreads contract signatures over the days before ``now`` across
three segments and eleven named scenarios (``demo_scenarios``), and builds each account
(``demo_account``): Segment messages — group and identify per user, ``Contract Signed``,
milestone events shaped by the plans' rules, background noise — plus the manual facts that
enter through the API (sponsor confirmations, pauses, amendments). Same inputs, same output.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from firstvalue.demo_account import AccountBuilder, DemoAccount
from firstvalue.demo_scenarios import SCENARIO_WEIGHTS, SCENARIOS, feasible
from shared.analytics.registration import onboarding_id_for
from shared.domain.facts import ManualFact
from shared.domain.plans import Plan

__all__ = ["SCENARIOS", "DemoAccount", "DemoHistory", "generate"]

DEFAULT_ACCOUNTS = 320
DEFAULT_SEED = 7
DEFAULT_DAYS = 120
SEGMENT_SHARES: dict[str, float] = {"smb": 0.55, "mid_market": 0.30, "enterprise": 0.15}
CSMS: tuple[str, ...] = (
    "Avery Chen",
    "Jordan Patel",
    "Maria Gonzalez",
    "Sam Okafor",
    "Priya Raman",
    "Lena Novak",
)
_CO_A = (
    "North",
    "Blue",
    "Bright",
    "Iron",
    "Silver",
    "Green",
    "Swift",
    "Clear",
    "Summit",
    "Harbor",
    "Pine",
    "Red",
    "Nova",
    "Atlas",
    "Cedar",
    "Orbit",
    "Delta",
    "Lumen",
    "Vertex",
    "Echo",
)
_CO_B = (
    "wind",
    "field",
    "stone",
    "bridge",
    "path",
    "peak",
    "river",
    "light",
    "works",
    "gate",
    "line",
    "craft",
    "point",
    "wave",
    "forge",
    "leaf",
)
_CO_C = (
    "Logistics",
    "Health",
    "Labs",
    "Retail",
    "Capital",
    "Foods",
    "Energy",
    "Media",
    "Systems",
    "Analytics",
    "Travel",
    "Manufacturing",
    "Insurance",
    "Learning",
)


@dataclass
class DemoHistory:
    """Segment messages (time-ordered), manual facts, and the moment the history ends."""

    now: datetime
    messages: list[dict[str, Any]]
    facts: list[ManualFact]
    accounts: list[DemoAccount]


def generate(
    plans: Mapping[str, Plan],
    now: datetime,
    *,
    accounts: int = DEFAULT_ACCOUNTS,
    seed: int = DEFAULT_SEED,
    days: int = DEFAULT_DAYS,
    onboarding_id: Callable[[str, str], str] = onboarding_id_for,
    on_account: Callable[[], None] | None = None,
) -> DemoHistory:
    """``accounts`` onboardings signed over the ``days`` before ``now``; same inputs, same output.

    One plan per segment takes part (``demo_plans``): with the packaged plans, smb,
    mid_market and enterprise in the shares of ``SEGMENT_SHARES``; with custom plans, their
    segments in equal shares. Raises ``ValueError`` (one line) when no plan is configured.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    by_segment = demo_plans(plans)
    if not by_segment:
        raise ValueError("no plan is configured to build the demo on")
    now = now.astimezone(UTC)
    rng = random.Random(seed)
    history = DemoHistory(now=now, messages=[], facts=[], accounts=[])
    names: set[str] = set()
    for index, (segment, scenario) in enumerate(_assign(rng, by_segment, accounts, days)):
        builder = AccountBuilder(
            rng=random.Random(rng.getrandbits(64)),
            plan=by_segment[segment],
            scenario=scenario,
            index=index,
            now=now,
            days=days,
            csm=CSMS[rng.randrange(len(CSMS))],
            name=_company_name(rng, names),
            onboarding_id=onboarding_id,
        )
        account, messages, facts = builder.build()
        history.accounts.append(account)
        history.messages.extend(messages)
        history.facts.extend(facts)
        if on_account is not None:
            on_account()
    history.messages.sort(key=lambda m: (m["timestamp"], m["messageId"]))
    history.facts.sort(key=lambda f: (f.at, f.id))
    return history


def demo_plans(plans: Mapping[str, Plan]) -> dict[str, Plan]:
    """The plan each demo segment uses: one per segment, the first by key when several
    plans share a segment."""
    chosen: dict[str, Plan] = {}
    for key in sorted(plans):
        chosen.setdefault(plans[key].segment, plans[key])
    return chosen


def _shares(segments: Mapping[str, Plan]) -> dict[str, float]:
    """The packaged segments' usual mix when those are all there, else equal shares."""
    if set(segments) == set(SEGMENT_SHARES):
        return dict(SEGMENT_SHARES)
    return {segment: 1.0 for segment in sorted(segments)}


def _assign(
    rng: random.Random, plans: Mapping[str, Plan], total: int, days: int
) -> list[tuple[str, str]]:
    """Exact segment shares and scenario weights; each scenario on a segment where it fits."""
    shares = _shares(plans)
    segments = _apportion(shares, total)
    scenarios = _apportion({k: float(v) for k, v in SCENARIO_WEIGHTS.items()}, total)
    # The most constrained scenarios choose first, so they still find a segment that fits.
    scenarios.sort(key=lambda s: sum(feasible(plans[g], s, days) for g in shares))
    left = {g: segments.count(g) for g in shares}
    pairs: list[tuple[str, str]] = []
    for scenario in scenarios:
        fits = [g for g in shares if left[g] and feasible(plans[g], scenario, days)]
        if not fits:
            fits, scenario = [g for g in shares if left[g]], "on_track"
        segment = rng.choices(fits, weights=[left[g] for g in fits])[0]
        left[segment] -= 1
        pairs.append((segment, scenario))
    rng.shuffle(pairs)
    return pairs


def _apportion(weights: Mapping[str, float], total: int) -> list[str]:
    """Largest-remainder split of ``total`` by ``weights``; one each when there is room."""
    whole = sum(weights.values())
    exact = {k: total * w / whole for k, w in weights.items()}
    floor = 1 if total >= len(weights) else 0
    counts = {k: max(floor, int(v)) for k, v in exact.items()}
    by_remainder = sorted(weights, key=lambda k: exact[k] - int(exact[k]), reverse=True)
    for i in range(max(0, total - sum(counts.values()))):
        counts[by_remainder[i % len(by_remainder)]] += 1
    while sum(counts.values()) > total:
        counts[max(counts, key=lambda k: counts[k])] -= 1
    return [k for k in weights for _ in range(counts[k])]


def _company_name(rng: random.Random, taken: set[str]) -> str:
    while True:
        name = f"{rng.choice(_CO_A)}{rng.choice(_CO_B)} {rng.choice(_CO_C)}"
        if name not in taken:
            taken.add(name)
            return name
