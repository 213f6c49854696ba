"""Kafka client settings shared by every cctriage service: one place, proven by the conformance tests.

    settings = load(KafkaSettings)
    producer = AIOKafkaProducer(**producer_config(settings))
    consumer = AIOKafkaConsumer(topic, **consumer_config(settings, group_id="cctriage-routing"))
    app = faust.App("cctriage-triage", **faust_config(settings, load(TopicSettings)))

The defaults are what the shipped embedded broker (Tansu, see docs/broker.md) needs so that no
record is lost; tests/integration/test_broker_conformance.py proves them. On Apache Kafka in
production, raise the producer batch size (CCTRIAGE_KAFKA_PRODUCER_MAX_BATCH_BYTES=65536,
CCTRIAGE_KAFKA_PRODUCER_LINGER_MS=5) for throughput; the other defaults suit it as they are.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cctriage_common.settings import SettingsError, env_field
from cctriage_common.topics import TopicSettings


@dataclasses.dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = env_field(
        "KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092", "Kafka bootstrap servers, host:port[,host:port]."
    )
    session_timeout_ms: int = env_field(
        "CCTRIAGE_KAFKA_SESSION_TIMEOUT_MS",
        6000,
        "Consumer group session timeout: a dead member's partitions move after this long. Tansu makes "
        "every joining member wait half of it, so keep it short.",
    )
    heartbeat_interval_ms: int = env_field(
        "CCTRIAGE_KAFKA_HEARTBEAT_INTERVAL_MS",
        1000,
        "Consumer heartbeat interval (at most 1/3 of the session).",
    )
    rebalance_timeout_ms: int = env_field(
        "CCTRIAGE_KAFKA_REBALANCE_TIMEOUT_MS", 20000, "How long a rebalance waits for members to rejoin."
    )
    producer_max_batch_bytes: int = env_field(
        "CCTRIAGE_KAFKA_PRODUCER_MAX_BATCH_BYTES",
        1,
        "Producer batch size. 1 = one record per batch: required on the embedded Tansu broker, whose "
        "end offsets are wrong for multi-record batches. 65536 on Apache Kafka.",
    )
    producer_linger_ms: int = env_field(
        "CCTRIAGE_KAFKA_PRODUCER_LINGER_MS",
        0,
        "Producer linger; only useful with batches larger than 1 byte.",
    )
    commit_interval_s: float = env_field(
        "CCTRIAGE_KAFKA_COMMIT_INTERVAL_S", 1.0, "How often faust commits processed offsets."
    )

    def validate(self) -> None:
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise SettingsError(
                f"CCTRIAGE_KAFKA_HEARTBEAT_INTERVAL_MS={self.heartbeat_interval_ms} must be at most a third "
                f"of CCTRIAGE_KAFKA_SESSION_TIMEOUT_MS={self.session_timeout_ms}"
            )
        if self.producer_max_batch_bytes < 1:
            raise SettingsError(
                f"CCTRIAGE_KAFKA_PRODUCER_MAX_BATCH_BYTES={self.producer_max_batch_bytes} must be at least 1"
            )


def producer_config(settings: KafkaSettings, client_id: str = "cctriage") -> dict[str, Any]:
    """Keyword arguments for aiokafka.AIOKafkaProducer.

    acks=all so a record is only confirmed once the in-sync replicas have it. Idempotence is off:
    Tansu rejects InitProducerId, and duplicates are handled downstream by event ids and
    idempotency keys (at-least-once end to end).
    """
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": client_id,
        "acks": "all",
        "max_batch_size": settings.producer_max_batch_bytes,
        "linger_ms": settings.producer_linger_ms,
        "enable_idempotence": False,
    }


def kafka_python_producer_config(settings: KafkaSettings, client_id: str = "cctriage") -> dict[str, Any]:
    """The same producer guarantees for kafka-python's KafkaProducer (used by synchronous tools)."""
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": client_id,
        "acks": "all",
        "batch_size": settings.producer_max_batch_bytes,
        "linger_ms": settings.producer_linger_ms,
        "enable_idempotence": False,
    }


def consumer_config(
    settings: KafkaSettings, group_id: str | None, client_id: str = "cctriage"
) -> dict[str, Any]:
    """Keyword arguments for aiokafka.AIOKafkaConsumer.

    Offsets are committed by the application after processing (at-least-once), never on a timer.
    """
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": client_id,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
        "rebalance_timeout_ms": settings.rebalance_timeout_ms,
    }


def faust_config(settings: KafkaSettings, topics: TopicSettings) -> dict[str, Any]:
    """Keyword arguments for faust.App (add the app's own id, web port and store).

    Faust creates its table changelog topics itself (compacted, topics.partitions partitions);
    the project's own topics must already exist (cctriage_common.topics.ensure_topics).

    The broker URLs name cctriage_common.faust_transport: faust's aiokafka transport with the
    fix for records handed out across the post-rebalance seek, which faust 0.15 commits as a
    "gap" without processing (events lost after a worker is killed and restarted; see
    docs/broker.md, "faust loses records around the post-rebalance seek").
    """
    from cctriage_common import faust_transport  # imports faust: only for faust apps

    scheme = faust_transport.register()
    return {
        "broker": ";".join(f"{scheme}://{server}" for server in settings.bootstrap_servers.split(",")),
        "broker_session_timeout": settings.session_timeout_ms / 1000,
        "broker_heartbeat_interval": settings.heartbeat_interval_ms / 1000,
        "broker_rebalance_timeout": settings.rebalance_timeout_ms / 1000,
        "broker_commit_interval": settings.commit_interval_s,
        "producer_max_batch_size": settings.producer_max_batch_bytes,
        "producer_linger": settings.producer_linger_ms / 1000,
        "producer_acks": -1,
        "processing_guarantee": "at_least_once",
        "consumer_auto_offset_reset": "earliest",
        "topic_partitions": topics.partitions,
        "topic_replication_factor": topics.replication_factor,
    }
