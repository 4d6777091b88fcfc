"""The console in a real headless Chromium over the demo history plus one story onboarding:
sign in, the portfolio's charts and figures (equal to the REST reports'), the queue's
filters, an onboarding that looks done but isn't until its customer reaches value and its
sponsor confirms through the form, a read key that sees no forms, forged posts refused, the
customer's share page, and not one request leaving the server.

Screenshots for the README are taken on the way (``FIRSTVALUE_SCREENSHOTS=docs/screenshots``
writes them there; otherwise to a temporary folder).
"""

from __future__ import annotations

import asyncio
import base64
import html
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from firstvalue import demo_data
from firstvalue.demo_data import DemoHistory
from firstvalue.embedded import load_history
from shared.storage.api_keys import ApiKeyRepository

from .browser import Browser, chromium, screenshot_dir
from .live_server import LiveServer, live_server

pytestmark = pytest.mark.e2e

DAY = timedelta(days=1)
WRITE_KEY = "console-e2e-segment-key"  # the Segment write key the HTTP ingest accepts here
STORY = "northwind"
STORY_CSM = "Dana Storyteller"
TASKS = (
    ("Kickoff Call Completed", {}),
    ("Success Criteria Agreed", {}),
    ("Executive Sponsor Named", {}),
    ("Integration Connected", {}),
    ("Data Sync Completed", {"status": "success"}),
    ("Workflow Run", {"environment": "production"}),
    ("Training Completed", {}),
)


