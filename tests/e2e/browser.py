"""A real headless Chromium (Debian's ``chromium`` and ``chromium-driver``, installed by
``deploy/local/chromium.sh``) driven by Selenium, recording every request the page makes.

Without the browser the tests skip locally and fail under ``CI=true``. Every network request
the browser sends is read from Chrome's performance log (the DevTools ``Network`` events),
so a test can prove that no page loaded anything from anywhere but the server under test.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

WAIT = 20.0  # seconds a page gets to show what a test waits for


def _binaries() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    if os.environ.get("CI") == "true":
        pytest.fail(
            "chromium and chromedriver must be installed under CI (deploy/local/chromium.sh)"
        )
    pytest.skip("chromium/chromedriver not installed: run deploy/local/chromium.sh install")


@dataclass
class Browser:
    driver: Any
    requested: list[str] = field(default_factory=list)  # every URL the browser asked for

    def drain(self) -> list[str]:
        """Move the performance log's new request URLs into ``requested``; return them."""
        new = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                new.append(message["params"]["request"]["url"])
        self.requested += new
        return new

    def outside(self, origin: str) -> list[str]:
        """Requested URLs that are neither ``origin``'s nor inline (``data:``, which the
        browser's own controls use and which leave nothing)."""
        self.drain()
        return [u for u in self.requested if not u.startswith((origin + "/", "data:"))]

    def open(self, url: str) -> None:
        self.driver.get(url)
        self.drain()

    def wait_for(self, check: Callable[[], Any], what: str, deadline: float = WAIT) -> Any:
        """Poll ``check`` (reloading nothing) until it returns something truthy."""
        until = time.monotonic() + deadline
        while True:
            try:
                found = check()
            except Exception:  # the element is not there yet
                found = None
            if found:
                return found
            if time.monotonic() > until:
                raise AssertionError(f"not seen within {deadline}s: {what}")
            time.sleep(0.1)  # poll interval, bounded by the deadline

    def screenshot(self, path: Path, height: int | None = None) -> Path:
        """A PNG of the page at 1400 px wide (and its full height, up to ``height``)."""
        full = self.driver.execute_script(
            "return Math.ceil(Math.max(document.body.scrollHeight,"
            " document.body.getBoundingClientRect().bottom + window.scrollY))"
        )
        target = min(full, height or 2400)
        frame = self.driver.execute_script("return window.outerHeight - window.innerHeight")
        self.driver.set_window_size(1400, target + frame)
        self.wait_for(
            lambda: self.driver.execute_script("return window.innerHeight") >= target - 20,
            "the window resized for the screenshot",
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(1400, 1000)
        return path


@contextmanager
def chromium() -> Iterator[Browser]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = _binaries()
    options = Options()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",  # runs as root in CI
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--no-first-run",
        "--disable-background-networking",  # no update checks, no safe-browsing lists
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--metrics-recording-only",
        "--no-default-browser-check",
        "--disable-features=OptimizationHints,Translate,MediaRouter",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield Browser(driver)
    finally:
        driver.quit()


def screenshot_dir(fallback: Path) -> Path:
    """Where the tests' screenshots go: ``FIRSTVALUE_SCREENSHOTS`` (e.g. docs/screenshots,
    to refresh the README's), else a temporary folder."""
    chosen = os.environ.get("FIRSTVALUE_SCREENSHOTS")
    return Path(chosen) if chosen else fallback
