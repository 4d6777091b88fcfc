"""``/metrics`` of ``firstvalue ingest`` and ``firstvalue milestones`` (their own small
endpoint) on a real broker and PostgreSQL: consumer lag and the DLQ size come from Kafka's
offsets, ingest outcomes from the consumer, and both expositions pass promtool."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY

from firstvalue import standalone
from shared.bus import topics
from shared.bus.kafka import KafkaBus
from shared.config import Settings, load_settings
from shared.observability.bus import BusMetrics
from shared.observability.server import CONTENT_TYPE, metrics_server
from shared.storage import migrate

from .conftest import fresh_postgres_database, postgres_base_url
from .kafka.conftest import SESSION_TIMEOUT_MS, kafka_bootstrap_servers
from .prometheus import free_port, promtool, samples, value

DEADLINE = 60.0
NOW = datetime.now(UTC)


def record(message_id: str, event: str, **fields: object) -> bytes:
    return orjson.dumps(
        {
            "_source": "segment",
            "type": "track",
            "messageId": message_id,
            "event": event,
            "timestamp": (NOW - timedelta(days=3)).isoformat(),
            **fields,
        }
    )


RECORDS = [
    record("c1", "Contract Signed", userId="bot", properties={"account_id": "acme", "plan": "smb"}),
    record("k1", "Kickoff Held", userId="u1", properties={"account_id": "acme"}),
    record("bad", "No User"),  # dead-lettered: missing_user
]


@pytest.fixture
async def settings() -> AsyncIterator[Settings]:
    servers = kafka_bootstrap_servers()
    async with fresh_postgres_database(postgres_base_url()) as url:
        await migrate(url)
        yield load_settings(
            database_url=url,
            kafka_bootstrap_servers=servers,
            metrics_host="127.0.0.1",
            ingest_metrics_port=free_port(),
            milestones_metrics_port=free_port(),
        )


@contextlib.asynccontextmanager
async def service(
    run: Callable[..., Coroutine[Any, Any, None]], settings: Settings, prefix: str, name: str
) -> AsyncIterator[None]:
    """A pipeline service's own code path (``firstvalue.standalone``) as a task, on a bus
    whose topics carry this test's prefix; cancelled (as by SIGTERM) on exit."""
    bus = KafkaBus(
        settings.kafka_bootstrap_servers or "",
        client_id=f"firstvalue-{name}-test",
        topic_prefix=prefix,
        session_timeout_ms=SESSION_TIMEOUT_MS,
    )
    task = asyncio.create_task(run(settings, bus=bus))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def scrape_until(port: int, what: str, done: Callable[[dict], bool]) -> bytes:
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    async with httpx.AsyncClient(timeout=5.0) as client:
        while loop.time() < end:
            try:
                response = await client.get(f"http://127.0.0.1:{port}/metrics")
            except httpx.HTTPError:
                response = None
            ok = response is not None and response.status_code == 200
            if ok and response is not None and done(samples(response.text)):
                return response.content
            await asyncio.sleep(0.3)
    raise AssertionError(f"{what} not seen on :{port}/metrics within {DEADLINE:.0f} s")


async def test_ingest_and_milestones_serve_lag_dlq_and_outcomes(settings: Settings) -> None:
    prefix = f"t{uuid.uuid4().hex[:12]}."
    producer = KafkaBus(settings.kafka_bootstrap_servers or "", topic_prefix=prefix)
    await producer.start()
    try:
        await producer.publish_many(topics.EVENTS, [("acme", r) for r in RECORDS])
        # Before any consumer: the lag the services will report is Kafka's, 3 records.
        waiting = BusMetrics(producer, [(topics.EVENTS, "ingest")], dlq=True)
        await waiting.refresh()
        lag = {"topic": topics.EVENTS, "group": "ingest"}
        assert REGISTRY.get_sample_value("firstvalue_consumer_lag_messages", lag) == 3
        dlq = {"topic": topics.EVENTS_DLQ}
        assert REGISTRY.get_sample_value("firstvalue_dlq_messages", dlq) == 0
        valid = {"source": "segment", "outcome": "valid"}
        before = REGISTRY.get_sample_value("firstvalue_ingest_events_total", valid) or 0.0

        async with (
            service(standalone.ingest, settings, prefix, "ingest"),
            service(standalone.milestones, settings, prefix, "milestones"),
        ):
            ingest = await scrape_until(
                settings.ingest_metrics_port,
                "analytics.events consumed, one dead letter",
                lambda found: (
                    value(found, "firstvalue_consumer_lag_messages", **lag) == 0
                    and value(found, "firstvalue_dlq_messages", **dlq) == 1
                    and value(found, "firstvalue_ingest_batches_total") >= 1
                ),
            )
            facts = {"topic": topics.FACTS, "group": "milestones"}
            milestones = await scrape_until(
                settings.milestones_metrics_port,
                "onboarding.facts consumed",
                lambda found: (
                    ("firstvalue_consumer_lag_messages", frozenset(facts.items())) in found
                    and value(found, "firstvalue_consumer_lag_messages", **facts) == 0
                ),
            )
    finally:
        await producer.stop()

    found = samples(ingest.decode())
    assert value(found, "firstvalue_ingest_events_total", **valid) - before == 2
    assert value(found, "firstvalue_ingest_dead_letters_total", reason="missing_user") >= 1
    for body in (ingest, milestones):
        checked = promtool("check", "metrics", stdin=body)
        assert checked.returncode == 0, checked.stdout + checked.stderr


async def test_the_endpoint_refreshes_per_scrape_and_survives_a_taken_port() -> None:
    scrapes: list[int] = []

    async def refresh() -> None:
        scrapes.append(len(scrapes))

    async with metrics_server("127.0.0.1", 0, [refresh]) as port:
        assert port is not None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(2):
                response = await client.get("/metrics?x=1")
                assert response.status_code == 200
                assert response.headers["content-type"] == CONTENT_TYPE
                assert "firstvalue_timer_lateness_seconds_count" in response.text
            assert (await client.get("/healthz")).text == "ok\n"
            assert (await client.get("/other")).status_code == 404
            assert (await client.post("/metrics")).status_code == 405
        assert scrapes == [0, 1]  # once per /metrics scrape, not for the other paths
        async with metrics_server("127.0.0.1", port) as taken:
            assert taken is None  # logged; the caller's work goes on
