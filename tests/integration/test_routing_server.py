"""The routing gRPC server on port 0 with real clients: offers, accept, timeout, re-offer,
decline, complete, transfer, snapshots, health, reflection, metrics, Kafka decisions."""

from __future__ import annotations

import queue
import threading
import time
import urllib.request

import grpc
import pytest
from cctriage.routing.v1 import routing_pb2 as pb
from cctriage.routing.v1 import routing_pb2_grpc as rpc
from cctriage_routing.testing import in_process_server
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

CHAT = 1


class Desktop:
    """An agent's desktop: logs in, reads its offer stream on a thread."""

    def __init__(
        self, channel: grpc.Channel, agent_id: str, tier: int = 1, capacity: int = 2, **login
    ) -> None:
        self.stub = rpc.AgentDesktopStub(channel)
        self.agent_id = agent_id
        self.stub.Login(
            pb.LoginRequest(
                agent_id=agent_id,
                tenant_id="t",
                tier=tier,
                languages=["en"],
                skills=[pb.AgentSkill(skill="billing", proficiency=5)],
                capacities=[pb.ChannelCapacity(channel=CHAT, capacity=capacity)],
                **login,
            )
        )
        self.events: queue.Queue = queue.Queue()
        self.stream = self.stub.StreamOffers(pb.StreamOffersRequest(agent_id=agent_id))
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for event in self.stream:
                self.events.put(event)
        except grpc.RpcError:
            pass

    def next(self, kind: str, timeout: float = 5.0):
        deadline = time.monotonic() + timeout
        while True:
            event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if event.WhichOneof("event") == kind:
                return getattr(event, kind)

    def close(self) -> None:
        self.stream.cancel()


def route(stub, conv_id: str, stressed: bool = True, seq: int = 1, skills=(("billing", 3),), **kw):
    return stub.RouteConversation(
        pb.RouteConversationRequest(
            idempotency_key=f"{conv_id}:{seq}",
            conversation_id=conv_id,
            tenant_id="t",
            queue="billing",
            channel=CHAT,
            priority=70,
            stress=0.9 if stressed else 0.2,
            stressed=stressed,
            language="en",
            sequence=seq,
            reasons=[pb.Reason(code="anger", detail="anger 0.91", value=0.91)],
            required_skills=[pb.SkillRequirement(skill=s, min_proficiency=p) for s, p in skills],
            **kw,
        )
    )


@pytest.fixture
def server(tmp_path):
    with in_process_server(
        tmp_path, ROUTING_OFFER_TIMEOUT_SECONDS="1", ROUTING_REOFFER_COOLDOWN_SECONDS="30"
    ) as s:
        yield s


@pytest.fixture
def channel(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch


def test_health_is_serving_and_reflection_lists_the_services(server, channel):
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "cctriage.routing.v1.TriageRouting"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for r in replies for s in r.list_services_response.service}
    assert {"cctriage.routing.v1.TriageRouting", "cctriage.routing.v1.AgentDesktop"} <= names


def test_offer_stream_accept_complete_and_snapshots(server, channel):
    triage = rpc.TriageRoutingStub(channel)
    desk = Desktop(channel, "senior-1", tier=1, capacity=3)
    assert desk.next("status").state == pb.AGENT_STATE_AVAILABLE
    reply = route(triage, "c1")
    assert reply.status == pb.CONVERSATION_STATUS_OFFERED and reply.agent_id == "senior-1"
    offer = desk.next("offer")
    assert offer.conversation_id == "c1" and offer.routing_reason.startswith("tier 1, skill")
    assert offer.reasons[0].code == "anger"
    assignment = desk.stub.AcceptOffer(pb.AcceptOfferRequest(agent_id="senior-1", offer_id=offer.offer_id))
    assert assignment.conversation_id == "c1" and assignment.tier == 1
    sup = rpc.SupervisorStub(channel)
    agents = sup.GetAgentSnapshot(pb.AgentSnapshotRequest(tenant_id="t"))
    assert list(agents.agents[0].conversation_ids) == ["c1"]
    assert agents.senior_occupancy_ratio == pytest.approx(1 / 3)
    route(triage, "c2", stressed=True)  # second senior slot
    route(triage, "c3", stressed=False, skills=())  # calm: the last free slot is the reserve
    snap = sup.GetQueueSnapshot(pb.QueueSnapshotRequest(tenant_id="t"))
    assert snap.waiting == 1 and snap.waiting_stressed == 0
    waiting = [c for c in snap.conversations if c.status == pb.CONVERSATION_STATUS_WAITING]
    assert [c.conversation_id for c in waiting] == ["c3"] and waiting[0].effective_priority >= 70
    status = desk.stub.CompleteConversation(
        pb.CompleteConversationRequest(agent_id="senior-1", conversation_id="c1")
    )
    assert "c1" not in status.conversation_ids
    desk.close()


