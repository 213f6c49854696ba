"""The demo's live view fed by a real routing server through the real broker.

The routing server publishes its decisions to Kafka; the demo's topic watcher reads them and
the live state shows who was routed to whom and why, and the supervisor snapshots give the
agents' occupancy by tier.
"""

from __future__ import annotations

import asyncio
import random

import grpc
from cctriage.events.v1 import events_pb2
from cctriage.routing.v1 import routing_pb2, routing_pb2_grpc
from cctriage_common.topics import ROUTING_DECISIONS, ensure_topics
from cctriage_routing.testing import running_server
from cctriage_sim.agents import AgentBehaviour, AgentPool, build_roster
from cctriage_sim.demo import poll_snapshots, watch_topics
from cctriage_sim.view import LiveState


def route(stub, conversation_id: str) -> None:
    """What triage does for a stressed conversation."""
    stub.RouteConversation(
        routing_pb2.RouteConversationRequest(
            idempotency_key=f"route-{conversation_id}",
            conversation_id=conversation_id,
            tenant_id="acme-telecom",
            queue="billing",
            channel=events_pb2.CHANNEL_CHAT,
            priority=85,
            stress=0.9,
            stressed=True,
            required_skills=[routing_pb2.SkillRequirement(skill="billing")],
            language="en",
            sequence=1,
        ),
        timeout=5,
    )


def test_routing_decisions_reach_the_live_view_with_their_reason(tmp_path, kafka_bootstrap, kafka_topics):
    ensure_topics(kafka_bootstrap, specs=[ROUTING_DECISIONS], prefix=kafka_topics.prefix)
    decisions_topic = ROUTING_DECISIONS.full_name(kafka_topics.prefix)
    roster = build_roster(4, seed=2)
    state = LiveState()

    def everybody_in() -> bool:
        return state.agents is not None and len(state.agents.agents) == len(roster)

    def behaviour(profile):
        return AgentBehaviour(random.Random(profile.agent_id), accept=1.0, decline=0.0, pace=0.5)

    with running_server(
        tmp_path, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, ROUTING_DECISIONS_TOPIC=decisions_topic
    ) as address:

        async def scenario() -> None:
            decode = routing_pb2.RoutingDecision.FromString
            pool = AgentPool(address, roster, state.on_pool, behaviour_for=behaviour)
            stop = asyncio.Event()
            watching = asyncio.Event()
            tasks = [
                asyncio.ensure_future(
                    watch_topics(
                        kafka_bootstrap,
                        {decisions_topic: lambda v: state.on_decision(decode(v))},
                        stop,
                        watching,
                    )
                ),
                asyncio.ensure_future(poll_snapshots(address, "acme-telecom", state, stop, every_s=0.3)),
                asyncio.ensure_future(pool.run(stop)),
            ]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            try:
                await asyncio.wait_for(watching.wait(), 15)
                while not everybody_in() and loop.time() < deadline:
                    await asyncio.sleep(0.1)
                with grpc.insecure_channel(address) as channel:
                    await asyncio.to_thread(route, routing_pb2_grpc.TriageRoutingStub(channel), "conv-view-1")
                while not state.accepted_by_tier and loop.time() < deadline:
                    await asyncio.sleep(0.1)
                # One more snapshot after the acceptance, for occupancy.
                await asyncio.sleep(0.8)
            finally:
                stop.set()
                await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 15)

        asyncio.run(scenario())

    assert dict(state.accepted_by_tier) == {1: 1}
    routed = [line for line in state.lines if line.startswith("ROUTED")]
    assert len(routed) == 1 and "-> agent-" in routed[0] and "(tier 1)" in routed[0]
    reason = routed[0].split(": ", 1)[1]
    assert reason and not reason.startswith("-"), "the routing service's reason is shown"
    assert state.decisions["offered"] >= 1 and state.decisions["accepted"] == 1
    occupancy = state.occupancy_by_tier()
    assert occupancy[1]["logged_in"] >= 1 and occupancy[1]["with_conversations"] == 1
    assert occupancy[1]["active"] == 1 and occupancy[1]["capacity"] > 1
    assert "t1 1/" in state.status_line()
