"""aiokafka (asyncio, pure Python) against a real broker: plain and idempotent produce, a
transactional producer whose commit is visible and abort hidden to a read_committed consumer, and
a group consumer that commits and resumes from its committed offset."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from support import unique_topic


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 90))


async def create(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def read_all(bootstrap: str, topic: str, isolation: str, partitions: int = 1) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        values: list[bytes] = []
        async def behind() -> bool:
            for tp in tps:
                if await consumer.position(tp) < ends[tp]:
                    return True
            return False

        while await behind():
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                values += [r.value for r in records]
        return values
    finally:
        await consumer.stop()


def test_aiokafka_plain_and_idempotent_produce(broker):
    async def scenario():
        topic = unique_topic("aio")
        await create(broker.bootstrap, topic, 1)
        for idempotent in (False, True):
            producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=idempotent, acks="all")
            await producer.start()
            try:
                sent = [await producer.send_and_wait(topic, b"%s-%d" % (b"idem" if idempotent else b"plain", i)) for i in range(200)]
            finally:
                await producer.stop()
            assert [m.offset for m in sent] == list(range(sent[0].offset, sent[0].offset + 200))
        values = await read_all(broker.bootstrap, topic, "read_uncommitted")
        assert values == [b"plain-%d" % i for i in range(200)] + [b"idem-%d" % i for i in range(200)]

    run(scenario())


def test_aiokafka_transactions_and_read_committed(broker):
    async def scenario():
        topic = unique_topic("aio-txn")
        await create(broker.bootstrap, topic, 1)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=unique_topic("aio-tid"))
        await producer.start()
        try:
            async with producer.transaction():
                await producer.send_and_wait(topic, b"committed-1")
            try:
                async with producer.transaction():
                    await producer.send_and_wait(topic, b"aborted-1")
                    raise RuntimeError("abort this one")
            except RuntimeError:
                pass
            async with producer.transaction():
                await producer.send_and_wait(topic, b"committed-2")
        finally:
            await producer.stop()
        assert await read_all(broker.bootstrap, topic, "read_committed") == [b"committed-1", b"committed-2"]
        assert await read_all(broker.bootstrap, topic, "read_uncommitted") == [b"committed-1", b"aborted-1", b"committed-2"]

    run(scenario())


def test_aiokafka_group_consumer_resumes_from_committed_offset(broker):
    async def scenario():
        topic, group = unique_topic("aio-group"), unique_topic("aio-g")
        await create(broker.bootstrap, topic, 2)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        for i in range(100):
            await producer.send(topic, b"v%d" % i, partition=i % 2)
        await producer.flush()
        await producer.stop()

        async def consume(limit: int) -> list[bytes]:
            consumer = AIOKafkaConsumer(
                topic, bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False,
                auto_offset_reset="earliest")
            await consumer.start()
            got: list[bytes] = []
            try:
                while len(got) < limit:
                    batches = await consumer.getmany(timeout_ms=500, max_records=limit - len(got))
                    for records in batches.values():
                        got += [r.value for r in records]
                await consumer.commit()
            finally:
                await consumer.stop()
            return got

        first = await consume(60)
        rest = await consume(40)
        assert sorted(first + rest) == sorted(b"v%d" % i for i in range(100)), "each record once across the two members"

    run(scenario())
