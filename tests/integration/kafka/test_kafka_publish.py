"""``KafkaBus.publish_many`` on a real broker: it sends one record batch per partition, so it
must still put every keyed record where ``producer.send`` would (the default partitioner),
keep each key's records in order across batches, and refuse a record the broker would."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError

from shared.bus import topics

from .conftest import BusFactory
from .harness import read_topic

TOPIC = topics.EVENTS  # six partitions on the test broker (num.partitions)


async def test_records_land_where_send_puts_them_in_order(
    buses: BusFactory, bootstrap: str, namespace: str
) -> None:
    bus = await buses("publish")
    keys = [f"acct-{n}" for n in range(40)]
    # 1,200 records of 1 KB for one key: more than a 256 KiB batch holds, so several batches
    items: list[tuple[str | None, bytes]] = [
        ("busy", f"busy-{n:05}".encode().ljust(1024, b".")) for n in range(1200)
    ]
    items += [(key, f"{key}-{n}".encode()) for n in range(3) for key in keys]
    items += [(None, f"unkeyed-{n}".encode()) for n in range(20)]
    await bus.publish_many(TOPIC, items)

    reference = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await reference.start()
    try:  # where aiokafka's own send puts one record per key
        sent = {
            key: await reference.send(bus.physical(TOPIC), b"probe", key=key.encode())
            for key in ["busy", *keys]
        }
        expected = {key: (await future).partition for key, future in sent.items()}
    finally:
        await reference.stop()

    messages = await read_topic(bus, TOPIC, at_least=len(items) + len(expected))
    ours = [m for m in messages if m.value != b"probe"]
    assert sorted(m.value for m in ours) == sorted(value for _, value in items)  # each once
    for key, partition in expected.items():
        of_key = sorted((m for m in ours if m.key == key), key=lambda m: m.offset)
        assert {m.partition for m in of_key} == {partition}
        assert [m.value for m in of_key] == [v for k, v in items if k == key]  # in order
    assert len({m.partition for m in ours if m.key is None}) > 1  # unkeyed ones spread


async def test_a_record_larger_than_a_request_is_refused_before_anything_is_sent(
    buses: BusFactory,
) -> None:
    bus = await buses("publish-large")
    with pytest.raises(MessageSizeTooLargeError, match="1048576"):
        await bus.publish_many(TOPIC, [("a", b"small"), ("a", b"x" * (1024 * 1024 + 1))])
    await bus.publish_many(TOPIC, [("a", b"after")])
    assert [m.value for m in await read_topic(bus, TOPIC, at_least=1)] == [b"after"]
