"""Publish support events from Python: validated, keyed by conversation, acknowledged by Kafka.

    from cctriage_publish.client import SupportEventPublisher

    with SupportEventPublisher("kafka-1:9092,kafka-2:9092") as publisher:
        results = publisher.publish_many(events)    # SupportEvent objects, dicts or JSON text
        for result in results:
            if not result.ok:
                print(result.event_id, result.status, result.reason)

Each event is validated with the contract's one validator (``cctriage_common.events``) before
it is sent; invalid events are returned with their errors and never reach the topic. Valid
events are serialized as protobuf and keyed by ``conversation_id``, so one conversation stays
on one partition, in the order it was published.

Durability: the project's shared producer settings (``cctriage_common.kafka``: acks=all, the
batch size the embedded broker needs), unlimited retries bounded by a delivery timeout, and the
idempotent producer whenever the broker supports it (kafka-python turns it on for brokers >=
0.11; both embedded brokers and Apache Kafka do), so a retried send never writes an event
twice. Without idempotence, in-flight requests drop to one so that a retry cannot reorder a
conversation.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from cctriage.events.v1 import events_pb2
from cctriage_common.events import (
    DEFAULT_POLICY,
    DecodedEvent,
    ValidationError,
    ValidationPolicy,
    decode_message,
)
from cctriage_common.kafka import KafkaSettings, kafka_python_producer_config
from cctriage_common.settings import env_field
from cctriage_common.topics import SUPPORT_EVENTS

log = logging.getLogger(__name__)

SupportEvent = events_pb2.SupportEvent
EventInput = SupportEvent | Mapping[str, Any] | str | bytes

CONTENT_TYPE = b"application/x-protobuf; messageType=cctriage.events.v1.SupportEvent"
Status = Literal["published", "valid", "invalid", "failed"]


@dataclasses.dataclass(frozen=True)
class PublisherSettings:
    bootstrap_servers: str = env_field(
        "KAFKA_BOOTSTRAP_SERVERS", "", "Kafka to publish to (host:port,...). Required unless --dry-run."
    )
    delivery_timeout_s: float = env_field(
        "CCTRIAGE_PUBLISH_DELIVERY_TIMEOUT_S",
        120.0,
        "Give up on an event (report it failed) if Kafka has not acknowledged it after this long.",
    )
    connect_timeout_s: float = env_field(
        "CCTRIAGE_PUBLISH_CONNECT_TIMEOUT_S",
        15.0,
        "How long to wait for the brokers and the topic's metadata at start.",
    )


class PublisherError(RuntimeError):
    """The publisher cannot work at all: brokers unreachable, topic missing, bad settings."""


@dataclasses.dataclass(frozen=True)
class PublishResult:
    """What happened to one event.

    status: ``published`` (acknowledged: partition and offset set), ``valid`` (dry run),
    ``invalid`` (``errors`` name the fields; nothing was sent) or ``failed`` (valid, but Kafka did
    not acknowledge it; ``reason`` says why; publishing it again is safe, event_id dedups).
    """

    event_id: str
    status: Status
    partition: int | None = None
    offset: int | None = None
    errors: tuple[ValidationError, ...] = ()
    failure: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("published", "valid")

    @property
    def reason(self) -> str:
        if self.errors:
            return "; ".join(str(error) for error in self.errors)
        return self.failure

    def as_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"event_id": self.event_id, "status": self.status}
        if self.partition is not None:
            entry["partition"] = self.partition
            entry["offset"] = self.offset
        if self.errors:
            entry["errors"] = [error.as_dict() for error in self.errors]
        if self.failure:
            entry["error"] = self.failure
        return entry


def _describe_failure(exc: BaseException) -> str:
    # kafka-python's messages name topics, partitions and timeouts, never record contents.
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


class PendingPublish:
    """A valid event handed to the producer; ``result()`` waits for Kafka's acknowledgement."""

    def __init__(self, event_id: str, future: Any | None = None, result: PublishResult | None = None):
        self.event_id = event_id
        self._future = future
        self._result = result

    def done(self) -> bool:
        return self._result is not None or (self._future is not None and self._future.is_done)

    def result(self, timeout: float | None = None) -> PublishResult:
        if self._result is not None:
            return self._result
        from kafka.errors import KafkaTimeoutError

        try:
            metadata = self._future.get(timeout=timeout)
        except KafkaTimeoutError:
            if not self._future.is_done:
                # Undecided, not lost: it may still land. Re-publishing it is safe (event_id dedups).
                return PublishResult(
                    self.event_id, "failed", failure=f"not acknowledged by Kafka within {timeout:g} s"
                )
            self._result = PublishResult(
                self.event_id, "failed", failure=_describe_failure(self._future.exception)
            )
        except Exception as exc:  # noqa: BLE001 - every delivery failure becomes a per-event result
            self._result = PublishResult(self.event_id, "failed", failure=_describe_failure(exc))
        else:
            self._result = PublishResult(
                self.event_id, "published", partition=metadata.partition, offset=metadata.offset
            )
        return self._result


