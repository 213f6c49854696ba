"""The simulated agent pool against a real routing server (in-process, gRPC on port 0, auth on)."""

from __future__ import annotations

import asyncio
import random
import time

import grpc
from cctriage.events.v1 import events_pb2
from cctriage.routing.v1 import routing_pb2, routing_pb2_grpc
from cctriage_routing.testing import running_server
from cctriage_sim.agents import AgentBehaviour, AgentPool, PoolEvent, build_roster

TRIAGE, SUPERVISOR = "triage-token", "supervisor-token"


def tokens(roster) -> str:
    pairs = [f"{TRIAGE}=triage", f"{SUPERVISOR}=supervisor"]
    return ",".join(pairs + [f"tok-{a.agent_id}=agent:{a.agent_id}" for a in roster])


def route(stub, conversation_id: str, stressed: bool = True, skill: str = "billing") -> None:
    stub.RouteConversation(
        routing_pb2.RouteConversationRequest(
            idempotency_key=f"route-{conversation_id}",
            conversation_id=conversation_id,
            tenant_id="acme-telecom",
            queue=skill,
            channel=events_pb2.CHANNEL_CHAT,
            priority=85 if stressed else 20,
            stress=0.9 if stressed else 0.1,
            stressed=stressed,
            required_skills=[routing_pb2.SkillRequirement(skill=skill)],
            language="en",
            sequence=1,
            reasons=[routing_pb2.Reason(code="anger", detail="anger 0.91", value=0.91)],
        ),
        metadata=(("authorization", f"Bearer {TRIAGE}"),),
        timeout=5,
    )


async def run_pool(address, roster, behaviour_for, until, conversations=(), timeout=15.0) -> list[PoolEvent]:
    """Run the pool; once every agent is logged in, route ``conversations`` as triage would.

    Returns what the agents did, once ``until(events)`` holds (or at the timeout).
    """
    events: list[PoolEvent] = []
    stop = asyncio.Event()
    pool = AgentPool(
        address,
        roster,
        events.append,
        metadata_for=lambda agent_id: (("authorization", f"Bearer tok-{agent_id}"),),
        behaviour_for=behaviour_for,
    )
    task = asyncio.ensure_future(pool.run(stop))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while sum(e.kind == "logged_in" for e in events) < len(roster) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        with grpc.insecure_channel(address) as channel:
            stub = routing_pb2_grpc.TriageRoutingStub(channel)
            for conversation_id in conversations:
                await asyncio.to_thread(route, stub, conversation_id)
        while not until(events) and loop.time() < deadline:
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    return events


def snapshot(address) -> routing_pb2.AgentSnapshot:
    with grpc.insecure_channel(address) as channel:
        return routing_pb2_grpc.SupervisorStub(channel).GetAgentSnapshot(
            routing_pb2.AgentSnapshotRequest(tenant_id="acme-telecom"),
            metadata=(("authorization", f"Bearer {SUPERVISOR}"),),
            timeout=5,
        )


def test_agents_log_in_take_a_stressed_conversation_work_it_and_complete(tmp_path):
    roster = build_roster(4, seed=2)  # tier 1 and tiers below
    # Handling takes 2.5-7.5 s: longer than the agent's two-second guard on statuses.
    fast = lambda profile: AgentBehaviour(random.Random(profile.agent_id), accept=1.0, decline=0.0, pace=0.25)  # noqa: E731
    with running_server(tmp_path, ROUTING_AUTH_ENABLED="1", ROUTING_AUTH_TOKENS=tokens(roster)) as address:
        events = asyncio.run(
            run_pool(
                address,
                roster,
                fast,
                lambda events: any(e.kind == "completed" for e in events),
                conversations=["conv-stressed-1"],
            )
        )
        agents_after = snapshot(address)

    kinds = [(e.kind, e.conversation_id) for e in events]
    assert sum(e.kind == "logged_in" for e in events) == len(roster)
    accepted = [e for e in events if e.kind == "accepted"]
    assert len(accepted) == 1 and accepted[0].conversation_id == "conv-stressed-1"
    assert accepted[0].tier == 1, "a stressed conversation goes to a senior first"
    assert accepted[0].detail, "the routing reason travels with the assignment"
    assert ("completed", "conv-stressed-1") in kinds
    assert ("ended", "conv-stressed-1") not in kinds, "completing is not the customer closing"
    assert not [e for e in events if e.kind == "error"], events
    # Logged out at the end: the pool leaves nobody behind on the server.
    assert all(a.state == routing_pb2.AGENT_STATE_OFFLINE for a in agents_after.agents)


