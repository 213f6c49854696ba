"""Settings of the triage worker: one frozen object, read from the environment once at start.

The stress policy's own numbers live in ``policy.PolicyConfig`` (``TRIAGE_POLICY_*``) and are
carried inside ``TriageSettings.policy``; ``load_settings()`` reads both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from cctriage_common.settings import SettingsError, env_field, load
from cctriage_triage.policy import PolicyConfig


@dataclasses.dataclass(frozen=True)
class TriageSettings:
    app_id: str = env_field(
        "TRIAGE_APP_ID", "cctriage-triage",
        "faust app id: the consumer group and the prefix of the table changelog topic.",
    )
    bootstrap_servers: str = env_field(
        "KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092", "Kafka bootstrap servers (host:port,...)."
    )
    topic_prefix: str = env_field(
        "CCTRIAGE_TOPIC_PREFIX", "", "Prepended to every topic name (as cctriage-topics does)."
    )
    partitions: int = env_field(
        "CCTRIAGE_TOPIC_PARTITIONS", 8, "Partitions of the keyed topics; the state table uses the same."
    )
    create_topics: bool = env_field(
        "TRIAGE_CREATE_TOPICS", True, "Create missing topics at start-up (idempotent)."
    )
    web_bind: str = env_field("TRIAGE_WEB_BIND", "127.0.0.1", "Address of /healthz, /readyz, /metrics.")
    web_port: int = env_field(
        "TRIAGE_WEB_PORT", 6066, "Port of the web server; distinct per worker on a host."
    )
    data_dir: str = env_field("TRIAGE_DATA_DIR", "var/triage", "faust's working directory for this worker.")
    routing_target: str = env_field(
        "TRIAGE_ROUTING_TARGET", "127.0.0.1:50051", "host:port of the routing service (TriageRouting)."
    )
    routing_token: str = env_field(
        "TRIAGE_ROUTING_TOKEN", "",
        "Bearer token sent to the routing service (its principal must be 'triage'); empty = none.",
    )
    routing_timeout_s: float = env_field(
        "TRIAGE_ROUTING_TIMEOUT_S", 2.0, "Deadline of one routing call, in seconds."
    )
    routing_backoff_initial_s: float = env_field(
        "TRIAGE_ROUTING_BACKOFF_INITIAL_S", 0.1, "First retry delay after a failed routing call."
    )
    routing_backoff_max_s: float = env_field(
        "TRIAGE_ROUTING_BACKOFF_MAX_S", 5.0, "Longest retry delay (doubling from the initial one)."
    )
    model_dir: str = env_field(
        "CCTRIAGE_MODEL_DIR", "", "Directory of the ONNX sentiment model; empty = the bundled model."
    )
    model_threads: int = env_field("TRIAGE_MODEL_THREADS", 2, "ONNX Runtime intra-op threads.")
    batch_size: int = env_field(
        "TRIAGE_BATCH_SIZE", 32, "Most events taken from Kafka for one ONNX run."
    )
    batch_within_s: float = env_field(
        "TRIAGE_BATCH_WITHIN_S", 0.005,
        "Longest wait to fill a batch, in seconds (latency paid when traffic is light).",
    )
    commit_interval_s: float = env_field(
        "TRIAGE_COMMIT_INTERVAL_S", 1.0, "How often processed offsets are committed, in seconds."
    )
    session_timeout_s: float = env_field(
        "TRIAGE_SESSION_TIMEOUT_S", 6.0,
        "Kafka consumer session timeout: how soon a dead worker's partitions move.",
    )
    producer_max_batch_size: int = env_field(
        "TRIAGE_PRODUCER_MAX_BATCH_SIZE", 16384,
        "Producer batch size in bytes (1 = one record per batch, needed on the tansu broker).",
    )
    log_level: str = env_field("TRIAGE_LOG_LEVEL", "info", "Log level.")
    policy: PolicyConfig = dataclasses.field(default_factory=PolicyConfig)

    def validate(self) -> None:
        if self.batch_size < 1:
            raise SettingsError(f"TRIAGE_BATCH_SIZE={self.batch_size} must be at least 1")
        if self.partitions < 1:
            raise SettingsError(f"CCTRIAGE_TOPIC_PARTITIONS={self.partitions} must be at least 1")
        if self.routing_backoff_initial_s <= 0 or self.routing_backoff_max_s < self.routing_backoff_initial_s:
            raise SettingsError(
                "need 0 < TRIAGE_ROUTING_BACKOFF_INITIAL_S <= TRIAGE_ROUTING_BACKOFF_MAX_S"
            )

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"


def load_settings(environ: Mapping[str, str] | None = None) -> TriageSettings:
    """The worker's settings and policy from the environment; SettingsError names a bad variable."""
    return dataclasses.replace(load(TriageSettings, environ), policy=load(PolicyConfig, environ))