class SupportEventPublisher:
    """Validates and publishes SupportEvents to the support-events topic.

    ``topic`` defaults to the declared support-events topic (``cctriage_common.topics``).
    ``kafka`` carries the project's shared Kafka client settings (``load(KafkaSettings)`` at
    start; the class defaults otherwise). ``producer_config`` overrides kafka-python
    KafkaProducer settings (e.g. security_protocol, ssl_cafile, sasl_*, batch_size) last.
    The topic must exist (``cctriage-topics create``): the publisher never auto-creates it.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str = SUPPORT_EVENTS.name,
        *,
        policy: ValidationPolicy = DEFAULT_POLICY,
        client_id: str = "cctriage-publish",
        delivery_timeout_s: float = 120.0,
        connect_timeout_s: float = 15.0,
        producer_config: Mapping[str, Any] | None = None,
        kafka: KafkaSettings | None = None,
    ) -> None:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        if not bootstrap_servers:
            raise PublisherError("no Kafka to publish to: set KAFKA_BOOTSTRAP_SERVERS or --bootstrap-servers")
        self.topic = topic
        self.policy = policy
        # The project's shared producer settings (cctriage_common.kafka: acks=all and the batch
        # size the embedded broker needs), plus what a publishing tool adds. One deliberate
        # difference: idempotence is left to kafka-python, which turns it on when the broker
        # supports it (measured on noida-db and Tansu, tests/integration/test_publish.py), so a
        # retried send never duplicates or reorders; the shared default turns it off for aiokafka.
        config: dict[str, Any] = kafka_python_producer_config(kafka or KafkaSettings(), client_id)
        del config["enable_idempotence"]
        config.update(
            {
                "bootstrap_servers": bootstrap_servers.split(","),
                "acks": "all",
                "delivery_timeout_ms": int(delivery_timeout_s * 1000),
                "request_timeout_ms": min(30_000, int(delivery_timeout_s * 1000)),
                "max_block_ms": int(connect_timeout_s * 1000),
                "bootstrap_timeout_ms": int(connect_timeout_s * 1000),
                "allow_auto_create_topics": False,
            }
        )
        config.update(producer_config or {})
        # Look the topic up in a list of all topics before anything asks for it by name: both
        # embedded brokers create a topic on a by-name metadata request even when the client
        # says allow_auto_create_topics=False (measured), and a one-partition auto-created
        # support-events topic would silently break per-conversation scaling.
        self._require_topic(config, topic, bootstrap_servers)
        try:
            producer = KafkaProducer(**config)
            if (
                not producer.config["enable_idempotence"]
                and "max_in_flight_requests_per_connection" not in config
            ):
                # No sequence numbers: a retried batch could overtake the next one. Keep order.
                producer.close(timeout=5)
                producer = KafkaProducer(**config, max_in_flight_requests_per_connection=1)
        except KafkaError as exc:
            raise PublisherError(
                f"cannot reach Kafka at {bootstrap_servers}: {_describe_failure(exc)}"
            ) from exc
        self._producer = producer
        try:
            partitions = producer.partitions_for(topic)
        except KafkaError as exc:
            producer.close(timeout=5)
            raise PublisherError(f"topic {topic!r} is not available ({_describe_failure(exc)})") from exc
        self.partitions = len(partitions)
        log.info(
            "publisher ready",
            extra={"topic": topic, "partitions": self.partitions, "idempotent": self.idempotent},
        )

    @staticmethod
    def _require_topic(config: Mapping[str, Any], topic: str, bootstrap_servers: str) -> None:
        from kafka.admin import KafkaAdminClient
        from kafka.errors import KafkaError

        admin_config = {k: v for k, v in config.items() if k in KafkaAdminClient.DEFAULT_CONFIG}
        admin_config["client_id"] = f"{config['client_id']}-check"
        try:
            admin = KafkaAdminClient(**admin_config)
            try:
                topics = set(admin.list_topics())
            finally:
                admin.close()
        except KafkaError as exc:
            raise PublisherError(
                f"cannot reach Kafka at {bootstrap_servers}: {_describe_failure(exc)}"
            ) from exc
        if topic not in topics:
            raise PublisherError(
                f"topic {topic!r} does not exist on {bootstrap_servers}; create it with "
                "`cctriage-topics create` (the publisher never auto-creates it)"
            )

    @property
    def idempotent(self) -> bool:
        """True when the broker accepted the idempotent producer (no duplicates on retry)."""
        return bool(self._producer.config["enable_idempotence"])

    def validate(self, event: EventInput) -> DecodedEvent:
        return decode_message(event, self.policy)

    def send(self, event: EventInput) -> PendingPublish:
        """Validate and hand one event to the producer without waiting for the acknowledgement."""
        decoded = self.validate(event)
        if not decoded.ok:
            return PendingPublish(
                decoded.event_id, result=PublishResult(decoded.event_id, "invalid", errors=decoded.errors)
            )
        return self.send_valid(decoded.event)

    def send_valid(self, event: SupportEvent) -> PendingPublish:
        """Send an event that already passed validation (e.g. by the CLI, which reports it per line)."""
        try:
            future = self._producer.send(
                self.topic,
                key=event.conversation_id.encode("utf-8"),
                value=event.SerializeToString(deterministic=True),
                headers=[("content-type", CONTENT_TYPE), ("event-id", event.event_id.encode("utf-8"))],
            )
        except Exception as exc:  # noqa: BLE001 - buffer full, metadata timeout, closed producer
            return PendingPublish(
                event.event_id, result=PublishResult(event.event_id, "failed", failure=_describe_failure(exc))
            )
        return PendingPublish(event.event_id, future=future)

    def publish(self, event: EventInput, timeout: float | None = None) -> PublishResult:
        """Validate, send and wait for the acknowledgement of one event."""
        pending = self.send(event)
        return pending.result(timeout=timeout)

    def publish_many(self, events: Iterable[EventInput], timeout: float | None = None) -> list[PublishResult]:
        """Publish events in order; one result per event, in the same order."""
        from kafka.errors import KafkaTimeoutError

        # Validate everything first, then send in a tight loop: interleaving slow validation with
        # send() makes kafka-python open more, smaller batches, each waking its sender thread
        # (measured: twice as slow).
        decoded = [self.validate(event) for event in events]
        pending = [
            self.send_valid(item.event)
            if item.ok
            else PendingPublish(
                item.event_id, result=PublishResult(item.event_id, "invalid", errors=item.errors)
            )
            for item in decoded
        ]
        try:
            self._producer.flush(timeout=timeout)
        except KafkaTimeoutError:
            pass  # what is still unacknowledged is reported per event below
        return [item.result(timeout=0 if timeout is not None else None) for item in pending]

    def flush(self, timeout: float | None = None) -> None:
        self._producer.flush(timeout=timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Deliver what is buffered (up to ``timeout``), then close the connections."""
        self._producer.close(timeout=timeout)

    def __enter__(self) -> SupportEventPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
