"""The bus interface both implementations (in-memory now, Kafka later) provide.

It mirrors aiokafka's ``getmany`` with manual commits: a subscription yields batches, and
the consumer commits a batch only after its database transaction has committed. Anything
not committed when a subscription closes is delivered again to the group's next consumer
(at-least-once); idempotent handlers turn that into exactly-once effect.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from types import TracebackType
from typing import NamedTuple, Protocol, Self


class Message(NamedTuple):
    """One record as consumed: where it came from, its key and its raw bytes.

    A named tuple, not a frozen dataclass: one is made per consumed record, and building a
    tuple costs a third of the dataclass's per-field ``object.__setattr__`` calls."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    timestamp: datetime


class Batch(Protocol):
    """Records fetched together; ``commit`` stores ``offset + 1`` per partition."""

    @property
    def messages(self) -> tuple[Message, ...]: ...

    async def commit(self) -> None: ...


class Subscription(Protocol):
    """``async with bus.subscribe(t, g) as sub: async for batch in sub: ...``"""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def __aiter__(self) -> AsyncIterator[Batch]: ...


class LeavesOnExit:
    """The ``async with`` exit every subscription shares: leave the group (``close``) however
    the block ended, so what was not committed goes to the group's other members."""

    async def close(self) -> None:
        raise NotImplementedError

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class Bus(Protocol):
    """Publish keyed byte values to topics; consume them in groups with explicit commits."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, topic: str, key: str | None, value: bytes) -> None: ...

    async def publish_many(self, topic: str, items: Iterable[tuple[str | None, bytes]]) -> None: ...

    def subscribe(self, topic: str, group: str, *, max_records: int = 500) -> Subscription: ...

    async def lag(self, topic: str, group: str) -> int:
        """Records published to ``topic`` that ``group`` has not committed yet."""
        ...
