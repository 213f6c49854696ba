"""Shared fixtures: one real Kafka-protocol broker per test session, fresh names per test.

    def test_something(kafka_bootstrap, kafka_topics):
        topic = kafka_topics.create(partitions=4)       # unique, created via the admin API
        group = kafka_topics.group_id                   # unique consumer group for this test
        other = kafka_topics.new_group_id()             # another one, e.g. for a second app
        ensure_topics(kafka_bootstrap, prefix=kafka_topics.prefix)  # all project topics, private copy

``kafka_bootstrap`` starts the embedded broker (cctriage_common.broker) once per session and
stops it at the end, unless KAFKA_BOOTSTRAP_SERVERS names an external Kafka. Tests never
share a topic or a group, so they need no cleanup and can run against a long-lived Kafka.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Iterator

import pytest
from cctriage_common.broker import kafka_broker
from cctriage_common.topics import create_topics


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """The broker's bootstrap string, e.g. 127.0.0.1:40123; it has answered ApiVersions."""
    with kafka_broker() as bootstrap:
        yield bootstrap


@dataclasses.dataclass
class KafkaTopics:
    """Per-test topic factory: ``create()`` makes a uniquely named topic; ``group_id`` is unique too."""

    bootstrap: str
    prefix: str
    group_id: str
    created: list[str] = dataclasses.field(default_factory=list)

    def name(self, purpose: str = "topic") -> str:
        """A unique topic name (not created)."""
        return f"{self.prefix}{purpose}-{uuid.uuid4().hex[:6]}"

    def create(
        self, partitions: int = 1, purpose: str = "topic", configs: dict[str, str] | None = None
    ) -> str:
        """Create a unique topic with ``partitions`` partitions; return its name."""
        name = self.name(purpose)
        create_topics(self.bootstrap, [(name, partitions, configs or {})])
        self.created.append(name)
        return name

    def new_group_id(self) -> str:
        return f"{self.group_id}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def kafka_topics(kafka_bootstrap: str, request: pytest.FixtureRequest) -> KafkaTopics:
    test = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[:40].strip("-")
    unique = f"t-{test}-{uuid.uuid4().hex[:8]}"
    return KafkaTopics(bootstrap=kafka_bootstrap, prefix=f"{unique}.", group_id=f"g-{unique}")
