"""The simulator's own Prometheus metrics (the services expose theirs on their own endpoints)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EVENTS_PUBLISHED = Counter(
    "cctriage_sim_events_published_total",
    "Support events the traffic generator handed to Kafka, by channel and outcome "
    "(published, invalid, failed).",
    ["channel", "outcome"],
)
CONVERSATIONS_STARTED = Counter(
    "cctriage_sim_conversations_started_total",
    "Conversations the traffic generator opened, by persona (plain, tricky_calm, escalating, calming, "
    "repeat, anxious).",
    ["persona"],
)
REACTIONS = ("accepted", "declined", "ignored", "completed", "ended", "error")
AGENT_REACTIONS = Counter(
    "cctriage_sim_agent_reactions_total",
    "What simulated agents did with offers (accepted, declined, ignored) and how their work ended "
    "(completed by the agent, ended by the customer closing first, error).",
    ["reaction"],
)
FLAG_TO_AGENT = Histogram(
    "cctriage_sim_flag_to_agent_seconds",
    "From triage raising a flag on a conversation to an agent accepting it, by the agent's tier, as the "
    "demo observes it on the flags and routing-decisions topics.",
    ["tier"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
)
