"""Every Kafka topic cctriage uses, declared once, created through the admin API.

    cctriage-topics create      # idempotent: creates what is missing, checks what exists
    cctriage-topics describe    # declared vs. actual partitions and configs
    cctriage-topics table       # the markdown table in docs/topics.md

Topics are never auto-created: auto-creation picks the broker's default partition count (one,
on some brokers), and changing the partition count later moves keys to other partitions,
which breaks per-conversation ordering and faust table co-partitioning. Faust creates its own
``<app id>-<table>-changelog`` topics (compacted, same partition count as the source topic);
those are faust's business and are documented in docs/topics.md.

Services call ``ensure_topics(bootstrap)`` at start-up; tests call it with a unique prefix.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from collections.abc import Iterable, Sequence

from cctriage.events.v1 import events_pb2
from cctriage.routing.v1 import routing_pb2
from cctriage.triage.v1 import triage_pb2
from cctriage_common.settings import SettingsError, env_field, load

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclasses.dataclass(frozen=True)
class TopicSettings:
    prefix: str = env_field(
        "CCTRIAGE_TOPIC_PREFIX", "", "Prepended to every topic name (e.g. 'staging.'); empty in production."
    )
    partitions: int = env_field(
        "CCTRIAGE_TOPIC_PARTITIONS",
        8,
        "Partitions of every keyed topic. Fix it before go-live: changing it moves conversations.",
    )
    replication_factor: int = env_field(
        "CCTRIAGE_TOPIC_REPLICATION_FACTOR", 1, "Replicas per partition: 1 locally, 3 in production."
    )
    min_insync_replicas: int = env_field(
        "CCTRIAGE_TOPIC_MIN_INSYNC_REPLICAS",
        1,
        "min.insync.replicas per topic: 1 locally, 2 in production (with replication factor 3).",
    )

    def validate(self) -> None:
        if self.partitions < 1:
            raise SettingsError(f"CCTRIAGE_TOPIC_PARTITIONS={self.partitions} must be at least 1")
        if self.replication_factor < 1:
            raise SettingsError(
                f"CCTRIAGE_TOPIC_REPLICATION_FACTOR={self.replication_factor} must be at least 1"
            )
        if not 1 <= self.min_insync_replicas <= self.replication_factor:
            raise SettingsError(
                f"CCTRIAGE_TOPIC_MIN_INSYNC_REPLICAS={self.min_insync_replicas} must be between 1 and "
                f"CCTRIAGE_TOPIC_REPLICATION_FACTOR={self.replication_factor}"
            )


@dataclasses.dataclass(frozen=True)
class TopicSpec:
    """One topic. ``partitions=None`` means the settings' partition count."""

    name: str
    key: str
    value_type: str
    retention_ms: int
    description: str
    cleanup_policy: str = "delete"
    partitions: int | None = None

    def full_name(self, prefix: str = "") -> str:
        return f"{prefix}{self.name}"

    def partition_count(self, settings: TopicSettings) -> int:
        return self.partitions or settings.partitions

    def configs(self, settings: TopicSettings) -> dict[str, str]:
        return {
            "cleanup.policy": self.cleanup_policy,
            "retention.ms": str(self.retention_ms),
            "min.insync.replicas": str(settings.min_insync_replicas),
        }


def _type_name(message: type) -> str:
    return message.DESCRIPTOR.full_name


