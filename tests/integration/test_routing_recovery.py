"""kill -9 of the routing server in the middle of a load: nothing lost, nothing doubled.
Also: SIGTERM drains and exits cleanly with state kept."""

from __future__ import annotations

import os
import signal
import threading
import time

import grpc
import pytest
from cctriage.routing.v1 import routing_pb2 as pb
from cctriage.routing.v1 import routing_pb2_grpc as rpc
from cctriage_routing.testing import server_environment, server_process, start_process

CHAT = 1
AGENTS = {f"a{i}": (1 + i % 3, 10) for i in range(6)}  # id -> (tier, chat capacity)
CONVERSATIONS = 600


def _request(i: int) -> pb.RouteConversationRequest:
    return pb.RouteConversationRequest(
        idempotency_key=f"route-{i}",
        conversation_id=f"c{i}",
        tenant_id="t",
        queue="q",
        channel=CHAT,
        priority=i % 101,
        stress=0.9 if i % 3 == 0 else 0.1,
        stressed=i % 3 == 0,
        language="en",
        sequence=1,
    )


def _accepting_agent(address: str, agent_id: str, accepted: dict, stop: threading.Event) -> None:
    with grpc.insecure_channel(address) as ch:
        stub = rpc.AgentDesktopStub(ch)
        try:
            for event in stub.StreamOffers(pb.StreamOffersRequest(agent_id=agent_id)):
                if stop.is_set():
                    return
                if event.WhichOneof("event") == "offer":
                    a = stub.AcceptOffer(
                        pb.AcceptOfferRequest(agent_id=agent_id, offer_id=event.offer.offer_id)
                    )
                    accepted[a.conversation_id] = agent_id  # acknowledged assignment
        except grpc.RpcError:
            return


def _held(address: str) -> dict[str, list[str]]:
    with grpc.insecure_channel(address) as ch:
        snap = rpc.SupervisorStub(ch).GetAgentSnapshot(pb.AgentSnapshotRequest(tenant_id="t"), timeout=10)
    return {a.agent_id: list(a.conversation_ids) for a in snap.agents}


