"""``firstvalue api`` in its own process, on a free port, with one read key."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from lab.servers import free_port, service_environment


@asynccontextmanager
async def api_process(database_url: str, key: str) -> AsyncIterator[str]:
    """Serve ``database_url`` (no Kafka; ``service_environment``) until the block ends;
    yields the base URL once ``/readyz`` answers 200."""
    port = free_port()
    environment = service_environment(
        {
            "FIRSTVALUE_DATABASE_URL": database_url,
            "FIRSTVALUE_API_KEYS": f"bench:read:{key}",
            "FIRSTVALUE_API_HOST": "127.0.0.1",
        }
    )
    firstvalue = Path(sys.executable).with_name("firstvalue")
    server = subprocess.Popen(
        [str(firstvalue), "api", "--port", str(port)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await _ready(base, server)
        yield base
    finally:
        server.terminate()
        await asyncio.to_thread(server.wait, 30)


async def _ready(base: str, server: subprocess.Popen[bytes], deadline: float = 60.0) -> None:
    until = time.monotonic() + deadline
    async with httpx.AsyncClient(base_url=base, timeout=2) as client:
        while time.monotonic() < until:
            if server.poll() is not None:
                errors = server.stderr.read().decode() if server.stderr else ""
                raise RuntimeError(f"firstvalue api exited: {errors}")
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError("firstvalue api did not become ready in time")