@dataclass
class World:
    server: LiveServer
    write_key: str
    read_key: str
    story_id: str
    shots: Path

    def rest(self, path: str, **params: Any) -> Any:
        response = httpx.get(
            f"{self.server.url}{path}",
            params=params,
            headers={"Authorization": f"Bearer {self.read_key}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return response.json()


def _on_loop(server: LiveServer, work: Any, timeout: float = 120) -> Any:
    return asyncio.run_coroutine_threadsafe(work, server.loop).result(timeout)


async def _keys(server: LiveServer) -> tuple[str, str]:
    async with server.pipeline.sessionmaker() as session, session.begin():
        keys = ApiKeyRepository(session)
        now = datetime.now(UTC)
        return await keys.create("csm-manager", ("read", "write"), now), await keys.create(
            "viewer", ("read",), now
        )


def _track(user: str, name: str, at: datetime, props: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": name,
        "properties": {**props, "account_id": STORY},
        "context": {"groupId": STORY},
        "messageId": str(uuid.uuid4()),
        "timestamp": at.isoformat(timespec="milliseconds"),
    }


def _story_messages(signed: datetime) -> list[dict[str, Any]]:
    """Every task done (days 1–7), seven users logged in and five created records (days
    8–9): all done but the report that is the customer's first value, and the sponsor's
    written confirmation."""
    messages = [
        _track(f"{STORY}-admin", name, signed + (1 + n) * DAY, props)
        for n, (name, props) in enumerate(TASKS)
    ]
    for n in range(7):
        messages.append(_track(f"{STORY}-user{n}", "Logged In", signed + 8 * DAY, {}))
    for n in range(5):
        messages.append(_track(f"{STORY}-user{n}", "Record Created", signed + 9 * DAY, {}))
    return messages


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("console")
    with live_server(
        "sqlite", directory, segment_write_keys=[WRITE_KEY], timer_interval_seconds=3600
    ) as server:
        write_key, read_key = _on_loop(server, _keys(server))
        now = datetime.now(UTC)
        history = demo_data.generate(server.pipeline.plans, now)
        _on_loop(server, load_history(server.pipeline, history))
        signed = now - 20 * DAY
        registered = httpx.post(
            f"{server.url}/v1/onboardings",
            json={
                "account_id": STORY,
                "plan": "smb",
                "signed_at": signed.isoformat(),
                "csm": STORY_CSM,
                "account_name": "Northwind Goods",
            },
            headers={"Authorization": f"Bearer {write_key}"},
            timeout=30,
        )
        assert registered.status_code == 201, registered.text
        story_id = registered.json()["onboarding"]["onboarding_id"]
        _on_loop(
            server, load_history(server.pipeline, DemoHistory(now, _story_messages(signed), [], []))
        )
        yield World(server, write_key, read_key, story_id, screenshot_dir(directory / "shots"))


@pytest.fixture(scope="module")
def browser(world: World) -> Iterator[Browser]:
    with chromium() as b:
        yield b
        # Every request the browser made, over every test of the module, went to the server.
        assert b.requested and not b.outside(world.server.url), b.outside(world.server.url)


def _sign_in(browser: Browser, world: World, key: str) -> None:
    browser.driver.delete_all_cookies()
    browser.open(f"{world.server.url}/login")
    browser.driver.find_element(By.ID, "key").send_keys(key)
    browser.driver.find_element(By.ID, "sign-in").click()
    browser.wait_for(lambda: browser.driver.find_element(By.ID, "who"), "signed in")
    browser.drain()


def _figure(card: Any, name: str) -> str:
    return str(card.find_element(By.CSS_SELECTOR, f'[data-figure="{name}"]').text)


def _days(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def test_sign_in_sets_a_strict_http_only_session(browser: Browser, world: World) -> None:
    browser.open(f"{world.server.url}/")
    assert browser.driver.current_url.endswith("/login")  # no session: the sign-in page
    browser.driver.find_element(By.ID, "key").send_keys("fv_not_a_key")
    browser.driver.find_element(By.ID, "sign-in").click()
    error = browser.wait_for(lambda: browser.driver.find_element(By.ID, "error"), "refused")
    assert "Unknown API key" in error.text
    _sign_in(browser, world, world.write_key)
    cookie = browser.driver.get_cookie("fv_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert "read + write" in browser.driver.find_element(By.ID, "who").text
    # sign-out ends the session on the server too: the old cookie opens nothing any more
    browser.driver.find_element(By.CSS_SELECTOR, "form.signout button").click()
    browser.wait_for(lambda: browser.driver.current_url.endswith("/login"), "signed out")
    assert browser.driver.get_cookie("fv_session") is None
    stale = httpx.get(f"{world.server.url}/", cookies={"fv_session": cookie["value"]})
    assert stale.status_code == 303 and stale.headers["location"] == "/login"


def test_portfolio_charts_render_the_rest_reports_figures(browser: Browser, world: World) -> None:
    _sign_in(browser, world, world.write_key)
    for group_by in ("segment", "csm"):
        browser.open(f"{world.server.url}/?group_by={group_by}")
        ttfv = world.rest("/v1/reports/ttfv", group_by=group_by)
        parts = {
            g["group"]: g
            for g in world.rest("/v1/reports/decomposition", group_by=group_by)["groups"]
        }
        cards = browser.driver.find_elements(By.CSS_SELECTOR, "section.group")
        assert [c.get_attribute("data-group") for c in cards] == [
            g["group"] for g in ttfv["groups"]
        ]
        for card, group in zip(cards, ttfv["groups"], strict=True):
            assert _figure(card, "onboardings") == str(group["onboardings"])
            assert _figure(card, "reached") == str(group["reached"])
            for p in ("p50", "p75", "p90"):
                assert _figure(card, p) == _days(group["ttfv_days"][p])
            assert _figure(card, "breach") == str(group["breaches"]["breach"])
            assert _figure(card, "severe") == str(group["breaches"]["severe"])
            split = parts[group["group"]]
            assert _figure(card, "onboarding_completion") == _percent(
                split["onboarding_completion"]["rate"]
            )
            assert _figure(card, "milestone_completion") == _percent(
                split["milestone_completion"]["rate"]
            )
            assert _figure(card, "setup_p50") == _days(split["setup_days"]["p50"])
            bars = card.find_elements(By.CSS_SELECTOR, 'svg[data-chart="histogram"] g.bar')
            counts = [int(float(b.get_attribute("data-value"))) for b in bars]
            assert counts == [b["count"] for b in group["histogram"]]
            if any(counts):  # the chart really rendered: its bars have height on screen
                drawn = card.find_elements(By.CSS_SELECTOR, 'svg[data-chart="histogram"] rect')
                heights = [
                    browser.driver.execute_script(
                        "return arguments[0].getBoundingClientRect().height", r
                    )
                    for r in drawn
                ]
                assert max(heights) > 10
        total = browser.driver.find_element(By.ID, "total")
        assert _figure(total, "p50") == _days(ttfv["total"]["ttfv_days"]["p50"])
        if group_by == "segment":
            browser.screenshot(world.shots / "portfolio.png", height=1500)


def test_the_queue_filters_sorts_and_pages(browser: Browser, world: World) -> None:
    _sign_in(browser, world, world.write_key)
    browser.open(f"{world.server.url}/queue")
    Select(browser.driver.find_element(By.ID, "f-segment")).select_by_visible_text("smb")
    Select(browser.driver.find_element(By.ID, "f-tier")).select_by_visible_text("critical")
    browser.driver.find_element(By.ID, "apply").click()
    browser.wait_for(lambda: "segment=smb" in browser.driver.current_url, "the filtered queue")
    rows = browser.driver.find_elements(By.CSS_SELECTOR, "#queue tbody tr[data-onboarding]")
    assert rows
    assert {(r.get_attribute("data-segment"), r.get_attribute("data-tier")) for r in rows} == {
        ("smb", "critical")
    }
    expected, cursor = 0, None
    while True:  # the REST list's count of the same filter
        page = world.rest(
            "/v1/onboardings",
            segment="smb",
            tier="critical",
            limit=200,
            **({"cursor": cursor} if cursor else {}),
        )
        expected += len(page["items"])
        if not (cursor := page["next_cursor"]):
            break
    assert browser.driver.find_element(By.ID, "count").text.startswith(f"{expected} onboardings")
    browser.driver.find_element(By.ID, "sort-health_score").click()  # highest first
    browser.wait_for(lambda: "sort=health_score" in browser.driver.current_url, "sorted")
    scores = [
        float(c.text.split()[0])
        for c in browser.driver.find_elements(By.CSS_SELECTOR, "#queue tbody tr td:nth-child(6)")
    ]
    assert scores == sorted(scores, reverse=True)
    browser.drain()
    browser.open(f"{world.server.url}/queue")
    browser.screenshot(world.shots / "queue.png", height=1100)
    if world.rest("/v1/onboardings", limit=26)["next_cursor"]:
        first = {
            r.get_attribute("data-onboarding")
            for r in browser.driver.find_elements(By.CSS_SELECTOR, "#queue tbody tr")
        }
        browser.driver.find_element(By.ID, "next").click()
        browser.wait_for(lambda: "page=2" in browser.driver.current_url, "page 2")
        second = {
            r.get_attribute("data-onboarding")
            for r in browser.driver.find_elements(By.CSS_SELECTOR, "#queue tbody tr")
        }
        assert second and not first & second


def _milestone(browser: Browser, key: str) -> Any:
    return browser.driver.find_element(By.CSS_SELECTOR, f'#milestones tr[data-milestone="{key}"]')


def test_looks_done_until_value_and_the_sponsors_confirmation(
    browser: Browser, world: World
) -> None:
    _sign_in(browser, world, world.write_key)
    browser.open(f"{world.server.url}/at-risk")
    row = browser.driver.find_element(
        By.CSS_SELECTOR, f'#at-risk tr[data-onboarding="{world.story_id}"]'
    )
    missing = [
        li.get_attribute("data-milestone") for li in row.find_elements(By.CSS_SELECTOR, "li")
    ]
    assert missing[0] == "first_report_delivered" and "sponsor_confirmation" in missing
    assert STORY_CSM in row.text
    browser.screenshot(world.shots / "looks-done.png", height=1000)
    row.find_element(By.LINK_TEXT, "Northwind Goods").click()
    browser.wait_for(lambda: browser.driver.find_element(By.ID, "summary"), "the onboarding")
    assert "Looks done, isn't" in browser.driver.find_element(By.ID, "summary").text
    assert (
        _milestone(browser, "first_report_delivered").get_attribute("data-progress")
        == "not_started"
    )
    assert browser.driver.find_elements(By.CSS_SELECTOR, 'svg[data-chart="timeline"] circle.done')
    # The customer delivers its first report: a Segment batch through the HTTP ingest.
    sent = httpx.post(
        f"{world.server.url}/v1/batch",
        json={"batch": [_track(f"{STORY}-user0", "Report Delivered", datetime.now(UTC), {})]},
        headers={"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()},
        timeout=30,
    )
    assert sent.status_code == 200, sent.text

    def reached() -> bool:
        browser.driver.refresh()
        return (
            _milestone(browser, "first_report_delivered").get_attribute("data-progress")
            == "complete"
        )

    browser.wait_for(reached, "first value reached after the ingest")
    assert browser.driver.find_element(By.ID, "onboarded").text.startswith("No")
    chosen = Select(browser.driver.find_element(By.ID, "e-milestone")).first_selected_option
    assert chosen.get_attribute("value") == "sponsor_confirmation"
    browser.driver.find_element(By.ID, "e-confirmed-by").send_keys("Rita Sponsor (VP Ops)")
    Select(browser.driver.find_element(By.ID, "e-channel")).select_by_visible_text("email")
    browser.driver.find_element(By.ID, "e-quote").send_keys("Our weekly report now runs itself.")
    browser.driver.find_element(By.ID, "e-submit").click()
    browser.wait_for(lambda: browser.driver.find_element(By.ID, "notice"), "the form's notice")
    assert browser.driver.find_element(By.ID, "onboarded").text.startswith("Yes")
    evidence = _milestone(browser, "sponsor_confirmation").text
    assert "Rita Sponsor (VP Ops)" in evidence and "weekly report" in evidence
    rest = world.rest(f"/v1/onboardings/{world.story_id}")
    assert rest["successfully_onboarded"]["value"] == "Yes"
    browser.screenshot(world.shots / "onboarding.png", height=2600)


def test_a_read_key_sees_no_forms_and_forged_posts_are_refused(
    browser: Browser, world: World
) -> None:
    _sign_in(browser, world, world.read_key)
    browser.open(f"{world.server.url}/onboardings/{world.story_id}")
    assert "read only" in browser.driver.find_element(By.ID, "who").text
    posts = browser.driver.find_elements(By.CSS_SELECTOR, "main form[method=post]")
    assert posts == [] and not browser.driver.find_elements(By.ID, "forms")
    read_cookie = browser.driver.get_cookie("fv_session")["value"]
    _sign_in(browser, world, world.write_key)
    write_cookie = browser.driver.get_cookie("fv_session")["value"]
    url = f"{world.server.url}/onboardings/{world.story_id}/pause"
    before = world.rest(f"/v1/onboardings/{world.story_id}")["pause"]
    for cookie, csrf, reason in (
        (write_cookie, None, "no CSRF token"),
        (write_cookie, "forged-token", "a wrong CSRF token"),
        (read_cookie, None, "a read session"),
    ):
        form = {"reason": "forged"} | ({"csrf": csrf} if csrf else {})
        refused = httpx.post(url, data=form, cookies={"fv_session": cookie}, timeout=30)
        assert refused.status_code == 403, (reason, refused.text)
    # a read session holding its own valid CSRF token still lacks the write scope
    page = httpx.get(
        f"{world.server.url}/onboardings/{world.story_id}", cookies={"fv_session": read_cookie}
    )
    assert page.status_code == 200 and 'name="csrf"' in page.text  # the sign-out form's
    token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    refused = httpx.post(
        url, data={"reason": "forged", "csrf": token}, cookies={"fv_session": read_cookie}
    )
    assert refused.status_code == 403 and "lacks the 'write' scope" in html.unescape(refused.text)
    assert world.rest(f"/v1/onboardings/{world.story_id}")["pause"] == before  # nothing changed
    # without any session, a page is the sign-in page and a post changes nothing
    assert httpx.post(url, data={"reason": "x"}).status_code == 303


def test_the_share_page_shows_the_plan_and_nothing_internal(browser: Browser, world: World) -> None:
    _sign_in(browser, world, world.write_key)
    browser.open(f"{world.server.url}/onboardings/{world.story_id}")
    browser.driver.find_element(By.ID, "share-make").click()
    link = browser.wait_for(
        lambda: browser.driver.find_element(By.ID, "share-url").get_attribute("href"), "the link"
    )
    assert link.startswith(f"{world.server.url}/share/")
    browser.driver.delete_all_cookies()  # the customer has no session and no key
    browser.open(link)
    text = browser.driver.find_element(By.TAG_NAME, "main").text
    detail = world.rest(f"/v1/onboardings/{world.story_id}")
    for stage in detail["stages"]:
        assert stage["title"] in text
    for m in detail["milestones"]:
        assert m["title"] in text
    assert "agreed outcome" in text and "reached" in text
    internal = [
        STORY_CSM,
        "health",
        "Health",
        "escalat",
        "Escalat",
        "Rita Sponsor",
        "weekly report",
        "csm-manager",
        str(detail["health"]["score"]),
    ]
    internal += [e["title"] for e in detail["escalations"]]
    source = browser.driver.page_source
    assert not [word for word in internal if word in source], "internal field on the share page"
    assert not browser.driver.find_elements(By.CSS_SELECTOR, "main form")
    browser.screenshot(world.shots / "share.png", height=1600)
    # revoked: the same link opens nothing
    _sign_in(browser, world, world.write_key)
    browser.open(f"{world.server.url}/onboardings/{world.story_id}")
    browser.driver.find_element(By.CSS_SELECTOR, "button.revoke").click()
    browser.wait_for(lambda: "done=revoke" in browser.driver.current_url, "revoked")
    assert httpx.get(link).status_code == 404


def test_docs_and_escalations_load_only_local_assets(browser: Browser, world: World) -> None:
    _sign_in(browser, world, world.read_key)
    browser.open(f"{world.server.url}/escalations")
    assert browser.driver.find_elements(By.CSS_SELECTOR, "section[data-level]")
    browser.open(f"{world.server.url}/docs")
    browser.wait_for(
        lambda: browser.driver.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title"),
        "Swagger UI rendered",
    )
    browser.drain()
    assert any(u.endswith("/docs/assets/swagger-ui-bundle.js") for u in browser.requested)
    assert any(u.endswith("/openapi.json") for u in browser.requested)