@pytest.mark.slow
@pytest.mark.parametrize("via", ["unary", "stream"])
def test_kill_9_in_the_middle_of_a_load_loses_and_doubles_nothing(tmp_path, via):
    environ = server_environment(tmp_path, ROUTING_OFFER_TIMEOUT_SECONDS="60")
    address, proc = start_process(environ)
    port = int(address.rsplit(":", 1)[1])
    with grpc.insecure_channel(address) as ch:
        desk = rpc.AgentDesktopStub(ch)
        for agent_id, (tier, cap) in AGENTS.items():
            desk.Login(
                pb.LoginRequest(
                    agent_id=agent_id,
                    tenant_id="t",
                    tier=tier,
                    languages=["en"],
                    capacities=[pb.ChannelCapacity(channel=CHAT, capacity=cap)],
                )
            )
    accepted: dict[str, str] = {}
    routed: dict[str, int] = {}
    stop = threading.Event()
    readers = [
        threading.Thread(target=_accepting_agent, args=(address, a, accepted, stop), daemon=True)
        for a in AGENTS
    ]
    for t in readers:
        t.start()

    def load(offset: int) -> None:
        with grpc.insecure_channel(address) as ch:
            stub = rpc.TriageRoutingStub(ch)
            if via == "stream":
                # Many routes in flight on one stream; an ack means that route is durable.
                def requests():
                    for i in range(offset, CONVERSATIONS, 4):
                        time.sleep(0.001)
                        yield _request(i)

                try:
                    for ack in stub.RouteStream(requests(), timeout=30):
                        routed[ack.response.conversation_id] = ack.response.status
                except grpc.RpcError:
                    return
                return
            for i in range(offset, CONVERSATIONS, 4):
                try:
                    reply = stub.RouteConversation(_request(i), timeout=5)
                except grpc.RpcError:
                    return
                routed[reply.conversation_id] = reply.status

    loaders = [threading.Thread(target=load, args=(k,), daemon=True) for k in range(4)]
    for t in loaders:
        t.start()
    deadline = time.monotonic() + 30
    while len(routed) < CONVERSATIONS // 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)  # in the middle of the load
    proc.wait(10)
    stop.set()
    for t in loaders + readers:
        t.join(10)
    acked_routes, acked_assignments = dict(routed), dict(accepted)
    assert 0 < len(acked_routes) < CONVERSATIONS, "the kill must land in the middle of the load"
    assert acked_assignments, "some assignments were acknowledged before the kill"

    with server_process(environ, port=port) as (address, _):
        held = _held(address)
        holder: dict[str, str] = {}
        for agent_id, convs in held.items():
            assert len(convs) <= AGENTS[agent_id][1], f"{agent_id} over capacity after restart"
            for c in convs:
                assert c not in holder, f"{c} assigned twice"
                holder[c] = agent_id
        for conv_id, agent_id in acked_assignments.items():
            assert holder.get(conv_id) == agent_id, f"acknowledged assignment of {conv_id} lost"
        with grpc.insecure_channel(address) as ch:
            sup = rpc.SupervisorStub(ch)
            snap = sup.GetQueueSnapshot(pb.QueueSnapshotRequest(tenant_id="t", limit=CONVERSATIONS))
            queued = {c.conversation_id: c for c in snap.conversations}
            for conv_id in acked_routes:
                assert conv_id in queued or conv_id in holder, f"acknowledged route of {conv_id} lost"
            offered = [c for c in queued.values() if c.status == pb.CONVERSATION_STATUS_OFFERED]
            if offered:  # outstanding offers came back, with their agents
                assert all(c.offered_to in AGENTS for c in offered)
            # The triage side retries everything (it cannot know what was applied): same keys.
            stub = rpc.TriageRoutingStub(ch)
            for i in range(CONVERSATIONS):
                stub.RouteConversation(_request(i), timeout=5)
            held_after = _held(address)
            snap = sup.GetQueueSnapshot(pb.QueueSnapshotRequest(tenant_id="t", limit=CONVERSATIONS))
        all_held = [c for convs in held_after.values() for c in convs]
        assert len(all_held) == len(set(all_held)), "an assignment was doubled by the retry"
        for conv_id, agent_id in holder.items():
            assert conv_id in held_after[agent_id]
        in_queue = {c.conversation_id for c in snap.conversations}
        assert in_queue.isdisjoint(all_held)
        assert in_queue | set(all_held) == {f"c{i}" for i in range(CONVERSATIONS)}


def test_sigterm_drains_and_keeps_state(tmp_path):
    environ = server_environment(tmp_path)
    with server_process(environ) as (address, proc):
        with grpc.insecure_channel(address) as ch:
            rpc.AgentDesktopStub(ch).Login(
                pb.LoginRequest(
                    agent_id="a",
                    tenant_id="t",
                    tier=1,
                    languages=["en"],
                    capacities=[pb.ChannelCapacity(channel=CHAT, capacity=1)],
                )
            )
            rpc.TriageRoutingStub(ch).RouteConversation(_request(0))
            stream = rpc.AgentDesktopStub(ch).StreamOffers(pb.StreamOffersRequest(agent_id="a"))
            next(stream)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
            assert time.monotonic() - started < 10
            assert list(stream) is not None  # the stream ended instead of hanging
    with server_process(environ) as (address, _):
        held = _held(address)
        with grpc.insecure_channel(address) as ch:
            snap = rpc.SupervisorStub(ch).GetQueueSnapshot(pb.QueueSnapshotRequest(tenant_id="t"))
        assert held == {"a": []}
        assert [(c.conversation_id, c.offered_to) for c in snap.conversations] == [("c0", "a")]