def test_offer_times_out_and_goes_to_the_next_agent_then_agent_goes_away(server, channel):
    triage = rpc.TriageRoutingStub(channel)
    sleepy = Desktop(channel, "sleepy", tier=1, capacity=1)
    route(triage, "c1")
    first = sleepy.next("offer")
    awake = Desktop(channel, "awake", tier=1, capacity=1)
    revoked = sleepy.next("revoked", timeout=5)  # 1 s offer timeout
    assert revoked.offer_id == first.offer_id and revoked.reason == pb.OFFER_END_REASON_TIMED_OUT
    second = awake.next("offer", timeout=5)
    assert second.conversation_id == "c1"
    with pytest.raises(grpc.RpcError) as err:
        sleepy.stub.AcceptOffer(pb.AcceptOfferRequest(agent_id="sleepy", offer_id=first.offer_id))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    awake.stub.AcceptOffer(pb.AcceptOfferRequest(agent_id="awake", offer_id=second.offer_id))
    route(triage, "c2")
    sleepy.next("offer")
    deadline = time.monotonic() + 5  # second miss in a row: AWAY, "missed offers"
    while True:
        status = sleepy.next("status")
        if status.state == pb.AGENT_STATE_AWAY or time.monotonic() > deadline:
            break
    assert status.state == pb.AGENT_STATE_AWAY and status.state_reason == "missed offers"
    sleepy.close()
    awake.close()


def test_decline_reoffers_and_transfer_moves_the_conversation(server, channel):
    triage = rpc.TriageRoutingStub(channel)
    a = Desktop(channel, "a", tier=1, capacity=1)
    route(triage, "c1")
    offer = a.next("offer")
    b = Desktop(channel, "b", tier=1, capacity=1)
    a.stub.DeclineOffer(pb.DeclineOfferRequest(agent_id="a", offer_id=offer.offer_id, reason="busy"))
    offer_b = b.next("offer")
    assert offer_b.conversation_id == "c1"
    b.stub.AcceptOffer(pb.AcceptOfferRequest(agent_id="b", offer_id=offer_b.offer_id))
    moved = b.stub.TransferConversation(
        pb.TransferConversationRequest(agent_id="b", conversation_id="c1", target_agent_id="a")
    )
    assert moved.status == pb.CONVERSATION_STATUS_OFFERED
    assert a.next("offer").conversation_id == "c1"
    a.close()
    b.close()


def test_idempotent_route_and_stale_updates_over_grpc(server, channel):
    triage = rpc.TriageRoutingStub(channel)
    first = route(triage, "c1", seq=3)
    again = route(triage, "c1", seq=3)
    assert again.duplicate and again.conversation_id == first.conversation_id
    stale = triage.UpdateConversation(
        pb.UpdateConversationRequest(idempotency_key="u1", conversation_id="c1", sequence=2, priority=10)
    )
    assert stale.stale
    done = triage.WithdrawConversation(
        pb.WithdrawConversationRequest(
            idempotency_key="w1", conversation_id="c1", sequence=4, reason=pb.WITHDRAW_REASON_DEESCALATED
        )
    )
    assert done.status == pb.CONVERSATION_STATUS_WITHDRAWN


