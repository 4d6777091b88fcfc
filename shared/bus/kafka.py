"""The bus on a real Kafka broker (aiokafka), with at-least-once consumption.

One idempotent producer per bus (``acks=all``), keyed by account id so one account's
records stay ordered on one partition. Each subscription is one consumer of its group with
auto-commit off: it yields ``getmany`` batches, and ``Batch.commit()`` stores ``offset + 1``
per partition once the caller's work is durable.

Rebalances: when partitions are revoked, the listener first lets the batch in hand finish
(up to ``revoke_grace_seconds``) so its commit lands before the partitions move; whatever is
still in flight after that is never committed by this consumer (its records are redelivered
to the new owner, which idempotent handlers absorb), and fetched records of partitions no
longer owned are dropped, never yielded.

``topic_prefix`` namespaces every topic (tests, shared clusters): callers always use the
logical names of ``shared.bus.topics``, and see them in ``Message.topic``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Iterable
from datetime import UTC, datetime
from typing import Any, Self, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError, IllegalStateError, MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from shared.bus.bus import LeavesOnExit, Message
from shared.bus.client_logs import throttle_client_logs

_EPOCH = datetime.fromtimestamp(0, UTC)
log = logging.getLogger(__name__)

T = TypeVar("T")
FETCH_TIMEOUT_MS = 500  # how long one getmany waits for records when the topic is idle
MAX_REQUEST_SIZE = 1_048_576  # the producer's (aiokafka's default): larger records are refused
_CHECKED_SIZE = 64 * 1024  # records at most this long cannot exceed MAX_REQUEST_SIZE
_PARTITION_CACHE_SIZE = 100_000  # keys remembered per topic
_PARTITIONER = DefaultPartitioner()


def _check_size(key: bytes | None, value: bytes) -> None:
    """Refuse a record the broker would refuse, before anything is sent (as ``send`` does)."""
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, [])
    if size > MAX_REQUEST_SIZE:
        raise MessageSizeTooLargeError(
            f"the record is {size} bytes when serialised, more than the {MAX_REQUEST_SIZE} "
            "a request may hold"
        )


class KafkaBatch:
    """Records of one ``getmany``; remembers which assignment of each partition it came from."""

    def __init__(
        self,
        subscription: KafkaSubscription,
        messages: tuple[Message, ...],
        offsets: dict[TopicPartition, int],
        epochs: dict[TopicPartition, int],
        sequence: int,
    ) -> None:
        self._subscription = subscription
        self.messages = messages
        self._offsets = offsets  # next offset to consume, per partition
        self._epochs = epochs
        self._sequence = sequence

    async def commit(self) -> None:
        """Commit ``offset + 1`` for the partitions this consumer still owns since the fetch.

        A partition revoked in between is skipped (its new owner starts from the last
        commit and redelivers); a commit the broker refuses after a rebalance is the same
        case. Neither loses a record, so neither raises.
        """
        await self._subscription.commit(self)


class _Listener(ConsumerRebalanceListener):
    def __init__(self, subscription: KafkaSubscription) -> None:
        self._subscription = subscription

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._subscription.revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._subscription.assigned(assigned)


class KafkaSubscription(LeavesOnExit):
    """One group member: ``async with`` joins the group, iteration yields batches."""

    def __init__(self, bus: KafkaBus, topic: str, group: str, max_records: int) -> None:
        self._bus = bus
        self._topic = topic
        self._group = group
        self._max_records = max_records
        self._consumer: AIOKafkaConsumer | None = None
        self._epochs: dict[TopicPartition, int] = {}  # owned partitions → assignment number
        self._counter = itertools.count()
        # Batches are numbered as yielded; a batch is in hand until it (or a later one) is
        # committed. A rebalance waits for ``_idle``; no batch is yielded while ``_steady``
        # is clear (between partitions revoked and partitions assigned).
        self._yielded = self._settled = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._steady = asyncio.Event()
        self._stopping = asyncio.Event()
        self._closed = asyncio.Event()

    async def __aenter__(self) -> Self:
        consumer = self._bus._consumer(self._group)
        consumer.subscribe([self._bus.physical(self._topic)], listener=_Listener(self))
        self._consumer = consumer
        self._bus._subscriptions.add(self)  # so that a bus stopping meanwhile closes it too
        try:
            await consumer.start()
        except BaseException:  # cancelled or failed while joining: leave nothing open
            with contextlib.suppress(Exception):
                await self.close()
            raise
        return self

    async def close(self) -> None:
        """Leave the group; what was not committed goes to the group's other members."""
        self._stopping.set()
        self._idle.set()  # a rebalance waiting for our batch must not wait for a closed consumer
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                await consumer.stop()
            finally:
                self._bus._subscriptions.discard(self)
                self._closed.set()

    def stop(self) -> None:
        """End the iteration after the batch in hand (used by ``KafkaBus.stop``)."""
        self._stopping.set()

    async def __aiter__(self) -> AsyncIterator[KafkaBatch]:
        while (batch := await self._next()) is not None:
            yield batch

    async def _next(self) -> KafkaBatch | None:
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("use `async with bus.subscribe(...)` before iterating")
        while not self._stopping.is_set():
            if not self._steady.is_set() and not await self._unless_stopping(self._steady.wait()):
                return None
            fetched = await self._unless_stopping(
                consumer.getmany(timeout_ms=FETCH_TIMEOUT_MS, max_records=self._max_records)
            )
            if fetched is None:
                return None
            batch = self._batch(fetched)
            if batch is not None:
                return batch
        return None

    async def _unless_stopping(self, work: Awaitable[T]) -> T | None:
        """``work``'s result, or None (``work`` cancelled) once the subscription stops."""
        task = asyncio.ensure_future(work)
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait((task, stopping), return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None

    def _batch(self, fetched: dict[TopicPartition, list[Any]]) -> KafkaBatch | None:
        if not self._steady.is_set():  # a rebalance began during the fetch: give it all up
            return None
        messages: list[Message] = []
        offsets: dict[TopicPartition, int] = {}
        epochs: dict[TopicPartition, int] = {}
        for tp, records in fetched.items():
            if not records or tp not in self._epochs:  # not (or no longer) ours
                continue
            epochs[tp] = self._epochs[tp]
            offsets[tp] = records[-1].offset + 1
            messages.extend(self._messages(tp.partition, records))
        if not messages:
            return None
        self._yielded += 1
        self._idle.clear()
        return KafkaBatch(self, tuple(messages), offsets, epochs, self._yielded)

    def _messages(self, partition: int, records: list[Any]) -> list[Message]:
        """The bus form of one partition's records. Producers batch: neighbouring records
        mostly share a millisecond timestamp, so its datetime is made once per run."""
        topic = self._topic
        messages = []
        last_ms, last_time = None, _EPOCH
        for record in records:
            if record.timestamp != last_ms:
                last_ms = record.timestamp
                last_time = datetime.fromtimestamp(last_ms / 1000, UTC)
            key = record.key
            messages.append(
                Message(
                    topic,
                    partition,
                    record.offset,
                    key.decode("utf-8", "replace") if key is not None else None,
                    record.value if record.value is not None else b"",
                    last_time,
                )
            )
        return messages

    async def commit(self, batch: KafkaBatch) -> None:
        consumer = self._consumer
        owned = {
            tp: offset
            for tp, offset in batch._offsets.items()
            if self._epochs.get(tp) == batch._epochs[tp]
        }
        if lost := batch._offsets.keys() - owned.keys():
            log.info("not committing revoked partitions %s: their new owner redelivers", lost)
        try:
            if owned and consumer is not None:
                await consumer.commit(owned)
        except (CommitFailedError, IllegalStateError) as error:
            log.warning("offset commit refused after a rebalance (records redelivered): %s", error)
        finally:
            self._settled = max(self._settled, batch._sequence)
            if self._settled >= self._yielded:
                self._idle.set()

    async def revoked(self, revoked: set[TopicPartition]) -> None:
        """Let the batches in hand commit first (bounded), then give the partitions up."""
        self._steady.clear()
        if not self._idle.is_set():
            try:
                await asyncio.wait_for(self._idle.wait(), self._bus.revoke_grace_seconds)
            except TimeoutError:
                log.warning("batch still in hand at rebalance; its partitions will be redelivered")
        for tp in revoked:
            self._epochs.pop(tp, None)

    def assigned(self, assigned: set[TopicPartition]) -> None:
        for tp in assigned:
            self._epochs[tp] = next(self._counter)
        self._steady.set()


class KafkaBus:
    """The ``Bus`` on Kafka: ``start()`` once, ``stop()`` drains consumers and flushes."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "firstvalue",
        topic_prefix: str = "",
        linger_ms: int = 5,
        session_timeout_ms: int = 10_000,
        revoke_grace_seconds: float = 20.0,
        stop_grace_seconds: float = 30.0,
    ) -> None:
        self._servers = bootstrap_servers
        self._client_id = client_id
        self._prefix = topic_prefix
        self._linger_ms = linger_ms
        self._session_timeout_ms = session_timeout_ms
        self.revoke_grace_seconds = revoke_grace_seconds
        self._stop_grace_seconds = stop_grace_seconds
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._probe: AIOKafkaConsumer | None = None
        self._subscriptions: set[KafkaSubscription] = set()
        self._partitions: dict[str, tuple[int, dict[bytes, int]]] = {}

    def physical(self, topic: str) -> str:
        """The broker's name for a logical topic."""
        return self._prefix + topic

    async def start(self) -> None:
        """Start the producer; a second call is a no-op (callers may share a started bus)."""
        if self._producer is not None:
            return
        throttle_client_logs()
        producer = AIOKafkaProducer(
            bootstrap_servers=self._servers,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=self._linger_ms,
            max_batch_size=256 * 1024,
            max_request_size=MAX_REQUEST_SIZE,
        )
        try:
            await producer.start()
        except BaseException:  # e.g. no broker: close what started before raising
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        self._producer = producer

    async def stop(self) -> None:
        """End every subscription after its batch in hand, then flush and close the producer."""
        subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            subscription.stop()
        if subscriptions:
            closing = [asyncio.ensure_future(s._closed.wait()) for s in subscriptions]
            _, pending = await asyncio.wait(closing, timeout=self._stop_grace_seconds)
            for waiter in pending:
                waiter.cancel()
            for subscription in list(self._subscriptions):  # their owners never let go
                log.warning("closing a subscription that did not finish within the grace time")
                await subscription.close()
        probe, admin, self._probe, self._admin = self._probe, self._admin, None, None
        if probe is not None:
            await probe.stop()
        if admin is not None:
            await admin.close()
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.flush()
            await producer.stop()

    async def probe(self) -> None:
        """Ask a broker for the cluster's metadata; raises when none answers (readiness)."""
        if self._producer is None:
            raise RuntimeError("KafkaBus.start() was not called (or the bus is stopped)")
        await self._producer.client.fetch_all_metadata()

    async def publish(self, topic: str, key: str | None, value: bytes) -> None:
        await self.publish_many(topic, [(key, value)])

    async def publish_many(self, topic: str, items: Iterable[tuple[str | None, bytes]]) -> None:
        """Send and wait until the broker has acknowledged every record (all replicas).

        The records go out as one record batch per partition (more when one fills), in
        order, each acknowledged as a whole: ingest announces hundreds of accounts per batch,
        and ``producer.send`` per record spent more of its CPU (a future per record, the
        metadata wait, the key's hash) than storing the batch's events. Partitions are the
        default partitioner's (murmur2 of the key), as ``send`` would pick them."""
        producer = self._producer
        if producer is None:
            raise RuntimeError("KafkaBus.start() was not called (or the bus is stopped)")
        name = self.physical(topic)
        partitions = sorted(await producer.partitions_for(name))
        known = self._partition_cache(name, len(partitions))
        batches: dict[int, list[BatchBuilder]] = {}
        for key, value in items:
            key_bytes = None if key is None else key.encode()
            if key_bytes is None:
                partition = _PARTITIONER(None, partitions, partitions)
            elif (partition := known.get(key_bytes)) is None:
                partition = known[key_bytes] = _PARTITIONER(key_bytes, partitions, partitions)
            if len(value) > _CHECKED_SIZE:
                _check_size(key_bytes, value)
            if (open_batches := batches.get(partition)) is None:
                open_batches = batches[partition] = [producer.create_batch()]
            if open_batches[-1].append(timestamp=None, key=key_bytes, value=value) is None:
                open_batches.append(fresh := producer.create_batch())
                fresh.append(timestamp=None, key=key_bytes, value=value)  # a first one fits
        sent = [
            await producer.send_batch(batch, name, partition=partition)
            for partition, builders in batches.items()
            for batch in builders
        ]
        if sent:
            await asyncio.gather(*sent)

    def _partition_cache(self, name: str, count: int) -> dict[bytes, int]:
        """Key → partition for one topic while its partition count stays ``count`` (the
        hash is pure Python; an account's key recurs in every batch that touches it)."""
        cached = self._partitions.get(name)
        if cached is None or cached[0] != count or len(cached[1]) > _PARTITION_CACHE_SIZE:
            cached = self._partitions[name] = (count, {})
        return cached[1]

    def assignment(self) -> set[tuple[str, int]]:
        """(logical topic, partition) pairs this bus's consumers own right now."""
        return {(s._topic, tp.partition) for s in self._subscriptions for tp in s._epochs}

    def subscribe(self, topic: str, group: str, *, max_records: int = 500) -> KafkaSubscription:
        return KafkaSubscription(self, topic, group, max_records)

    async def lag(self, topic: str, group: str) -> int:
        """End offsets minus the group's committed offsets (from the start when none)."""
        admin, probe = await self._clients()
        name = self.physical(topic)
        described = await admin.describe_topics([name])
        tps = [
            TopicPartition(name, p["partition"])
            for t in described
            if t["topic"] == name and not t["error_code"]
            for p in t["partitions"]
        ]
        if not tps:
            return 0
        ends = await probe.end_offsets(tps)
        starts = await probe.beginning_offsets(tps)
        committed = await admin.list_consumer_group_offsets(group, partitions=tps)
        total = 0
        for tp in tps:
            done = committed[tp].offset if tp in committed else -1
            total += ends[tp] - (done if done >= 0 else starts[tp])
        return total

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        """The lag clients, started once; both closed again if either fails to start (or the
        caller is cancelled meanwhile), so none is left open."""
        if self._admin is not None and self._probe is not None:
            return self._admin, self._probe
        name = f"{self._client_id}-lag"
        admin = AIOKafkaAdminClient(bootstrap_servers=self._servers, client_id=name)
        probe = AIOKafkaConsumer(bootstrap_servers=self._servers, client_id=name)
        try:
            await admin.start()
            await probe.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await probe.stop()
            with contextlib.suppress(Exception):
                await admin.close()
            raise
        if self._admin is not None and self._probe is not None:  # another call won the race
            await probe.stop()
            await admin.close()
            return self._admin, self._probe
        self._admin, self._probe = admin, probe
        return admin, probe

    def _consumer(self, group: str) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self._servers,
            client_id=self._client_id,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self._session_timeout_ms,
            heartbeat_interval_ms=max(self._session_timeout_ms // 4, 500),
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )


__all__ = ["KafkaBatch", "KafkaBus", "KafkaSubscription"]
