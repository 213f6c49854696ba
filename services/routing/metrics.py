"""Every Prometheus metric of the routing service, declared once (listed in the README).

Labels come from small fixed sets only: never conversation, customer or agent ids.
"""

from __future__ import annotations

from cctriage_routing.engine import PRIORITY_BANDS, priority_band_index
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)

REGISTRY = CollectorRegistry(auto_describe=True)
# The standard process_* (CPU seconds, resident memory, open fds, start time), python_gc_*
# and python_info series that the default registry would carry: the SRE dashboard's CPU and
# memory panels read them for every service.
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_WAIT_BUCKETS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600)

grpc_server_handled = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, by service, method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
    registry=REGISTRY,
)
grpc_server_handling_seconds = Histogram(
    "grpc_server_handling_seconds",
    "Time to handle an RPC (for streams: until the stream ends).",
    ["grpc_service", "grpc_method"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
queue_depth = Gauge(
    "routing_queue_depth_conversations",
    "Conversations waiting for an agent (offered ones excluded), by priority band.",
    ["priority_band"],
    registry=REGISTRY,
)
oldest_wait_seconds = Gauge(
    "routing_oldest_wait_seconds",
    "How long the longest-waiting conversation not yet accepted has waited, by priority band.",
    ["priority_band"],
    registry=REGISTRY,
)
wait_seconds = Histogram(
    "routing_wait_seconds",
    "Time from flag to accepted assignment, by priority band and agent tier.",
    ["priority_band", "tier"],
    buckets=_WAIT_BUCKETS,
    registry=REGISTRY,
)
assignments = Counter(
    "routing_assignments_total",
    "Accepted assignments, by agent tier and routing reason code.",
    ["tier", "reason"],
    registry=REGISTRY,
)
offers = Counter(
    "routing_offers_total",
    "Offers made, and how they ended: outcome is offered, accepted, declined or timed_out.",
    ["outcome"],
    registry=REGISTRY,
)
decisions = Counter(
    "routing_decisions_total",
    "Routing decisions, by kind (queued, offered, accepted, ...).",
    ["kind"],
    registry=REGISTRY,
)
senior_occupancy = Gauge(
    "routing_senior_occupancy_ratio",
    "Active plus offered conversations over capacity of logged-in tier-1 agents (0..1).",
    registry=REGISTRY,
)
agents_by_state = Gauge(
    "routing_agents",
    "Logged-in agents by state and tier.",
    ["state", "tier"],
    registry=REGISTRY,
)
agents_not_ready = Counter(
    "routing_agents_set_not_ready_total",
    "Agents set AWAY by the server after too many missed offers.",
    registry=REGISTRY,
)
journal_commit_seconds = Histogram(
    "routing_journal_commit_seconds",
    "Time of one journal group commit.",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
decisions_published = Counter(
    "routing_decisions_published_total",
    "Routing decisions handed to Kafka, by result: sent, failed or dropped (local buffer full).",
    ["result"],
    registry=REGISTRY,
)
ready = Gauge(
    "routing_ready", "1 once the journal is recovered and the server is SERVING.", registry=REGISTRY
)


def priority_band(priority: int) -> str:
    """Priority 0..100 in triage's four bands: 0-39 low, 40-69 medium, 70-84 high, 85+ critical."""
    return PRIORITY_BANDS[priority_band_index(priority)]