@pytest.mark.parametrize(
    ("call", "code", "text"),
    [
        (
            lambda t, d: d.Login(pb.LoginRequest(agent_id="x", tenant_id="t", tier=7, languages=["en"])),
            grpc.StatusCode.INVALID_ARGUMENT,
            "tier must be 1..3",
        ),
        (
            lambda t, d: d.Login(
                pb.LoginRequest(
                    agent_id="x",
                    tenant_id="t",
                    tier=1,
                    languages=["en"],
                    capacities=[pb.ChannelCapacity(channel=CHAT, capacity=0)],
                )
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "capacities[0].capacity must be positive",
        ),
        (
            lambda t, d: d.SetState(pb.SetStateRequest(agent_id="ghost", state=pb.AGENT_STATE_BUSY)),
            grpc.StatusCode.NOT_FOUND,
            "unknown agent ghost",
        ),
        (
            lambda t, d: t.UpdateConversation(
                pb.UpdateConversationRequest(conversation_id="nope", sequence=1)
            ),
            grpc.StatusCode.NOT_FOUND,
            "unknown conversation nope",
        ),
        (
            lambda t, d: t.RouteConversation(pb.RouteConversationRequest(conversation_id="c", tenant_id="t")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "queue is required",
        ),
        (
            lambda t, d: t.RouteConversations(
                pb.RouteConversationsRequest(
                    requests=[
                        pb.RouteConversationRequest(
                            conversation_id="ok", tenant_id="t", queue="q", channel=CHAT, language="en"
                        ),
                        pb.RouteConversationRequest(
                            conversation_id="bad", tenant_id="t", queue="q", channel=CHAT
                        ),
                    ]
                )
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "requests[1].language is required",
        ),
    ],
)
def test_bad_requests_get_clear_status_codes(channel, call, code, text):
    with pytest.raises(grpc.RpcError) as err:
        call(rpc.TriageRoutingStub(channel), rpc.AgentDesktopStub(channel))
    assert err.value.code() == code and text in err.value.details()


def test_duplicate_login_is_already_exists(channel):
    d = Desktop(channel, "dup")
    with pytest.raises(grpc.RpcError) as err:
        Desktop(channel, "dup")
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    d.close()


def test_batch_route_applies_each_item_once(channel):
    triage = rpc.TriageRoutingStub(channel)
    items = [
        pb.RouteConversationRequest(
            idempotency_key=f"b{i}",
            conversation_id=f"b{i}",
            tenant_id="t",
            queue="q",
            channel=CHAT,
            priority=50,
            language="en",
        )
        for i in range(5)
    ]
    reply = triage.RouteConversations(pb.RouteConversationsRequest(requests=items))
    assert [r.conversation_id for r in reply.responses] == [f"b{i}" for i in range(5)]
    again = triage.RouteConversations(pb.RouteConversationsRequest(requests=items))
    assert all(r.duplicate for r in again.responses)


def test_route_stream_acks_every_route_in_order_once_and_refuses_bad_ones_alone(server, channel):
    triage = rpc.TriageRoutingStub(channel)
    desk = Desktop(channel, "s1", tier=1, capacity=1)

    def request(key: str, conv: str, language: str = "en", stressed: bool = False):
        return pb.RouteConversationRequest(
            idempotency_key=key,
            conversation_id=conv,
            tenant_id="t",
            queue="billing",
            channel=CHAT,
            priority=60,
            stressed=stressed,
            stress=0.9 if stressed else 0.2,
            language=language,
            sequence=1,
        )

    requests = [
        request("k0", "s0", stressed=True),
        request("k1", "s1"),
        request("k2", "s2", language=""),  # invalid: refused alone, the stream goes on
        request("k3", "s3"),
        request("k0", "s0", stressed=True),  # a retry of the first: same answer, no second offer
    ]
    acks = list(triage.RouteStream(iter(requests), timeout=10))
    assert [a.idempotency_key for a in acks] == ["k0", "k1", "k2", "k3", "k0"]
    assert acks[0].response.status == pb.CONVERSATION_STATUS_OFFERED and acks[0].response.agent_id == "s1"
    assert acks[1].response.status == pb.CONVERSATION_STATUS_WAITING
    assert acks[2].error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "language" in acks[2].error_message and not acks[2].HasField("response")
    assert acks[3].response.conversation_id == "s3"
    assert acks[4].response.duplicate and acks[4].response.agent_id == "s1"
    assert desk.next("offer").conversation_id == "s0"
    # What the stream acknowledged is state the unary API sees: the same key is a duplicate.
    again = route(triage, "s0")
    assert again.status == pb.CONVERSATION_STATUS_OFFERED
    snapshot = rpc.SupervisorStub(channel).GetQueueSnapshot(pb.QueueSnapshotRequest())
    assert snapshot.waiting == 2  # s1 and s3; s2 was never queued
    body = (
        urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).read().decode()
    )
    assert 'grpc_server_handled_total{grpc_code="OK",grpc_method="RouteStream"' in body
    desk.close()


def test_route_stream_acks_what_it_applied_then_ends_unavailable_on_stop(tmp_path):
    outgoing: queue.Queue = queue.Queue()

    def requests():
        while (item := outgoing.get()) is not None:
            yield item

    with in_process_server(tmp_path) as s:
        with grpc.insecure_channel(f"127.0.0.1:{s.port}") as ch:
            acks = rpc.TriageRoutingStub(ch).RouteStream(requests(), timeout=30)
            for i in range(3):
                outgoing.put(
                    pb.RouteConversationRequest(
                        idempotency_key=f"x{i}",
                        conversation_id=f"x{i}",
                        tenant_id="t",
                        queue="q",
                        channel=CHAT,
                        language="en",
                        sequence=1,
                    )
                )
                assert next(acks).response.conversation_id == f"x{i}"
            stopped = threading.Thread(target=s.stop, kwargs={"grace": 5.0})
            started = time.monotonic()
            stopped.start()
            with pytest.raises(grpc.RpcError) as err:
                next(acks)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "resend" in err.value.details()
            stopped.join(10)
            assert time.monotonic() - started < 3.0  # ends the stream, does not sit out the grace
            outgoing.put(None)


def _stream_request(i: int) -> pb.RouteConversationRequest:
    return pb.RouteConversationRequest(
        idempotency_key=f"w{i}",
        conversation_id=f"w{i}",
        tenant_id="t",
        queue="q",
        channel=CHAT,
        language="en",
        sequence=1,
    )


def _applied(s) -> int:
    with s.lock:
        return len(s.engine.conversations)


def test_route_stream_acks_nothing_before_its_commit_and_reads_at_most_the_window_ahead(
    tmp_path, monkeypatch
):
    from cctriage_routing import server as routing_server

    class Arrived(queue.SimpleQueue):
        """The stream's queue of requests read off the wire, counting them."""

        read = 0

        def put(self, item, *args, **kwargs):
            if item is not None:
                Arrived.read += 1
            super().put(item, *args, **kwargs)

    monkeypatch.setattr(routing_server, "STREAM_WINDOW", 20)
    with in_process_server(tmp_path) as s:
        committing = threading.Event()
        write = s.journal._write

        def held_write(db, items):  # a slow disk: commits wait until the test lets them
            committing.wait(10)
            write(db, items)

        monkeypatch.setattr(s.journal, "_write", held_write)
        monkeypatch.setattr(routing_server.queue, "SimpleQueue", Arrived)
        with grpc.insecure_channel(f"127.0.0.1:{s.port}") as ch:
            requests = [_stream_request(i) for i in range(60)]
            acks = rpc.TriageRoutingStub(ch).RouteStream(iter(requests), timeout=30)
            first: queue.Queue = queue.Queue()
            threading.Thread(target=lambda: first.put(next(acks)), daemon=True).start()
            deadline = time.monotonic() + 5
            while Arrived.read < 20 and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.3)
            assert _applied(s) > 0 and first.empty(), "routes applied, none acked before the commit"
            assert Arrived.read == 20, "nothing acked: the stream reads no more than the window"
            committing.set()
            keys = [first.get(timeout=10).idempotency_key] + [a.idempotency_key for a in acks]
        assert keys == [f"w{i}" for i in range(60)]
        assert Arrived.read == 60


def test_oldest_wait_gauge_is_the_engines_oldest_wait(tmp_path):
    from cctriage_routing import metrics

    def gauge() -> list[float]:
        return [metrics.oldest_wait_seconds.labels(b)._value.get() for b in metrics.PRIORITY_BANDS]  # noqa: SLF001

    with in_process_server(tmp_path) as s, grpc.insecure_channel(f"127.0.0.1:{s.port}") as ch:
        stub = rpc.TriageRoutingStub(ch)
        now = time.time()
        for conv_id, priority, waited in (("o1", 10, 30.0), ("o2", 90, 120.0), ("o3", 95, 5.0)):
            flagged = Timestamp()
            flagged.FromNanoseconds(int((now - waited) * 1e9))
            stub.RouteConversation(
                pb.RouteConversationRequest(
                    idempotency_key=conv_id,
                    conversation_id=conv_id,
                    tenant_id="t",
                    queue="q",
                    channel=CHAT,
                    priority=priority,
                    language="en",
                    sequence=1,
                    flagged_at=flagged,
                )
            )
        s.refresh_gauges()
        with s.lock:
            expected = s.engine.oldest_wait_by_band()
        assert gauge() == pytest.approx(expected, abs=1.0)
        assert gauge()[0] == pytest.approx(30.0, abs=2.0) and gauge()[3] == pytest.approx(120.0, abs=2.0)


def test_metrics_endpoint_has_rpc_and_domain_metrics(server, channel):
    d = Desktop(channel, "m1", tier=1, capacity=2)
    offer_stub = rpc.TriageRoutingStub(channel)
    route(offer_stub, "c1")
    offer = d.next("offer")
    d.stub.AcceptOffer(pb.AcceptOfferRequest(agent_id="m1", offer_id=offer.offer_id))
    with pytest.raises(grpc.RpcError):
        d.stub.SetState(pb.SetStateRequest(agent_id="ghost", state=pb.AGENT_STATE_BUSY))
    server.refresh_gauges()
    body = (
        urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).read().decode()
    )
    assert 'grpc_server_handled_total{grpc_code="NOT_FOUND",grpc_method="SetState"' in body
    assert 'grpc_server_handling_seconds_bucket{grpc_method="RouteConversation"' in body
    assert 'routing_assignments_total{reason="bullseye",tier="1"}' in body
    assert 'routing_wait_seconds_bucket{le="1.0",priority_band="high",tier="1"}' in body
    assert "routing_senior_occupancy_ratio 0.5" in body
    assert 'routing_queue_depth_conversations{priority_band="critical"}' in body
    # The standard process series the SRE dashboard's CPU and memory panels read.
    assert "process_cpu_seconds_total " in body and "process_resident_memory_bytes " in body
    assert "m1" not in body and "c1" not in body  # no ids in labels
    d.close()


