"""What keeps a broker's memory and per-request cost bounded as records accumulate (issue 7, soak).

Apache Kafka bounds both: retention deletes closed log segments, DeleteRecords moves a
partition's log start offset at once, and a fetch finds its offset through the segment index,
so it costs the same however much the partition holds. The embedded Tansu 0.6.0 (memory
storage) does neither: it ignores retention and compaction, panics on DeleteRecords ("not yet
implemented"), and lists every stored batch of a partition on each fetch that returns data, so
that cost grows with everything the partition ever received. docs/broker.md, "Memory and CPU
grow with every record stored", has the measurements.

Both tests are strict xfails on the embedded Tansu: they fail there today, and an XPASS tells
whoever upgrades it that the bound now holds. They pass on noida-db and should on Apache Kafka
(``KAFKA_BOOTSTRAP_SERVERS=host:9092 pytest tests/integration/test_broker_growth.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time
import uuid

import pytest
from cctriage_common.broker import BrokerSettings, kafka_broker
from cctriage_common.kafka import KafkaSettings, kafka_python_producer_config, producer_config
from cctriage_common.settings import load
from cctriage_common.topics import create_topics

_BROKER = load(BrokerSettings)
ON_EMBEDDED_TANSU = not _BROKER.bootstrap_servers and _BROKER.embedded_broker == "tansu"

tansu_unbounded = pytest.mark.xfail(
    ON_EMBEDDED_TANSU,
    strict=True,
    reason="Tansu 0.6.0 memory storage keeps every record and lists them all on each fetch "
    "(docs/broker.md, 'Memory and CPU grow with every record stored')",
)


def _kafka(bootstrap: str) -> KafkaSettings:
    return dataclasses.replace(load(KafkaSettings), bootstrap_servers=bootstrap)


@tansu_unbounded
def test_delete_records_moves_the_log_start_offset():
    """DeleteRecords up to offset 600 of 1,000: offsets 0-599 are gone, 600-999 are still read.

    A private broker (when embedded): on Tansu the request panics one of the broker's worker
    tasks, which must not touch the shared test-session broker.
    """
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient

    with kafka_broker() as bootstrap:
        topic = f"t-delete-records-{uuid.uuid4().hex[:8]}"
        create_topics(bootstrap, [(topic, 1, {})])
        producer = KafkaProducer(**kafka_python_producer_config(_kafka(bootstrap)))
        try:
            for i in range(1000):
                producer.send(topic, str(i).encode(), partition=0)
            producer.flush(30)
        finally:
            producer.close(5)
        tp = TopicPartition(topic, 0)
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        try:
            admin.delete_records({tp: 600})
        finally:
            admin.close()
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            consumer_timeout_ms=5000,
        )
        try:
            assert consumer.beginning_offsets([tp]) == {tp: 600}
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            offsets = [record.offset for record in consumer]
        finally:
            consumer.close()
        assert offsets == list(range(600, 1000))


async def _fill(bootstrap: str, topic: str, count: int, producers: int = 4) -> None:
    """``count`` records into partition 0, one record per batch (the project's producer setting)."""
    from aiokafka import AIOKafkaProducer

    clients = [AIOKafkaProducer(**producer_config(_kafka(bootstrap))) for _ in range(producers)]
    for client in clients:
        await client.start()

    async def send(client, n: int) -> None:
        pending = []
        for _ in range(n):
            pending.append(await client.send(topic, b"x" * 100, partition=0))
            if len(pending) >= 500:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)

    try:
        await asyncio.gather(*(send(client, count // producers) for client in clients))
    finally:
        for client in clients:
            await client.stop()


async def _tail_fetch_s(bootstrap: str, topic: str, end: int, reps: int = 9) -> float:
    """Median wall time of one fetch of the newest record of partition 0."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    # A wait longer than the fetch: Tansu answers an empty fetch once its listing outlasts the
    # wait, which would hide the cost behind a timeout.
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=2000)
    await consumer.start()
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    times = []
    try:
        for _ in range(reps):
            consumer.seek(tp, end - 1)
            started = time.perf_counter()
            records = await consumer.getmany(tp, timeout_ms=20_000)
            assert records.get(tp), f"no record at offset {end - 1} within 20 s"
            times.append(time.perf_counter() - started)
    finally:
        await consumer.stop()
    return statistics.median(times)


@pytest.mark.slow
@tansu_unbounded
def test_a_fetch_costs_the_same_however_many_records_the_partition_holds(kafka_topics):
    """Fetching the newest record: 500 stored vs 20,500 stored in the same partition.

    Measured on Tansu 0.6.0: ~0.7 ms more per 1,000 stored batches (14 ms at 20,000; 45 ms at
    60,000; a consumer whose fetch_max_wait_ms is below that gets nothing at all). A broker with
    an offset index answers both in about the same time; the bound allows 3x plus 5 ms for
    scheduling noise on busy cores.
    """
    topic = kafka_topics.create(partitions=1, purpose="growth")
    bootstrap = kafka_topics.bootstrap
    asyncio.run(_fill(bootstrap, topic, 500))
    small = asyncio.run(_tail_fetch_s(bootstrap, topic, 500))
    asyncio.run(_fill(bootstrap, topic, 20_000))
    large = asyncio.run(_tail_fetch_s(bootstrap, topic, 20_500))
    assert large <= 3 * small + 0.005, (
        f"fetching the newest record took {large * 1000:.1f} ms with 20,500 records stored, "
        f"{small * 1000:.1f} ms with 500: the broker's cost per fetch grows with what it stores"
    )
