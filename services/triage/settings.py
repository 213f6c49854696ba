"""Settings of the triage worker: one frozen object, read from the environment once at start.

The stress policy's numbers (``policy.PolicyConfig``, ``TRIAGE_POLICY_*``), the shared Kafka
client settings (``cctriage_common.kafka``, ``CCTRIAGE_KAFKA_*``) and the topic settings
(``cctriage_common.topics``, ``CCTRIAGE_TOPIC_*``) travel inside ``TriageSettings``;
``load_settings()`` reads them all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from cctriage_common.kafka import KafkaSettings
from cctriage_common.settings import SettingsError, env_field, load
from cctriage_common.topics import TopicSettings
from cctriage_triage.policy import PolicyConfig

EVENT_LOOPS = ("uvloop", "asyncio")


@dataclasses.dataclass(frozen=True)
class TriageSettings:
    app_id: str = env_field(
        "TRIAGE_APP_ID", "cctriage-triage",
        "faust app id: the consumer group and the prefix of the table changelog topic.",
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
    model_threads: int = env_field(
        "TRIAGE_MODEL_THREADS", 1,
        "ONNX Runtime intra-op threads per scoring thread. 1 with TRIAGE_MODEL_PARALLEL_RUNS=2 on "
        "2 cores: a lone message costs less CPU than on 2 threads and two batches are scored at "
        "once (README Benchmark, session 5); with several workers per host, cores / workers in total.",
    )
    model_spinning: bool = env_field(
        "TRIAGE_MODEL_SPINNING", False,
        "Let ONNX Runtime's extra intra-op threads busy-wait between runs (TRIAGE_MODEL_THREADS > 1 "
        "only). Off: spinning threads took the cores the event loop needed.",
    )
    model_parallel_runs: int = env_field(
        "TRIAGE_MODEL_PARALLEL_RUNS", 2,
        "Batches scored at once, each on its own thread with TRIAGE_MODEL_THREADS intra-op "
        "threads: a batch taken while another is in the model starts at once instead of "
        "queueing behind it; decisions and writes stay in event order.",
    )
    batch_size: int = env_field(
        "TRIAGE_BATCH_SIZE", 64,
        "Most events taken from Kafka at once; their customer messages are scored together.",
    )
    model_batch_size: int = env_field(
        "TRIAGE_MODEL_BATCH_SIZE", 8,
        "Most messages per ONNX run: a batch's messages are sorted by length and cut into runs "
        "of at most this many where padding costs less than another run (`batching.cut_runs`).",
    )
    gil_switch_interval_s: float = env_field(
        "TRIAGE_GIL_SWITCH_INTERVAL_S", 0.005,
        "Python's thread switch interval (5 ms is Python's own default). With two scoring threads, "
        "0.5 ms forced a GIL hand-over between the event loop and faust's consumer thread every "
        "0.5 ms: at 200 messages/s p99 event-to-route was worse in 4 of 5 alternating pairs "
        "(median 427 vs 290 ms) and the worker spent ~2.5% more CPU (triage README, session 11).",
    )
    event_loop: str = env_field(
        "TRIAGE_EVENT_LOOP", "uvloop",
        "asyncio event loop of the worker and of faust's consumer thread: uvloop or asyncio (the "
        "standard library's). uvloop: 5% less CPU per message in all, lower in 3 of 3 alternating "
        "pairs at 115 messages/s (triage README, session 13).",
    )
    gc_thresholds: tuple[int, ...] = env_field(
        "TRIAGE_GC_THRESHOLDS", (50_000, 20, 10),
        "Python's garbage-collector thresholds, as `gc.set_threshold` takes them: generation 0 is "
        "collected after this many more container allocations than frees, generation 1 after that "
        "many generation-0 runs, 2 after that many generation-1 runs (Python's own: 700,10,10). "
        "With 50000,20,10 the worker used 2-5% less CPU per message in 6 of 6 alternating pairs "
        "at 196 messages/s, p99 better in 5 (triage README, session 14).",
    )
    fetch_max_wait_ms: int = env_field(
        "TRIAGE_FETCH_MAX_WAIT_MS", 20,
        "Longest a fetch waits on an idle broker; keeps each Kafka hop short on brokers that hold fetches.",
    )
    routing_handoff: bool = env_field(
        "TRIAGE_ROUTING_HANDOFF", True,
        "Make a flag's routing call in process as soon as the flag is written, instead of only "
        "when the route_flags agent reads it back from the topic (one broker fetch less per "
        "flag; the agent still acks it only after routing acknowledged). Off: calls come from "
        "the topic only.",
    )
    closed_grace_s: float = env_field(
        "TRIAGE_CLOSED_GRACE_S", 600.0,
        "Seconds of event time a closed conversation's state stays in the table after its last "
        "event, so late events (a duplicate close, a late message) still find it; then it is "
        "deleted (a changelog tombstone). Also how far an unknown conversation's event may lag the "
        "partition's newest event before it is dropped as late. Keep it above "
        "CCTRIAGE_EVENT_MAX_FUTURE_SKEW_S plus the publishers' normal delay.",
    )
    idle_ttl_s: float = env_field(
        "TRIAGE_IDLE_TTL_S", 86400.0,
        "Seconds of event time without an event after which an open conversation (no close came) "
        "is expired: withdrawn from routing as abandoned if it was routed, and deleted. 0 = never.",
    )
    log_level: str = env_field("TRIAGE_LOG_LEVEL", "info", "Log level.")
    # Loaded by load_settings() from their own environment variables (README tables).
    policy: PolicyConfig = dataclasses.field(default_factory=PolicyConfig)
    kafka: KafkaSettings = dataclasses.field(default_factory=KafkaSettings)
    topics: TopicSettings = dataclasses.field(default_factory=TopicSettings)

    def validate(self) -> None:
        if self.closed_grace_s <= 0:
            raise SettingsError(f"TRIAGE_CLOSED_GRACE_S={self.closed_grace_s} must be positive")
        if self.idle_ttl_s != 0 and self.idle_ttl_s <= self.closed_grace_s:
            raise SettingsError(
                f"TRIAGE_IDLE_TTL_S={self.idle_ttl_s} must be 0 (never) or above TRIAGE_CLOSED_GRACE_S"
            )
        if self.batch_size < 1:
            raise SettingsError(f"TRIAGE_BATCH_SIZE={self.batch_size} must be at least 1")
        if not 0 < self.gil_switch_interval_s <= 0.1:
            raise SettingsError(
                f"TRIAGE_GIL_SWITCH_INTERVAL_S={self.gil_switch_interval_s} must be in (0, 0.1]"
            )
        if self.event_loop not in EVENT_LOOPS:
            raise SettingsError(
                f"TRIAGE_EVENT_LOOP={self.event_loop!r} must be one of {', '.join(EVENT_LOOPS)}"
            )
        if len(self.gc_thresholds) != 3 or min(self.gc_thresholds) < 1:
            raise SettingsError(
                f"TRIAGE_GC_THRESHOLDS={','.join(map(str, self.gc_thresholds))} must be three positive "
                "integers (generations 0, 1 and 2), e.g. 50000,20,10"
            )
        if self.model_parallel_runs < 1:
            raise SettingsError(f"TRIAGE_MODEL_PARALLEL_RUNS={self.model_parallel_runs} must be at least 1")
        if self.model_batch_size < 1:
            raise SettingsError(f"TRIAGE_MODEL_BATCH_SIZE={self.model_batch_size} must be at least 1")
        if self.routing_backoff_initial_s <= 0 or self.routing_backoff_max_s < self.routing_backoff_initial_s:
            raise SettingsError(
                "need 0 < TRIAGE_ROUTING_BACKOFF_INITIAL_S <= TRIAGE_ROUTING_BACKOFF_MAX_S"
            )

    def topic(self, name: str) -> str:
        return f"{self.topics.prefix}{name}"

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka.bootstrap_servers

    @property
    def partitions(self) -> int:
        return self.topics.partitions


def load_settings(environ: Mapping[str, str] | None = None) -> TriageSettings:
    """The worker's settings and policy from the environment; SettingsError names a bad variable."""
    return dataclasses.replace(
        load(TriageSettings, environ),
        policy=load(PolicyConfig, environ),
        kafka=load(KafkaSettings, environ),
        topics=load(TopicSettings, environ),
    )
