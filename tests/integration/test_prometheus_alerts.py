"""A real Prometheus (Debian's binary) scrapes a running ``firstvalue api`` on PostgreSQL
and fires FirstvalueTTFVBreach for a breached onboarding; the Grafana dashboard's queries
run on it.

The rules are deploy/prometheus/alerts.yml as shipped except each alert's ``for``, shortened
to 2 s (the shipped 5 minutes are checked by ``promtool test rules`` in
test_prometheus_rules.py); scrapes and evaluations run every second.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.domain.facts import OnboardingRegistered
from shared.plan_files import default_plans
from shared.projection.manual import record_fact
from shared.storage import create_engine, create_sessionmaker, migrate

from .conftest import fresh_postgres_database, postgres_base_url
from .prometheus import ALERTS, binary, free_port, prometheus_server, rules_with_for

FIRING_DEADLINE = 60.0
API_DEADLINE = 60.0
FIRSTVALUE = Path(sys.executable).parent / "firstvalue"
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy/grafana/firstvalue-overview.json"


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    async with fresh_postgres_database(postgres_base_url()) as url:
        await migrate(url)
        yield url


async def seed(url: str) -> None:
    """acme (SMB, band 7-14 days) signed 20 days ago without first value: a breach; globex
    signed yesterday: none. Registered through the manual-facts path the API uses."""
    now = datetime.now(UTC)
    engine = create_engine(url, application_name="firstvalue-tests")
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            for account, days in (("acme", 20), ("globex", 1)):
                fact = OnboardingRegistered(
                    f"registered:{account}", f"onb-{account}", account, "smb",
                    now - timedelta(days=days),
                )  # fmt: skip
                await record_fact(session, default_plans(), fact, now)
    finally:
        await engine.dispose()


@contextmanager
def api_process(url: str, folder: Path) -> Iterator[str]:
    """``firstvalue api`` (the CLI) on a free loopback port; yields host:port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIRSTVALUE_")}
    env |= {
        "FIRSTVALUE_DATABASE_URL": url,
        "FIRSTVALUE_API_HOST": "127.0.0.1",
        "FIRSTVALUE_API_PORT": str(port),
        "FIRSTVALUE_ALLOW_NON_DURABLE_DATABASE": "true",  # the test server is disposable
        "FIRSTVALUE_INGEST_AUTH": "open",  # no Kafka: the API serves no HTTP ingest anyway
    }
    log = (folder / "api.log").open("w")
    process = subprocess.Popen(
        [str(FIRSTVALUE), "api"], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
    )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


async def poll(deadline: float, what: str, check: Any) -> Any:
    """Await ``check()`` until it returns something truthy, or fail after ``deadline`` s."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while loop.time() < end:
        try:
            found = await check()
        except httpx.HTTPError:
            found = None
        if found:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} not seen within {deadline:.0f} s")


async def test_ttfv_breach_alert_fires_for_a_breached_onboarding(
    database_url: str, tmp_path: Path
) -> None:
    binary("prometheus")
    await seed(database_url)
    rules = rules_with_for(ALERTS, "2s")
    with (
        api_process(database_url, tmp_path) as target,
        prometheus_server(tmp_path, {"firstvalue-api": target}, rules) as prometheus,
    ):
        async with httpx.AsyncClient(timeout=5.0) as client:

            async def ready() -> bool:
                return (await client.get(f"http://{target}/readyz")).status_code == 200

            await poll(API_DEADLINE, "the API answering /readyz", ready)

            async def firing() -> dict[str, Any] | None:
                body = (await client.get(f"{prometheus}/api/v1/alerts")).json()
                for alert in body["data"]["alerts"]:
                    labels = alert["labels"]
                    if labels["alertname"] == "FirstvalueTTFVBreach" and alert["state"] == "firing":
                        return dict(alert)
                return None

            alert = await poll(FIRING_DEADLINE, "FirstvalueTTFVBreach firing", firing)
            rules_now = (await client.get(f"{prometheus}/api/v1/rules")).json()
            answers = {
                expr: (
                    await client.get(f"{prometheus}/api/v1/query", params={"query": expr})
                ).json()
                for expr in dashboard_queries()
            }

    assert alert["labels"] == {
        "alertname": "FirstvalueTTFVBreach",
        "segment": "smb",
        "severity": "warning",
        "team": "customer-success",
    }
    assert alert["annotations"]["summary"] == (
        "1 smb onboarding(s) past the TTFV target without first value"
    )
    assert "/v1/onboardings?segment=smb&breach=breach,severe" in alert["annotations"]["runbook"]
    states = {
        rule["name"]: rule["state"]
        for group in rules_now["data"]["groups"]
        for rule in group["rules"]
    }
    assert states["FirstvalueTTFVSevereBreach"] == "inactive"  # 20 days is not 2x 14
    assert states["FirstvalueServiceDown"] == "inactive"  # the scrape works
    # Every dashboard query is valid PromQL for this Prometheus; the database-derived ones
    # already have data from the API.
    assert {expr: a["status"] for expr, a in answers.items() if a["status"] != "success"} == {}
    stage_panel = next(e for e in answers if e.startswith("sum by (stage)"))
    assert answers[stage_panel]["data"]["result"][0]["metric"] == {"stage": "kickoff"}
    assert answers[stage_panel]["data"]["result"][0]["value"][1] == "2"


def dashboard_queries() -> list[str]:
    """The Grafana dashboard's PromQL, with its variables set (all segments, 1m rates)."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        target["expr"].replace("$__rate_interval", "1m").replace("$segment", ".*")
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]