SUPPORT_EVENTS = TopicSpec(
    name="support-events",
    key="conversation_id (UTF-8)",
    value_type=_type_name(events_pb2.SupportEvent),
    retention_ms=7 * DAY_MS,
    description="Input: what platform teams publish (cctriage-publish). Replayable for a week.",
)
SUPPORT_EVENTS_DLQ = TopicSpec(
    name="support-events-dlq",
    key="original key, unchanged",
    value_type="original bytes, unchanged (reason in dlq.* headers)",
    retention_ms=30 * DAY_MS,
    description="Support events that failed validation or decoding; kept long enough to fix and replay.",
)
MESSAGE_SCORES = TopicSpec(
    name="message-scores",
    key="conversation_id (UTF-8)",
    value_type=_type_name(triage_pb2.MessageScore),
    retention_ms=3 * DAY_MS,
    description="One per scored customer message (model version, sentiment, emotions, stress).",
)
CONVERSATION_FLAGS = TopicSpec(
    name="conversation-flags",
    key="conversation_id (UTF-8)",
    value_type=_type_name(triage_pb2.ConversationFlag),
    retention_ms=7 * DAY_MS,
    description="Every priority change of a conversation (raised, updated, cleared, withdrawn).",
)
SUPERVISOR_ALERTS = TopicSpec(
    name="supervisor-alerts",
    key="conversation_id (UTF-8)",
    value_type=_type_name(triage_pb2.SupervisorAlert),
    retention_ms=7 * DAY_MS,
    description="Alerts for supervisors' wallboards; summaries carry no customer text.",
)
ROUTING_DECISIONS = TopicSpec(
    name="routing-decisions",
    key="conversation_id (UTF-8)",
    value_type=_type_name(routing_pb2.RoutingDecision),
    retention_ms=30 * DAY_MS,
    description="Audit trail of the routing service: offers, accepts, declines, transfers, withdrawals.",
)

ALL: tuple[TopicSpec, ...] = (
    SUPPORT_EVENTS,
    SUPPORT_EVENTS_DLQ,
    MESSAGE_SCORES,
    CONVERSATION_FLAGS,
    SUPERVISOR_ALERTS,
    ROUTING_DECISIONS,
)


class TopicMismatchError(RuntimeError):
    """A topic exists with another partition count than declared; cctriage never repartitions."""


def _admin(bootstrap: str):
    from kafka.admin import KafkaAdminClient

    return KafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="cctriage-topics", request_timeout_ms=30_000
    )


def existing_partitions(admin, names: Iterable[str]) -> dict[str, int]:
    """{topic: partition count} for those of ``names`` that exist."""
    from kafka.errors import UnknownTopicOrPartitionError

    result = {}
    for name in names:
        try:
            (meta,) = admin.describe_topics([name])
        except UnknownTopicOrPartitionError:
            continue
        if meta["error_code"] == 0 and meta["partitions"]:
            result[name] = len(meta["partitions"])
    return result


def create_topics(
    bootstrap: str,
    topics: Sequence[tuple[str, int, dict[str, str]]],
    replication_factor: int = 1,
    timeout_s: float = 30.0,
) -> dict[str, str]:
    """Create (name, partitions, configs) topics that do not exist; wait until all are usable.

    Returns {name: "created" | "exists"}. Raises TopicMismatchError if a topic exists with a
    different partition count.
    """
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = _admin(bootstrap)
    try:
        status: dict[str, str] = {}
        for name, partitions, configs in topics:
            try:
                admin.create_topics(
                    [NewTopic(name, partitions, replication_factor, topic_configs=configs)],
                    timeout_ms=int(timeout_s * 1000),
                )
                status[name] = "created"
            except TopicAlreadyExistsError:
                status[name] = "exists"
        wanted = {name: partitions for name, partitions, _ in topics}
        deadline = time.monotonic() + timeout_s
        while True:
            actual = existing_partitions(admin, wanted)
            mismatched = {n: (actual[n], p) for n, p in wanted.items() if n in actual and actual[n] != p}
            if mismatched:
                found = (f"topic {n} has {a} partitions, declared {p}" for n, (a, p) in mismatched.items())
                raise TopicMismatchError(
                    "; ".join(found)
                    + ". cctriage never changes a partition count (it would move conversations); "
                    "fix the declaration (CCTRIAGE_TOPIC_PARTITIONS) or migrate the topic deliberately."
                )
            if actual.keys() >= wanted.keys():
                return status
            if time.monotonic() > deadline:
                missing = sorted(wanted.keys() - actual.keys())
                raise TimeoutError(f"topics not visible in metadata after {timeout_s}s: {missing}")
            time.sleep(0.1)
    finally:
        admin.close()


