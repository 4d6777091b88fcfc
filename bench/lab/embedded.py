"""``firstvalue run`` as ``make run`` starts it (SQLite file, in-memory bus, demo data, the
API on a pre-bound socket), in a folder of its own, for benches to load."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lab.servers import wait_ready

START_DEADLINE = 300.0  # demo history generation and load included


@dataclass(frozen=True)
class Embedded:
    base: str
    key: str  # the demo's read+write API key
    folder: Path
    pid: int  # the server's process, whose CPU time benches may read (``cpu_seconds``)


@contextmanager
def embedded(folder: Path, port: int, code: Path | None = None) -> Iterator[Embedded]:
    """Run ``firstvalue run --port PORT`` in ``folder``; ``code``: another checkout's
    packages (PYTHONPATH) instead of the installed ones, to measure a reference."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FIRSTVALUE_")}
    if code is not None:
        environment["PYTHONPATH"] = str(code)
    process = subprocess.Popen(
        [sys.executable, "-m", "firstvalue", "run", "--port", str(port)],
        cwd=folder,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process, "firstvalue run", START_DEADLINE, interval=0.5)
        key = (folder / ".firstvalue-demo-key").read_text().strip()
        yield Embedded(base, key, folder, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=60)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (Linux: ``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
