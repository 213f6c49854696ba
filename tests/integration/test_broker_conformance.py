"""Broker conformance: the Kafka guarantees cctriage relies on, checked on the broker we ship.

Runs against the embedded broker, or against KAFKA_BOOTSTRAP_SERVERS when it is set.
"""

from __future__ import annotations

from cctriage_common.topics import ALL, ensure_topics
from kafka.admin import KafkaAdminClient


def test_topics_are_created_with_their_partitions(kafka_bootstrap, kafka_topics):
    topic = kafka_topics.create(partitions=6)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        (meta,) = admin.describe_topics([topic])
    finally:
        admin.close()
    assert sorted(p["partition_index"] for p in meta["partitions"]) == list(range(6))


def test_ensure_topics_creates_every_declared_topic_once(kafka_bootstrap, kafka_topics):
    first = ensure_topics(kafka_bootstrap, prefix=kafka_topics.prefix)
    second = ensure_topics(kafka_bootstrap, prefix=kafka_topics.prefix)
    names = {kafka_topics.prefix + spec.name for spec in ALL}
    assert first == dict.fromkeys(names, "created")
    assert second == dict.fromkeys(names, "exists")