def ensure_topics(
    bootstrap: str,
    specs: Iterable[TopicSpec] = ALL,
    prefix: str | None = None,
    settings: TopicSettings | None = None,
) -> dict[str, str]:
    """Create every declared topic that is missing (idempotent); {full name: "created" | "exists"}."""
    settings = settings or load(TopicSettings)
    prefix = settings.prefix if prefix is None else prefix
    topics = [
        (spec.full_name(prefix), spec.partition_count(settings), spec.configs(settings)) for spec in specs
    ]
    status = create_topics(bootstrap, topics, replication_factor=settings.replication_factor)
    for name, outcome in status.items():
        log.info("topic %s", outcome, extra={"topic": name})
    return status


def markdown_table(settings: TopicSettings | None = None) -> str:
    """The topics table of docs/topics.md (a unit test keeps the two in step)."""
    settings = settings or TopicSettings()
    rows = [
        "| topic | key | value | partitions | retention | cleanup | purpose |",
        "|---|---|---|---|---|---|---|",
    ]
    for spec in ALL:
        days = spec.retention_ms / DAY_MS
        retention = f"{days:g} days" if days >= 1 else f"{spec.retention_ms / HOUR_MS:g} hours"
        value = f"`{spec.value_type}`" if spec.value_type.startswith("cctriage.") else spec.value_type
        rows.append(
            f"| `{spec.name}` | {spec.key} | {value} | {spec.partition_count(settings)} | {retention} "
            f"| {spec.cleanup_policy} | {spec.description} |"
        )
    return "\n".join(rows)


def _describe(bootstrap: str, settings: TopicSettings) -> int:
    admin = _admin(bootstrap)
    try:
        names = [spec.full_name(settings.prefix) for spec in ALL]
        actual = existing_partitions(admin, names)
        problems = 0
        for spec, name in zip(ALL, names, strict=True):
            declared = spec.partition_count(settings)
            if name not in actual:
                state = "MISSING"
                problems += 1
            elif actual[name] != declared:
                state = f"MISMATCH ({actual[name]} partitions)"
                problems += 1
            else:
                state = "ok"
            print(
                f"{name:40} partitions={declared:<3} retention.ms={spec.retention_ms:<11} "
                f"cleanup={spec.cleanup_policy:<8} {state}"
            )
        return 1 if problems else 0
    finally:
        admin.close()


def main(argv: list[str] | None = None) -> int:
    """Create or inspect cctriage's topics on KAFKA_BOOTSTRAP_SERVERS.

    cctriage-topics create | describe | table
    """
    from cctriage_common.broker import BrokerSettings
    from cctriage_common.logs import configure

    parser = argparse.ArgumentParser(prog="cctriage-topics", description=main.__doc__)
    parser.add_argument("command", choices=("create", "describe", "table"))
    parser.add_argument(
        "--bootstrap", help="host:port (default: KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:9092)"
    )
    args = parser.parse_args(argv)
    try:
        settings = load(TopicSettings)
        bootstrap = args.bootstrap or load(BrokerSettings).bootstrap_servers or "127.0.0.1:9092"
    except SettingsError as exc:
        print(f"cctriage-topics: {exc}", file=sys.stderr)
        return 2
    if args.command == "table":
        print(markdown_table(settings))
        return 0
    configure("topics")
    logging.getLogger("kafka").setLevel(logging.WARNING)  # the client's connection chatter
    if args.command == "describe":
        return _describe(bootstrap, settings)
    try:
        ensure_topics(bootstrap, settings=settings)
    except (TopicMismatchError, TimeoutError) as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
