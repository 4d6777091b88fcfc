"""The facts a benchmark figure needs beside it: cores, CPU, memory, versions."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

import aiokafka

REPO = Path(__file__).resolve().parents[2]


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return found.group(1).strip() if found else "unknown CPU"


def _ram_gib() -> float:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return 0.0
    found = re.search(r"^MemTotal:\s*(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) / 1024 / 1024 if found else 0.0


def _kafka_version() -> str:
    pom = REPO / "deploy" / "local" / "kafka" / "pom.xml"
    found = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom.read_text())
    return found.group(1) if found else "?"


def describe(postgres_version: str) -> str:
    return (
        f"{os.cpu_count()} cores ({_cpu_model()}), {_ram_gib():.1f} GiB RAM, "
        f"Linux {platform.release()}, Python {platform.python_version()}, "
        f"PostgreSQL {postgres_version}, Apache Kafka {_kafka_version()} (single-node KRaft), "
        f"aiokafka {aiokafka.__version__}"
    )


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (the machine is shared: they skew every figure)."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())
