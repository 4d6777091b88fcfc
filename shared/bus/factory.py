"""Pick the bus implementation from settings: in-memory unless Kafka is configured."""

from __future__ import annotations

from shared.bus.bus import Bus
from shared.bus.memory import MemoryBus
from shared.config import Settings


def create_bus(settings: Settings) -> Bus:
    """The process's bus; call once at start-up, then ``await bus.start()``."""
    if settings.kafka_bootstrap_servers is None:
        return MemoryBus()
    raise RuntimeError(
        "FIRSTVALUE_KAFKA_BOOTSTRAP_SERVERS is set, but this build has no Kafka bus yet; "
        "unset it to run embedded with the in-memory bus"
    )
