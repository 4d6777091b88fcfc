"""Reports, the at-risk list, escalations and explanations over a seeded history, checked
against figures worked out by hand (see ``api_seed.history``), on SQLite and PostgreSQL.

Nearest-rank percentiles: p = the value at rank ceil(p/100 × n) of the sorted TTFVs.
  smb reached     [3, 5, 10, 12, 20, 30, 32]  n=7 → p50 rank 4 = 12, p75 rank 6 = 30,
                                                    p90 rank 7 = 32, max 32
  mid_market      [40, 50]                    n=2 → p50 rank 1 = 40, p75/p90 rank 2 = 50
  smb March       [3, 5, 10]                  → p50 5, p75 10, p90 10
  smb April       [12, 20, 30]                → p50 20, p75 30, p90 30
SMB breaches over 14 days, severe at 28+; mid-market over 45, severe at 90+.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from .api_seed import Seeded, seed
from .stack import BACKENDS, Stack, api_stack, fresh_database

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


@dataclass
class World:
    stack: Stack
    seeded: dict[str, Seeded]


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    directory: Path = tmp_path_factory.mktemp("api-reports")
    async with (
        fresh_database(request.param, directory) as url,
        api_stack(url, None, timer_interval_seconds=3600) as stack,
    ):
        seeded = await seed(stack, datetime.now(UTC))
        yield World(stack, {s.account_id: s for s in seeded})


async def _get(world: World, url: str, **params: Any) -> dict[str, Any]:
    response = await world.stack.client.get(url, params=params, headers=world.stack.auth())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _groups(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["group"]: g for g in report["groups"]}


def _counts(buckets: list[dict[str, Any]]) -> dict[str, int]:
    return {b["label"]: b["count"] for b in buckets if b["count"]}


async def test_ttfv_by_segment_matches_the_hand_computed_distribution(world: World) -> None:
    report = await _get(world, "/v1/reports/ttfv", group_by="segment")
    assert report["percentile_method"] == "nearest-rank"
    smb, mid = _groups(report)["smb"], _groups(report)["mid_market"]
    assert (smb["onboardings"], smb["reached"], smb["open"]) == (10, 7, 3)
    assert smb["ttfv_days"] == {"p50": 12.0, "p75": 30.0, "p90": 32.0, "max": 32.0}
    # none: 3 5 10 12 and juniper (5 days open); breach: 20, kestrel (25), lumen (16);
    # severe: 30, 32
    assert smb["breaches"] == {"none": 5, "breach": 3, "severe": 2}
    assert _counts(smb["open_by_age"]) == {"0-14": 1, "14-30": 2}
    assert _counts(smb["histogram"]) == {"0-7": 2, "7-14": 2, "14-30": 2, "30-45": 1}
    assert (mid["onboardings"], mid["reached"], mid["open"]) == (3, 2, 1)
    assert mid["ttfv_days"] == {"p50": 40.0, "p75": 50.0, "p90": 50.0, "max": 50.0}
    assert mid["breaches"] == {"none": 1, "breach": 1, "severe": 1}  # 40, 50, mosaic (100)
    assert _counts(mid["open_by_age"]) == {"90+": 1}
    assert _counts(mid["histogram"]) == {"30-45": 1, "45-60": 1}
    total = report["total"]
    assert (total["onboardings"], total["reached"], total["open"]) == (13, 9, 4)
    # all nine reached: [3 5 10 12 20 30 32 40 50] → ranks 5, 7, 9
    assert total["ttfv_days"] == {"p50": 20.0, "p75": 32.0, "p90": 50.0, "max": 50.0}


async def test_ttfv_by_signature_cohort(world: World) -> None:
    report = await _get(world, "/v1/reports/ttfv", group_by="cohort", segment="smb")
    groups = _groups(report)
    assert groups["2026-03"]["ttfv_days"] == {"p50": 5.0, "p75": 10.0, "p90": 10.0, "max": 10.0}
    assert groups["2026-04"]["ttfv_days"] == {"p50": 20.0, "p75": 30.0, "p90": 30.0, "max": 30.0}
    assert groups["2026-01"]["reached"] == 1 and groups["2026-01"]["ttfv_days"]["max"] == 32.0
    assert sum(g["onboardings"] for g in groups.values()) == 10


async def test_ttfv_cohort_filter_and_csm_grouping(world: World) -> None:
    april = await _get(world, "/v1/reports/ttfv", group_by="segment", cohort="2026-04")
    assert {g: v["reached"] for g, v in _groups(april).items()} == {"smb": 3, "mid_market": 1}
    by_csm = _groups(await _get(world, "/v1/reports/ttfv", group_by="csm"))
    assert (by_csm["Ana"]["reached"], by_csm["Ana"]["open"]) == (7, 1)
    assert (by_csm["Ben"]["reached"], by_csm["Ben"]["open"]) == (2, 1)
    cleo = by_csm["Cleo"]
    assert (cleo["reached"], cleo["open"]) == (0, 2)
    assert cleo["ttfv_days"] == {"p50": None, "p75": None, "p90": None, "max": None}
    ben = await _get(world, "/v1/reports/ttfv", group_by="plan", csm="Ben")
    assert [g["group"] for g in ben["groups"]] == ["mid_market"]


@pytest.mark.parametrize(
    "query",
    [
        {"group_by": "mean"},
        {"cohort": "2026-13"},
        {"cohort": "march"},
        {"segment": "galactic"},
        {"plan": "unknown"},
    ],
)
async def test_bad_report_parameters_are_422(world: World, query: dict[str, str]) -> None:
    response = await world.stack.client.get(
        "/v1/reports/ttfv", params=query, headers=world.stack.auth()
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and next(iter(query)) in error["message"]


async def test_at_risk_lists_exactly_the_tasks_done_onboardings_without_value(
    world: World,
) -> None:
    body = await _get(world, "/v1/reports/at-risk")
    members = {i["onboarding_id"] for i in body["items"]}
    expected = {world.seeded[a].onboarding_id for a in ("kestrel", "lumen")}
    assert members == expected  # gamma's tasks are done too, but it reached first value
    kestrel = next(i for i in body["items"] if i["account_id"] == "kestrel")
    assert kestrel["owner"] == "Cleo"
    missing = [m["milestone_key"] for m in kestrel["missing_outcomes"]]
    assert missing[0] == "first_report_delivered" and kestrel["missing_outcomes"][0]["first_value"]
    assert set(missing) == {
        "first_report_delivered",
        "users_logged_in",
        "records_created",
        "team_adoption",
        "sponsor_confirmation",
    }
    assert kestrel["breach"] == "breach" and kestrel["elapsed_days"] == pytest.approx(25, abs=0.1)


async def test_at_risk_pages_and_filters(world: World) -> None:
    first = await _get(world, "/v1/reports/at-risk", limit=1)
    assert len(first["items"]) == 1 and first["next_cursor"]
    second = await _get(world, "/v1/reports/at-risk", limit=1, cursor=first["next_cursor"])
    assert len(second["items"]) == 1 and second["next_cursor"] is None
    assert first["items"][0]["onboarding_id"] != second["items"][0]["onboarding_id"]
    assert (await _get(world, "/v1/reports/at-risk", csm="Ana"))["items"] == []
    assert (await _get(world, "/v1/reports/at-risk", segment="mid_market"))["items"] == []


async def test_the_lists_filter_by_signature_month_cohort(world: World) -> None:
    march = await _get(world, "/v1/onboardings", cohort="2026-03")
    assert {i["account_id"] for i in march["items"]} == {"acme", "birch", "cedar", "heron"}
    smb_april = await _get(world, "/v1/onboardings", cohort="2026-04", segment="smb")
    assert {i["account_id"] for i in smb_april["items"]} == {"delta", "ember", "fjord"}
    month = world.seeded["kestrel"].signed_at.strftime("%Y-%m")
    at_risk = await _get(world, "/v1/reports/at-risk", cohort=month)
    expected = {
        a for a in ("kestrel", "lumen") if world.seeded[a].signed_at.strftime("%Y-%m") == month
    }
    assert {i["account_id"] for i in at_risk["items"]} == expected
    assert (await _get(world, "/v1/reports/at-risk", cohort="2026-01"))["items"] == []
    for url in ("/v1/onboardings", "/v1/reports/at-risk"):
        response = await world.stack.client.get(
            url, params={"cohort": "2026-13"}, headers=world.stack.auth()
        )
        assert response.status_code == 422 and "cohort" in response.json()["error"]["message"]


async def test_escalations_list_explains_rule_sla_and_firing(world: World) -> None:
    mosaic = world.seeded["mosaic"]
    body = await _get(world, "/v1/escalations", segment="mid_market", level=2)
    mine = [e for e in body["items"] if e["onboarding_id"] == mosaic.onboarding_id]
    late = next(e for e in mine if e["rule_key"] == "success_milestone_late")
    sla = datetime.fromisoformat(late["sla_due_at"])
    assert sla == mosaic.signed_at + timedelta(days=75)  # "missing by day 75"
    assert datetime.fromisoformat(late["fired_at"]) >= sla
    assert late["open"] and late["level"] == 2 and late["action"] == "manager_joins_call"
    assert all(e["level"] == 2 and e["segment"] == "mid_market" for e in body["items"])


async def test_escalations_pages_walk_every_open_one_once(world: World) -> None:
    everything = (await _get(world, "/v1/escalations", limit=200))["items"]
    assert everything and all(e["open"] for e in everything)
    walked: list[tuple[str, str, str]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await _get(world, "/v1/escalations", **params)
        walked += [(e["onboarding_id"], e["rule_key"], e["fired_at"]) for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == [(e["onboarding_id"], e["rule_key"], e["fired_at"]) for e in everything]
    bad = await world.stack.client.get(
        "/v1/escalations", params={"cursor": "nope"}, headers=world.stack.auth()
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cursor"


async def test_detail_explains_the_worked_example(world: World) -> None:
    gamma = world.seeded["gamma"]
    body = await _get(world, f"/v1/onboardings/{gamma.onboarding_id}")
    decomposition = body["decomposition"]
    assert (
        decomposition["handoff_days"],
        decomposition["setup_days"],
        decomposition["activation_days"],
        decomposition["total_days"],
    ) == (4, 14, 14, 32)
    assert body["ttfv"]["days"] == 32 and body["ttfv"]["breach"] == "severe"
    milestones = {m["key"]: m for m in body["milestones"]}
    report = milestones["first_report_delivered"]
    assert report["progress"] == "complete"
    assert any(gamma.message_ids["Report Delivered"] in i for i in report["evidence"]["event_ids"])
    assert datetime.fromisoformat(report["completed_at"]) == gamma.signed_at + timedelta(days=32)
    assert datetime.fromisoformat(report["due_at"]) == gamma.signed_at + timedelta(days=14)
    assert report["on_time"] is False
    connected = milestones["integration_connected"]
    assert any(
        gamma.message_ids["Integration Connected"] in i for i in connected["evidence"]["event_ids"]
    )
    health = body["health"]
    assert sum(c["points"] for c in health["contributions"]) == pytest.approx(health["points"])
    assert sum(c["weight"] for c in health["contributions"]) == health["weights"]
    assert health["score"] == pytest.approx(
        round(health["points"] / health["weights"] * 100, 1), abs=0.05
    )
    weights = {m["key"]: m["weight"] for m in body["milestones"]}
    assert all(c["points"] == c["weight"] * c["value"] for c in health["contributions"])
    assert all(weights[c["milestone_key"]] == c["weight"] for c in health["contributions"])


async def test_detail_explains_escalations_and_the_ladder(world: World) -> None:
    mosaic = world.seeded["mosaic"]
    body = await _get(world, f"/v1/onboardings/{mosaic.onboarding_id}")
    late = next(e for e in body["escalations"] if e["rule_key"] == "success_milestone_late")
    assert datetime.fromisoformat(late["sla_due_at"]) == mosaic.signed_at + timedelta(days=75)
    assert late["open"] and late["reason"] and late["resolution"] is None
    ladder = body["escalation_ladder"]
    open_sla = [e for e in body["escalations"] if e["open"] and e["ladder"] == "sla"]
    assert ladder["state"] in ("open", "raised")
    assert ladder["level"] == max(e["level"] for e in open_sla)
    assert ladder["rule_key"] in {e["rule_key"] for e in open_sla}
    assert body["ttfv"]["breach"] == "severe" and body["ttfv"]["days"] is None
    assert body["ttfv"]["elapsed_days"] == pytest.approx(100, abs=0.1)


# The decomposition and completion rates, by hand (see api_seed.history):
#   handoff (→ kickoff call): gamma 4, kestrel 1, lumen 1 → [1, 1, 4]: p50 1, p75/p90 4
#   setup (kickoff → go-live, the setup stage's exit at the last setup task):
#     gamma Jan 5 → Jan 19 = 14; kestrel, lumen day 1 → day 6 = 5 → [5, 5, 14]
#   activation (go-live → first value): gamma Jan 19 → Feb 2 = 14 (the others have none)
#   onboarding completion (in band / settled): smb 3 5 10 12 in band; 20 30 32 late;
#     kestrel (25 days) and lumen (16) past 14 without value; juniper (5) still inside → 4/9;
#     mid-market 40 in band, 50 late, mosaic (100 days) past 45 → 1/3
#   milestone completion (on time / all; 12 milestones per plan):
#     smb: the first report by day 14 for 3 5 10 12 (4); gamma: success criteria and
#     sponsor by day 5, training by day 10 (3); kestrel and lumen every task by day 7 (7 + 7)
#     → 21/120; mid-market: heron's report by day 45 → 1/36
async def test_decomposition_by_segment_matches_the_hand_computed_figures(world: World) -> None:
    report = await _get(world, "/v1/reports/decomposition", group_by="segment")
    assert report["percentile_method"] == "nearest-rank"
    smb, mid = _groups(report)["smb"], _groups(report)["mid_market"]
    assert smb["onboardings"] == 10
    assert smb["handoff_days"] == {"count": 3, "p50": 1.0, "p75": 4.0, "p90": 4.0}
    assert smb["setup_days"] == {"count": 3, "p50": 5.0, "p75": 14.0, "p90": 14.0}
    assert smb["activation_days"] == {"count": 1, "p50": 14.0, "p75": 14.0, "p90": 14.0}
    assert smb["onboarding_completion"] == {"rate": 0.4444, "numerator": 4, "denominator": 9}
    assert smb["milestone_completion"] == {"rate": 0.175, "numerator": 21, "denominator": 120}
    nothing = {"count": 0, "p50": None, "p75": None, "p90": None}
    assert mid["handoff_days"] == mid["setup_days"] == mid["activation_days"] == nothing
    assert mid["onboarding_completion"] == {"rate": 0.3333, "numerator": 1, "denominator": 3}
    assert mid["milestone_completion"] == {"rate": 0.0278, "numerator": 1, "denominator": 36}
    total = report["total"]
    assert total["group"] == "all" and total["onboardings"] == 13
    assert total["onboarding_completion"] == {"rate": 0.4167, "numerator": 5, "denominator": 12}
    assert total["milestone_completion"]["numerator"] == 22
    assert total["milestone_completion"]["denominator"] == 156


async def test_decomposition_by_csm_and_cohort(world: World) -> None:
    by_csm = _groups(await _get(world, "/v1/reports/decomposition", group_by="csm"))
    assert set(by_csm) == {"Ana", "Ben", "Cleo"}
    # Ana: acme-gamma and juniper: 7 on time of 96; in band 4 of 7 settled (juniper is open)
    assert by_csm["Ana"]["milestone_completion"]["numerator"] == 7
    assert by_csm["Ana"]["milestone_completion"]["denominator"] == 96
    ana_done = by_csm["Ana"]["onboarding_completion"]
    assert (ana_done["numerator"], ana_done["denominator"]) == (4, 7)
    # Cleo: kestrel and lumen, every task on time, no first value, both past the band
    cleo = by_csm["Cleo"]
    assert cleo["handoff_days"] == {"count": 2, "p50": 1.0, "p75": 1.0, "p90": 1.0}
    assert cleo["setup_days"] == {"count": 2, "p50": 5.0, "p75": 5.0, "p90": 5.0}
    assert cleo["milestone_completion"] == {"rate": 0.5833, "numerator": 14, "denominator": 24}
    assert cleo["onboarding_completion"] == {"rate": 0.0, "numerator": 0, "denominator": 2}
    january = await _get(world, "/v1/reports/decomposition", group_by="plan", cohort="2026-01")
    (gamma,) = january["groups"]
    assert gamma["group"] == "smb" and gamma["onboardings"] == 1
    assert gamma["handoff_days"]["p50"] == 4.0 and gamma["setup_days"]["p50"] == 14.0
    assert gamma["activation_days"]["p50"] == 14.0
    assert gamma["milestone_completion"] == {"rate": 0.25, "numerator": 3, "denominator": 12}


async def test_decomposition_refuses_unknown_filters(world: World) -> None:
    response = await world.stack.client.get(
        "/v1/reports/decomposition",
        params={"group_by": "region"},
        headers=world.stack.auth(),
    )
    assert response.status_code == 422
    response = await world.stack.client.get(
        "/v1/reports/decomposition", params={"segment": "nope"}, headers=world.stack.auth()
    )
    assert response.status_code == 422 and "unknown segment" in response.text


async def test_an_escalation_in_the_list_has_the_details_shape(world: World) -> None:
    """One escalation shape: the list item is the detail's escalation plus whose it is."""
    items = (await _get(world, "/v1/escalations", include_resolved="true", limit=200))["items"]
    assert any(e["raised_from"] is not None for e in items)  # a ladder that climbed
    assert any(e["ladder"] == "sla" for e in items) and any(e["ladder"] is None for e in items)
    for item in items[:25]:
        detail = await _get(world, f"/v1/onboardings/{item['onboarding_id']}")
        same = next(
            e
            for e in detail["escalations"]
            if (e["rule_key"], e["fired_at"]) == (item["rule_key"], item["fired_at"])
        )
        assert {key: item[key] for key in same} == same
        assert set(item) - set(same) == {"onboarding_id", "account_id", "segment", "csm"}
