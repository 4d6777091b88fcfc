"""The in-process bus for embedded mode and tests, with Kafka's consumer-group semantics.

Per (topic, group) it keeps one committed offset per partition. Partitions are shared out
among a group's open subscriptions; whenever the membership changes (a consumer joins,
leaves or crashes) every member resumes from the committed offsets, so a batch that was
fetched but not committed is delivered again — at-least-once, as with Kafka.
"""

from __future__ import annotations

import asyncio
import itertools
import zlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Self

from shared.bus.bus import LeavesOnExit, Message


@dataclass
class _Group:
    committed: list[int]
    members: list[MemorySubscription] = field(default_factory=list)
    generation: int = 0


class MemoryBatch:
    """A fetched batch; ``commit`` advances the group's offsets past it."""

    def __init__(self, bus: MemoryBus, group: _Group, messages: tuple[Message, ...]) -> None:
        self._bus = bus
        self._group = group
        self.messages = messages

    async def commit(self) -> None:
        committed = self._group.committed
        async with self._bus._changed:
            for message in self.messages:
                committed[message.partition] = max(committed[message.partition], message.offset + 1)
            self._bus._changed.notify_all()


class MemorySubscription(LeavesOnExit):
    """One consumer of a group; iterate for batches until the subscription or bus closes."""

    def __init__(self, bus: MemoryBus, topic: str, group: str, max_records: int) -> None:
        self._bus = bus
        self._topic = topic
        self._group = bus._group(topic, group)
        self._max_records = max_records
        self._positions: dict[int, int] = {}
        self._generation = -1
        self._open = False

    async def __aenter__(self) -> Self:
        async with self._bus._changed:
            self._group.members.append(self)
            self._group.generation += 1
            self._open = True
            self._bus._changed.notify_all()
        return self

    async def close(self) -> None:
        """Leave the group; what this consumer did not commit goes to the others."""
        async with self._bus._changed:
            if self._open:
                self._open = False
                self._group.members.remove(self)
                self._group.generation += 1
                self._bus._changed.notify_all()

    async def __aiter__(self) -> AsyncIterator[MemoryBatch]:
        while (batch := await self._next()) is not None:
            yield batch

    async def _next(self) -> MemoryBatch | None:
        async with self._bus._changed:
            while self._open and not self._bus._stopped:
                messages = self._fetch()
                if messages:
                    return MemoryBatch(self._bus, self._group, messages)
                await self._bus._changed.wait()
            return None

    def _fetch(self) -> tuple[Message, ...]:
        group, logs = self._group, self._bus._log(self._topic)
        if self._generation != group.generation:  # rebalanced: resume from committed
            self._generation = group.generation
            index, size = group.members.index(self), len(group.members)
            self._positions = {p: group.committed[p] for p in range(len(logs)) if p % size == index}
        fetched: list[Message] = []
        for partition, position in self._positions.items():
            take = logs[partition][position : position + self._max_records - len(fetched)]
            fetched.extend(take)
            self._positions[partition] = position + len(take)
        return tuple(fetched)


class MemoryBus:
    """An asyncio bus: topics of ``partitions`` partitions, keyed records, consumer groups."""

    def __init__(self, partitions: int = 1) -> None:
        self._partitions = partitions
        self._logs: dict[str, list[list[Message]]] = {}
        self._groups: dict[tuple[str, str], _Group] = {}
        self._changed = asyncio.Condition()
        self._round_robin = itertools.count()
        self._stopped = False

    async def start(self) -> None:
        self._stopped = False

    async def stop(self) -> None:
        """End every subscription's iteration (consumers then return)."""
        async with self._changed:
            self._stopped = True
            self._changed.notify_all()

    async def publish(self, topic: str, key: str | None, value: bytes) -> None:
        await self.publish_many(topic, [(key, value)])

    async def publish_many(self, topic: str, items: Iterable[tuple[str | None, bytes]]) -> None:
        async with self._changed:
            logs = self._log(topic)
            now = datetime.now(UTC)
            for key, value in items:
                partition = self._partition(key)
                log = logs[partition]
                log.append(Message(topic, partition, len(log), key, bytes(value), now))
            self._changed.notify_all()

    def subscribe(self, topic: str, group: str, *, max_records: int = 500) -> MemorySubscription:
        return MemorySubscription(self, topic, group, max_records)

    async def lag(self, topic: str, group: str) -> int:
        logs, committed = self._log(topic), self._group(topic, group).committed
        return sum(len(log) - offset for log, offset in zip(logs, committed, strict=True))

    def messages(self, topic: str) -> list[Message]:
        """Everything ever published to ``topic`` (for tests and the embedded runner)."""
        return [m for log in self._log(topic) for m in log]

    def _partition(self, key: str | None) -> int:
        if key is None:
            return next(self._round_robin) % self._partitions
        return zlib.crc32(key.encode()) % self._partitions

    def _log(self, topic: str) -> list[list[Message]]:
        return self._logs.setdefault(topic, [[] for _ in range(self._partitions)])

    def _group(self, topic: str, group: str) -> _Group:
        return self._groups.setdefault((topic, group), _Group(committed=[0] * self._partitions))
