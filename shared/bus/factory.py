"""Pick the bus implementation from settings: in-memory unless Kafka is configured."""

from __future__ import annotations

from shared.bus.bus import Bus
from shared.bus.kafka import KafkaBus
from shared.bus.memory import MemoryBus
from shared.config import Settings


def create_bus(settings: Settings, *, client_id: str = "firstvalue") -> Bus:
    """The process's bus; call once at start-up, then ``await bus.start()``.

    ``client_id`` names the process in the broker's logs and metrics (e.g. the service).
    """
    if settings.kafka_bootstrap_servers is None:
        return MemoryBus()
    return KafkaBus(settings.kafka_bootstrap_servers, client_id=client_id)
