"""The message bus: an interface shaped like aiokafka, and its in-memory implementation."""

from shared.bus.bus import Batch, Bus, Message, Subscription
from shared.bus.memory import MemoryBus
from shared.bus.messages import FactsNotice

__all__ = ["Batch", "Bus", "FactsNotice", "MemoryBus", "Message", "Subscription"]
