"""Debian's Prometheus for the tests: ``promtool`` runs, and a real server on a free
loopback port (deploy/local/prometheus.sh installs the package; test.sh calls it). Without
the binaries the tests skip locally and fail under ``CI=true``."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
READY_DEADLINE = 30.0
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def binary(name: str) -> str:
    """The path of ``prometheus`` or ``promtool``; skip (locally) or fail (CI) without it."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (deploy/local/prometheus.sh install; make test runs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Run promtool; the result keeps its output for the assertion message."""
    return subprocess.run(
        [binary("promtool"), *args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rules_with_for(source: Path, duration: str) -> dict[str, Any]:
    """The rule file with every alert's ``for`` replaced (a test cannot wait 5 minutes)."""
    rules: dict[str, Any] = yaml.safe_load(source.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["for"] = duration
    return rules


@contextmanager
def prometheus_server(
    folder: Path, targets: dict[str, str], rules: dict[str, Any], interval: str = "1s"
) -> Iterator[str]:
    """A real Prometheus scraping ``targets`` (job → host:port) and evaluating ``rules``
    every ``interval``, on a free loopback port; yields its base URL, stopped on exit."""
    (folder / "alerts.yml").write_text(yaml.safe_dump(rules))
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]}
            for job, target in targets.items()
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    checked = promtool("check", "config", str(folder / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    url = f"http://127.0.0.1:{free_port()}"
    log = (folder / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary("prometheus"),
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address={url.removeprefix('http://')}",
            "--log.level=warn",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=folder,
    )
    try:
        _wait_ready(url, process, folder / "prometheus.log")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_DEADLINE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"prometheus exited ({process.returncode}):\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/-/ready", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"prometheus not ready in {READY_DEADLINE} s:\n{log.read_text()}")


def samples(text: str) -> Samples:
    """An exposition's samples as {(name, labels): value}."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)