def test_an_agent_who_lets_offers_time_out_is_set_away_and_comes_back(tmp_path):
    roster = [a for a in build_roster(4, seed=2) if a.tier == 1][:1]
    absent = lambda profile: AgentBehaviour(random.Random(1), accept=0.0, decline=0.0, pace=0.05)  # noqa: E731
    with running_server(
        tmp_path,
        ROUTING_AUTH_ENABLED="1",
        ROUTING_AUTH_TOKENS=tokens(roster),
        ROUTING_OFFER_TIMEOUT_SECONDS="0.5",
        ROUTING_MAX_MISSED_OFFERS="1",
        ROUTING_REOFFER_COOLDOWN_SECONDS="0",
    ) as address:
        events = asyncio.run(
            run_pool(
                address,
                roster,
                absent,
                lambda events: any(e.kind == "back" for e in events),
                conversations=["conv-missed-1"],
            )
        )
    kinds = [e.kind for e in events]
    assert "ignored" in kinds and "revoked" in kinds, kinds
    assert kinds.index("ignored") < kinds.index("back"), "set away after the missed offer, then back"


def test_a_declined_offer_goes_to_the_next_agent(tmp_path):
    roster = [a for a in build_roster(6, seed=2) if a.tier == 1][:2]
    first = roster[0].agent_id

    def behaviour_for(profile):
        if profile.agent_id == first:
            return AgentBehaviour(random.Random(1), accept=0.0, decline=1.0, pace=0.05)
        return AgentBehaviour(random.Random(2), accept=1.0, decline=0.0, pace=0.05)

    with running_server(tmp_path, ROUTING_AUTH_ENABLED="1", ROUTING_AUTH_TOKENS=tokens(roster)) as address:
        events = asyncio.run(
            run_pool(
                address,
                roster,
                behaviour_for,
                lambda events: sum(e.kind == "accepted" for e in events) >= 2,
                conversations=[f"conv-declined-{n}" for n in range(2)],
            )
        )
    accepted = [e for e in events if e.kind == "accepted"]
    assert len(accepted) == 2 and all(e.agent_id != first for e in accepted)
    declined = [e for e in events if e.kind == "declined"]
    assert declined and all(e.agent_id == first and e.detail for e in declined)


def test_a_conversation_the_customer_closes_ends_the_agents_work_and_starts_wrap_up(tmp_path):
    roster = [a for a in build_roster(4, seed=2) if a.tier == 1][:1]
    # Chat handling takes 10-30 s: the customer leaves first (after 2.5 s).
    slow = lambda profile: AgentBehaviour(random.Random(3), accept=1.0, decline=0.0, pace=1.0)  # noqa: E731
    with running_server(tmp_path, ROUTING_AUTH_ENABLED="1", ROUTING_AUTH_TOKENS=tokens(roster)) as address:
        closed_at: list[float] = []

        def close(events) -> bool:
            """Triage withdraws the conversation (closed) a while after the agent took it."""
            accepted = [e for e in events if e.kind == "accepted"]
            if accepted and not closed_at:
                closed_at.append(time.monotonic() + 2.5)  # past the agent's two-second guard
            if closed_at and closed_at[0] <= time.monotonic() and len(closed_at) == 1:
                closed_at.append(0.0)
                with grpc.insecure_channel(address) as channel:
                    routing_pb2_grpc.TriageRoutingStub(channel).WithdrawConversation(
                        routing_pb2.WithdrawConversationRequest(
                            idempotency_key="close-conv-closed-1",
                            conversation_id="conv-closed-1",
                            sequence=2,
                            reason=routing_pb2.WITHDRAW_REASON_CLOSED,
                        ),
                        metadata=(("authorization", f"Bearer {TRIAGE}"),),
                        timeout=5,
                    )
            if not any(e.kind == "ended" for e in events):
                return False
            states.append(snapshot(address).agents[0].state)
            return states[-1] == routing_pb2.AGENT_STATE_WRAP_UP

        states: list[int] = []
        events = asyncio.run(
            run_pool(address, roster, slow, close, conversations=["conv-closed-1"], timeout=20)
        )
    kinds = [e.kind for e in events]
    assert "accepted" in kinds and "ended" in kinds, kinds
    assert "completed" not in kinds and "error" not in kinds, events
    assert states[-1] == routing_pb2.AGENT_STATE_WRAP_UP, "after-contact work once the customer left"
