"""Every Prometheus metric of the triage worker (listed in services/triage/README.md).

Labels come from small fixed sets only: never a conversation, customer or agent id.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
RATIO_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))

EVENTS = Counter(
    "cctriage_triage_events_total",
    "Support events processed (outputs written, offset committable), by outcome: scored (customer "
    "message), applied (other events), duplicate (event id seen before), dead_lettered (late events of "
    "conversations no longer in the table included: reason late_event), after_close.",
    ["outcome"],
)
INFERENCE_BATCH_SIZE = Histogram(
    "cctriage_triage_inference_batch_size_messages",
    "Customer messages per ONNX run.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
INFERENCE_DURATION = Histogram(
    "cctriage_triage_inference_duration_seconds",
    "Duration of one ONNX run.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
MODEL_ERRORS = Counter(
    "cctriage_triage_model_errors_total",
    "ONNX runs that raised; the batch is then scored message by message, and a message that "
    "still fails is dead-lettered (reason processing_failed).",
)
MESSAGE_STRESS = Histogram(
    "cctriage_triage_message_stress_ratio", "Per-message stress 0..1 of scored customer messages.",
    buckets=RATIO_BUCKETS,
)
MESSAGE_SENTIMENT = Histogram(
    "cctriage_triage_message_sentiment_ratio", "Per-message sentiment probabilities 0..1.",
    ["sentiment"], buckets=RATIO_BUCKETS,
)
EVENT_TO_FLAG = Histogram(
    "cctriage_triage_event_to_flag_seconds",
    "From the support event's Kafka timestamp to its flag written to Kafka.",
    buckets=LATENCY_BUCKETS,
)
EVENT_TO_ROUTE = Histogram(
    "cctriage_triage_event_to_route_seconds",
    "From the support event's Kafka timestamp to the routing service acknowledging the flag's call.",
    buckets=LATENCY_BUCKETS,
)
FLAGS = Counter(
    "cctriage_triage_flags_total", "Conversation flags written, by action and priority band.",
    ["action", "band"],
)
ALERTS = Counter("cctriage_triage_alerts_total", "Supervisor alerts written, by severity.", ["severity"])
ROUTING_CALLS = Counter(
    "cctriage_triage_routing_calls_total",
    "Routing calls, by rpc and outcome: ok, duplicate (idempotency key seen), stale (newer sequence "
    "applied), retry (transient failure, will retry), rejected (permanent failure, skipped).",
    ["rpc", "outcome"],
)
ROUTING_CALL_DURATION = Histogram(
    "cctriage_triage_routing_call_duration_seconds", "Duration of one routing call attempt.",
    ["rpc"], buckets=LATENCY_BUCKETS,
)
ROUTING_PENDING = Gauge(
    "cctriage_triage_routing_pending_flags",
    "1 while the flag at the head of the delivery queue waits for the routing service to come back.",
)
ROUTING_HANDOFFS = Counter(
    "cctriage_triage_routing_handoffs_total",
    "Flags handed to the routing call in process once written: called (no fetch of the flag "
    "needed), left_to_agent (routing failed or catching up; the route_flags agent calls in topic order).",
    ["result"],
)
DEAD_LETTERS = Counter(
    "cctriage_triage_dead_letters_total",
    "Support events sent to the dead-letter topic, by reason code.",
    ["reason"],
)
CONSUMER_LAG = Gauge(
    "cctriage_triage_consumer_lag_messages",
    "Records not yet read by this worker on its assigned partitions, by topic role.",
    ["topic"],
)
MODEL_INFO = Gauge("cctriage_triage_model_info", "1 for the loaded model version.", ["version"])
READY = Gauge("cctriage_triage_ready", "1 when the model is loaded and partitions are assigned.")
TABLE_CONVERSATIONS = Gauge(
    "cctriage_triage_table_conversations",
    "Conversations in this worker's conversation table (its partitions): open ones, and closed "
    "ones within the grace.",
)
EVICTED_CONVERSATIONS = Counter(
    "cctriage_triage_evicted_conversations_total",
    "Conversations deleted from the table (a changelog tombstone), by reason: closed (the grace "
    "after the close passed), idle (no event for the idle TTL; withdrawn from routing if routed).",
    ["reason"],
)
# Both reasons exist from the start (0), so a rate() over them has a series before the first one.
for _reason in ("closed", "idle"):
    EVICTED_CONVERSATIONS.labels(_reason)
