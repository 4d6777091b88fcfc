"""The in-memory bus keeps Kafka's consumer-group contract: at-least-once, per-key order."""

from __future__ import annotations

import asyncio

from shared.bus.memory import MemoryBus


async def test_an_uncommitted_batch_is_delivered_again_to_the_next_consumer() -> None:
    bus = MemoryBus()
    await bus.publish_many("t", [("a", b"1"), ("a", b"2")])
    async with bus.subscribe("t", "g") as first:
        batch = await anext(aiter(first))
        assert [m.value for m in batch.messages] == [b"1", b"2"]
        # crash: leave without committing
    async with bus.subscribe("t", "g") as second:
        again = await anext(aiter(second))
        assert [m.value for m in again.messages] == [b"1", b"2"]
        await again.commit()
    assert await bus.lag("t", "g") == 0
    await bus.publish("t", "a", b"3")
    async with bus.subscribe("t", "g") as third:
        batch = await anext(aiter(third))
        assert [m.value for m in batch.messages] == [b"3"]


async def test_groups_consume_independently_and_lag_counts_uncommitted() -> None:
    bus = MemoryBus()
    await bus.publish_many("t", [(None, b"x")] * 3)
    assert await bus.lag("t", "a") == 3
    async with bus.subscribe("t", "a", max_records=2) as sub:
        batch = await anext(aiter(sub))
        assert len(batch.messages) == 2
        await batch.commit()
    assert await bus.lag("t", "a") == 1
    assert await bus.lag("t", "b") == 3


async def test_partitions_are_shared_by_a_group_and_keys_stay_on_one_partition() -> None:
    bus = MemoryBus(partitions=4)
    items = [(f"account-{n % 8}", str(n).encode()) for n in range(64)]
    await bus.publish_many("t", items)
    seen: dict[str, list[bytes]] = {}
    counts = [0, 0]

    async def consume(index: int) -> None:
        async with bus.subscribe("t", "g", max_records=5) as sub:
            async for batch in sub:
                for message in batch.messages:
                    assert message.key is not None
                    seen.setdefault(message.key, []).append(message.value)
                counts[index] += len(batch.messages)
                await batch.commit()
                if await bus.lag("t", "g") == 0:
                    await bus.stop()

    await asyncio.wait_for(asyncio.gather(consume(0), consume(1)), timeout=5)
    assert sum(len(v) for v in seen.values()) >= 64
    for key, values in seen.items():  # per-key order holds (redeliveries repeat a suffix)
        expected = [v for k, v in items if k == key]
        assert sorted(set(values), key=values.index) == expected


async def test_stop_ends_every_subscription() -> None:
    bus = MemoryBus()

    async def consume() -> int:
        batches = 0
        async with bus.subscribe("t", "g") as sub:
            async for _ in sub:
                batches += 1
        return batches

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    await bus.stop()
    assert await asyncio.wait_for(task, timeout=1) == 0