def test_every_decision_is_published_to_kafka(tmp_path, kafka_bootstrap, kafka_topics):
    from kafka import KafkaConsumer

    topic = kafka_topics.create(partitions=1, purpose="routing-decisions")
    with in_process_server(
        tmp_path, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, ROUTING_DECISIONS_TOPIC=topic
    ) as s:
        with grpc.insecure_channel(f"127.0.0.1:{s.port}") as ch:
            d = Desktop(ch, "k1", tier=1, capacity=2)
            route(rpc.TriageRoutingStub(ch), "kc1")
            offer = d.next("offer")
            d.stub.AcceptOffer(pb.AcceptOfferRequest(agent_id="k1", offer_id=offer.offer_id))
            d.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=kafka_topics.group_id,
        consumer_timeout_ms=15000,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    kinds = {}
    for record in consumer:
        decision = pb.RoutingDecision.FromString(record.value)
        kinds[decision.kind] = decision
        if pb.DECISION_KIND_ACCEPTED in kinds:
            break
    consumer.close()
    assert {pb.DECISION_KIND_QUEUED, pb.DECISION_KIND_OFFERED, pb.DECISION_KIND_ACCEPTED} <= set(kinds)
    accepted = kinds[pb.DECISION_KIND_ACCEPTED]
    assert accepted.conversation_id == "kc1" and accepted.agent_id == "k1" and accepted.tier == 1
    assert accepted.reason.startswith("tier 1, skill") and accepted.triage_reasons[0].code == "anger"


def test_health_is_not_serving_before_recovery_and_after_stop(tmp_path):
    from cctriage_common.settings import load
    from cctriage_routing.server import RoutingServer
    from cctriage_routing.settings import RoutingSettings
    from cctriage_routing.testing import server_environment

    server = RoutingServer(load(RoutingSettings, server_environment(tmp_path)))
    request = health_pb2.HealthCheckRequest(service="cctriage.routing.v1.TriageRouting")
    assert server.health.Check(request, None).status == health_pb2.HealthCheckResponse.NOT_SERVING
    server.start()
    assert server.health.Check(request, None).status == health_pb2.HealthCheckResponse.SERVING
    server.stop(grace=0.5)
    assert server.health.Check(request, None).status == health_pb2.HealthCheckResponse.NOT_SERVING
