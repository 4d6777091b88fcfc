"""``/metrics`` of the API on real databases: gauges read from the database equal the
hand-computed figures of a seeded history (and agree between API instances), ingest and
timer instruments count what the real consumers and timers did, and the exposition passes
``promtool check metrics``."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from prometheus_client import REGISTRY
from prometheus_client.utils import floatToGoString
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.app import create_app
from services.milestones.timers import fire_due
from shared.bus import topics
from shared.bus.memory import MemoryBus
from shared.config import load_settings
from shared.domain.facts import OnboardingRegistered
from shared.plan_files import default_plans
from shared.projection.projector import project_many
from shared.storage.onboardings import OnboardingRepository
from shared.storage.projections import ProjectionFilter, ProjectionRepository
from shared.storage.webhook_deliveries import WebhookDeliveryRepository

from .pipeline import drained, running_pipeline
from .prometheus import Samples, promtool, samples, value

PLANS = default_plans()
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DAY = 86_400.0


def track(message_id: str, account: str, event: str, at: datetime, **props: Any) -> bytes:
    return orjson.dumps(
        {
            "_source": "segment",
            "type": "track",
            "messageId": message_id,
            "userId": f"{account}-user",
            "event": event,
            "properties": {"account_id": account, **props},
            "timestamp": at.isoformat(),
        }
    )


def history() -> list[bytes]:
    """SMB's TTFV band is 7-14 days (breach over 14, severe from 28)."""

    def signed(account: str, plan: str, days_ago: float) -> bytes:
        at = NOW - timedelta(days=days_ago)
        return track(f"contract-{account}", account, "Contract Signed", at, plan=plan)

    def report(account: str, days_ago: float) -> bytes:
        at = NOW - timedelta(days=days_ago)
        return track(f"report-{account}", account, "Report Delivered", at)

    return [
        signed("acme", "smb", 20),  # open, 20 days: breach
        signed("globex", "smb", 40),
        report("globex", 35),  # first value on day 5: no breach
        signed("initech", "smb", 40),
        report("initech", 20),  # first value on day 20: breach, reached
        signed("umbrella", "mid_market", 2),
        orjson.dumps({"_source": "segment", "type": "track", "event": "No User"}),  # DLQ
    ]


def total(found: Samples, name: str, **labels: str) -> float:
    """Sum over every series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == name and want <= ls)


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@asynccontextmanager
async def api(
    sessions: async_sessionmaker[AsyncSession], bus: MemoryBus | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """The API as the embedded runtime builds it: sharing the pipeline's in-memory bus."""
    app = create_app(load_settings(), plans=PLANS, sessionmaker=sessions, bus=bus or MemoryBus())
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://firstvalue.test") as client,
    ):
        yield client


async def seed(sessions: async_sessionmaker[AsyncSession]) -> MemoryBus:
    bus = MemoryBus()
    async with running_pipeline(bus, sessions, PLANS, NOW):
        await bus.publish_many(topics.EVENTS, [(None, record) for record in history()])
        await drained(bus)
    return bus


