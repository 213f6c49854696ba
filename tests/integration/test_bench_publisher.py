"""The pipeline benchmark's load generator (bench/pipeline_bench.publish_paced) on the real broker.

Its latency figures are measured from the moment it hands an event over, so it must deliver
every event once, keep each conversation's order, keep to the asked rate, report a publish time
for every conversation, and put a conversation on the partition any client would (murmur2), with
either Kafka client it can use.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from kafka.partitioner import murmur2

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import pipeline_bench  # noqa: E402
from triage_support import Conversation  # noqa: E402


def _read(bootstrap: str, topic: str, count: int, timeout_s: float = 30.0) -> list:
    """``count`` records of ``topic``, read from the start (not to end offsets: a flooding
    publisher writes batches of several records, for which Tansu's end offsets are short)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
        auto_offset_reset="earliest", fetch_max_wait_ms=20,
    )
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        records: list = []
        deadline = time.monotonic() + timeout_s
        while len(records) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=100).values():
                records.extend(batch)
        # Anything beyond ``count`` would be a duplicate: give it a moment to show up.
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
        return records
    finally:
        consumer.close()


@pytest.mark.parametrize("client", pipeline_bench.PUBLISHERS)
@pytest.mark.parametrize("rate", [200.0, 0.0], ids=["paced", "flood"])
def test_publisher_delivers_every_event_once_in_order_at_its_rate(
    kafka_topics, client: str, rate: float
) -> None:
    topic = kafka_topics.create(partitions=4, purpose="events")
    conversations = [Conversation() for _ in range(8)]
    events = [conversations[i % 8].customer(f"message {i}") for i in range(120)]

    started = time.time()
    published = pipeline_bench.publish_paced(kafka_topics.bootstrap, topic, events, rate, client=client)
    elapsed = time.time() - started

    assert set(published) == {c.conversation_id for c in conversations}
    assert all(started <= at <= started + elapsed for at in published.values())
    if rate:
        # 120 events at 200/s: the last is handed over no earlier than 119 / 200 s after the first.
        assert elapsed >= (len(events) - 1) / rate
    records = _read(kafka_topics.bootstrap, topic, len(events))
    got = [(r.key, r.value) for r in sorted(records, key=lambda r: (r.partition, r.offset))]
    assert sorted(got) == sorted((e.conversation_id.encode(), e.SerializeToString()) for e in events)
    for conversation in conversations:
        key = conversation.conversation_id.encode()
        partitions = {r.partition for r in records if r.key == key}
        assert partitions == {(murmur2(key) & 0x7FFFFFFF) % 4}
        in_topic = [v for k, v in got if k == key]
        sent = [e.SerializeToString() for e in events if e.conversation_id == conversation.conversation_id]
        assert in_topic == sent


def test_unknown_publisher_is_refused_before_anything_is_sent(kafka_topics) -> None:
    topic = kafka_topics.create(purpose="events")
    with pytest.raises(ValueError, match="confluent-kafka, kafka-python"):
        pipeline_bench.publish_paced(
            kafka_topics.bootstrap, topic, [Conversation().customer("hi")], 0, client="kafkajs"
        )
    assert _read(kafka_topics.bootstrap, topic, 1, timeout_s=2.0) == []
