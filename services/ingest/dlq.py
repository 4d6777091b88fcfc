"""Dead letters: a message that cannot be ingested goes to ``analytics.events.dlq`` with its
original bytes, the reason and its source offset — never dropped silently."""

from __future__ import annotations

from collections.abc import Sequence

from shared.bus import topics
from shared.bus.bus import Bus, Message
from shared.bus.messages import dead_letter

__all__ = ["DeadLetter", "dead_letter", "publish_dead_letters"]

DeadLetter = tuple[Message, str, str, bytes | None]  # message, reason, error, item bytes


async def publish_dead_letters(bus: Bus, letters: Sequence[DeadLetter]) -> None:
    """Publish the dead letters of one batch (keyed like their source records)."""
    if letters:
        await bus.publish_many(
            topics.EVENTS_DLQ,
            [
                (message.key, dead_letter(message, reason, error, original))
                for message, reason, error, original in letters
            ],
        )