async def test_database_gauges_equal_the_hand_computed_figures_on_every_instance(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    before = {
        "valid": counter("firstvalue_ingest_events_total", source="segment", outcome="valid"),
        "rejected": counter("firstvalue_ingest_events_total", source="segment", outcome="rejected"),
        "dead": counter("firstvalue_ingest_dead_letters_total", reason="missing_user"),
        "accepted": counter("firstvalue_ingest_stored_events_total", outcome="accepted"),
        "registered": counter("firstvalue_ingest_onboardings_registered_total"),
    }
    bus = await seed(sessions)
    async with api(sessions, bus) as first, api(sessions) as second:
        response = await first.get("/metrics")
        other = samples((await second.get("/metrics")).text)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = samples(response.text)

    assert total(found, "firstvalue_onboardings", segment="smb") == 3
    assert (
        value(
            found,
            "firstvalue_onboardings",
            segment="mid_market",
            stage="kickoff",
            status="onboarding",
        )
        == 1
    )
    breach = "firstvalue_ttfv_breach_onboardings"
    expected_breaches = {
        ("smb", "breach", "open"): 1,  # acme
        ("smb", "breach", "reached"): 1,  # initech
        ("smb", "severe", "open"): 0,
        ("smb", "severe", "reached"): 0,
        ("mid_market", "breach", "open"): 0,
    }
    for (segment, severity, first_value), count in expected_breaches.items():
        labels = {"segment": segment, "severity": severity, "first_value": first_value}
        assert (breach, frozenset(labels.items())) in found  # zeros are reported too
        assert value(found, breach, **labels) == count, labels

    # TTFVs reached: 5 and 20 days.
    ttfv = {"segment": "smb"}
    assert value(found, "firstvalue_ttfv_seconds_count", **ttfv) == 2
    assert value(found, "firstvalue_ttfv_seconds_sum", **ttfv) == 25 * DAY
    for days, count in ((3, 0), (7, 1), (14, 1), (21, 2), (365, 2)):
        assert (
            value(found, "firstvalue_ttfv_seconds_bucket", le=floatToGoString(days * DAY), **ttfv)
            == count
        )
    assert value(found, "firstvalue_ttfv_seconds_bucket", le="+Inf", **ttfv) == 2

    async with sessions() as session:
        page = await ProjectionRepository(session).escalations(open_only=True, limit=1000)
    levels = Counter(str(row.level) for row in page.items)
    assert levels  # acme is past its day-14 technical-completion deadline
    for level, count in levels.items():
        assert value(found, "firstvalue_open_escalations", level=level) == count

    # Embedded (in-memory bus shared with the pipeline): the API reports lag and the DLQ.
    for topic, group in ((topics.EVENTS, "ingest"), (topics.FACTS, "milestones")):
        lag = {"topic": topic, "group": group}
        assert ("firstvalue_consumer_lag_messages", frozenset(lag.items())) in found
        assert value(found, "firstvalue_consumer_lag_messages", **lag) == 0  # drained
    assert value(found, "firstvalue_dlq_messages", topic=topics.EVENTS_DLQ) == 1

    database_families = ("firstvalue_onboardings", breach, "firstvalue_open_escalations")
    for key, number in found.items():
        if key[0].startswith(database_families):
            assert other.get(key) == number, key  # a second API instance says the same

    # The real consumers counted the history (counters are process-wide: deltas).
    assert (
        counter("firstvalue_ingest_events_total", source="segment", outcome="valid")
        - before["valid"]
        == 6
    )
    assert (
        counter("firstvalue_ingest_events_total", source="segment", outcome="rejected")
        - before["rejected"]
        == 1
    )
    assert (
        counter("firstvalue_ingest_dead_letters_total", reason="missing_user") - before["dead"] == 1
    )
    assert (
        counter("firstvalue_ingest_stored_events_total", outcome="accepted") - before["accepted"]
        == 6
    )
    assert counter("firstvalue_ingest_onboardings_registered_total") - before["registered"] == 4

    checked = promtool("check", "metrics", stdin=response.content)
    assert checked.returncode == 0, checked.stdout + checked.stderr


async def test_api_latency_is_recorded_under_the_route_template(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    labels = {"method": "GET", "route": "/healthz"}
    before = counter("firstvalue_http_request_duration_seconds_count", **labels)
    async with api(sessions) as client:
        for _ in range(3):
            assert (await client.get("/healthz")).status_code == 200
        found = samples((await client.get("/metrics")).text)
    assert value(found, "firstvalue_http_request_duration_seconds_count", **labels) == before + 3
    assert value(found, "firstvalue_http_requests_total", status="200", **labels) >= 3


async def test_timer_lateness_is_now_minus_each_due_moment(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    bus = await seed(sessions)
    fire_at = NOW + timedelta(days=3)
    async with sessions() as session:
        summaries = await ProjectionRepository(session).all(ProjectionFilter())
    late = [
        (fire_at - s.next_due_at).total_seconds()
        for s in summaries
        if s.next_due_at is not None and s.next_due_at <= fire_at
    ]
    assert late  # something falls due in three days (escalation days, silence)
    count = counter("firstvalue_timer_lateness_seconds_count")
    total_seconds = counter("firstvalue_timer_lateness_seconds_sum")
    within_a_day = counter("firstvalue_timer_lateness_seconds_bucket", le="86400.0")

    assert await fire_due(sessions, bus, PLANS, fire_at) == len(late)

    assert counter("firstvalue_timer_lateness_seconds_count") - count == len(late)
    assert abs(counter("firstvalue_timer_lateness_seconds_sum") - total_seconds - sum(late)) < 1e-3
    assert counter("firstvalue_timer_lateness_seconds_bucket", le="86400.0") - within_a_day == sum(
        1 for seconds in late if seconds <= 86_400
    )


async def test_webhook_deliveries_are_counted_by_status_from_the_database(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        deliveries = WebhookDeliveryRepository(session)
        for n in range(4):
            await deliveries.enqueue(topics.TRANSITIONS, f"t{n}", "acme", {"n": n}, NOW)
        claimed = await deliveries.claim_due(NOW, 3, timedelta(minutes=1))
        await deliveries.delivered(claimed[0].id, 200, NOW)
        await deliveries.delivered(claimed[1].id, 204, NOW)
        await deliveries.failed(claimed[2].id, 410, "gone")
    async with api(sessions) as client:
        found = samples((await client.get("/metrics")).text)
    for status, count in (("pending", 1), ("delivered", 2), ("failed", 1)):
        assert value(found, "firstvalue_webhook_deliveries", status=status) == count, status


async def test_an_onboarding_that_cannot_be_projected_is_counted_and_shown_on_readyz(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    gone = OnboardingRegistered("reg-gone", "onb-gone", "acct-gone", "retired_plan", NOW)
    async with sessions() as session, session.begin():
        await OnboardingRepository(session).register(gone, NOW)
    before = {
        reason: counter("firstvalue_unprojectable_onboardings_total", reason=reason)
        for reason in ("unknown_plan", "unknown_onboarding")
    }
    async with sessions() as session, session.begin():
        assert await project_many(session, PLANS, ["onb-gone", "onb-never"], NOW) == []
    for reason in ("unknown_plan", "unknown_onboarding"):
        after = counter("firstvalue_unprojectable_onboardings_total", reason=reason)
        assert after == before[reason] + 1
    async with api(sessions) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["unprojectable_onboardings"] == 1
