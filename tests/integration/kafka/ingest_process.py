"""``firstvalue ingest`` as a separate process, in one test's namespace of topics.

    python tests/integration/kafka/ingest_process.py TOPIC_PREFIX

It runs the CLI's own code path (``firstvalue.standalone.ingest``: settings from
``FIRSTVALUE_*``, engine, consumer group ``ingest``, graceful stop on SIGTERM/SIGINT); only
the bus differs, a KafkaBus whose topics carry the test's prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

from firstvalue.standalone import ingest
from shared.bus.kafka import KafkaBus
from shared.config import load_settings

SESSION_TIMEOUT_MS = 6000


async def main(prefix: str) -> None:
    settings = load_settings()
    assert settings.kafka_bootstrap_servers, "FIRSTVALUE_KAFKA_BOOTSTRAP_SERVERS is not set"
    bus = KafkaBus(
        settings.kafka_bootstrap_servers,
        client_id="firstvalue-ingest-test",
        topic_prefix=prefix,
        session_timeout_ms=SESSION_TIMEOUT_MS,
    )
    task = asyncio.ensure_future(ingest(settings, bus=bus))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
