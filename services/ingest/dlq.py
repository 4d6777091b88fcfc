"""Dead letters: a record that cannot be ingested goes to ``analytics.events.dlq`` with its
original bytes, the reason and its source offset — never dropped silently."""

from __future__ import annotations

from collections.abc import Sequence

from services.ingest.outcome import DeadLetter
from shared.bus import topics
from shared.bus.bus import Bus, Message
from shared.bus.messages import dead_letter

__all__ = ["DeadLetter", "dead_letter", "publish_dead_letters"]


async def publish_dead_letters(
    bus: Bus, messages: Sequence[Message], letters: Sequence[DeadLetter]
) -> None:
    """Publish the dead letters of one batch of ``messages`` (each letter names its record by
    index), keyed like their source records."""
    if letters:
        await bus.publish_many(
            topics.EVENTS_DLQ,
            [
                (
                    messages[letter.index].key,
                    dead_letter(
                        messages[letter.index], letter.reason, letter.error, letter.original
                    ),
                )
                for letter in letters
            ],
        )
