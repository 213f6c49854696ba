"""A real Prometheus scrapes the running services and evaluates the shipped alert rules.

Debian's `prometheus` binary (installed by .ci/run) scrapes every second; the tests read the
series back through its HTTP API (/api/v1/query), the way Grafana and the alert rules do.
"""

from __future__ import annotations

import queue
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cctriage.events.v1 import events_pb2
from cctriage.routing.v1 import routing_pb2, routing_pb2_grpc
from prometheus_support import Prometheus, free_port, running_prometheus

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None,
    reason="prometheus missing: apt-get install prometheus (.ci/run does it)",
)

CHAT = events_pb2.CHANNEL_CHAT


def _login(desktop, agent_id: str, tier: int) -> None:
    desktop.Login(routing_pb2.LoginRequest(
        agent_id=agent_id, tenant_id="acme", tier=tier, languages=["en"],
        skills=[routing_pb2.AgentSkill(skill="billing", proficiency=8)],
        capacities=[routing_pb2.ChannelCapacity(channel=CHAT, capacity=1)],
    ), timeout=5)


def _route(triage, conversation_id: str, priority: int, stressed: bool) -> None:
    triage.RouteConversation(routing_pb2.RouteConversationRequest(
        idempotency_key=f"{conversation_id}-1", conversation_id=conversation_id, tenant_id="acme",
        queue="billing", channel=CHAT, priority=priority, stress=0.9 if stressed else 0.1, stressed=stressed,
        required_skills=[routing_pb2.SkillRequirement(skill="billing")], language="en", sequence=1,
    ), timeout=5)


@pytest.fixture
def routing_process(tmp_path: Path) -> Iterator[tuple[str, int, object]]:
    from cctriage_routing.testing import server_environment, server_process

    metrics_port = free_port()
    environ = server_environment(tmp_path, ROUTING_METRICS_PORT=str(metrics_port),
                                 ROUTING_BULLSEYE_WIDEN_SECONDS="600", ROUTING_OFFER_TIMEOUT_SECONDS="600")
    with server_process(environ) as (address, process):
        yield address, metrics_port, process


def _first_offer(desktop, agent_id: str, offers: queue.Queue) -> threading.Thread:
    def listen() -> None:
        stream = desktop.StreamOffers(routing_pb2.StreamOffersRequest(agent_id=agent_id), timeout=30)
        try:
            for event in stream:
                if event.WhichOneof("event") == "offer":
                    offers.put(event.offer)
                    return
        except grpc.RpcError:
            return
        finally:
            stream.cancel()

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    return thread


def _total(prom: Prometheus, promql: str) -> float:
    value = prom.value(promql)
    return 0.0 if value is None else value


def test_prometheus_scrapes_the_router_and_the_rules_see_it(tmp_path: Path, routing_process) -> None:
    address, metrics_port, process = routing_process
    with running_prometheus(tmp_path, {"cctriage-routing": [f"127.0.0.1:{metrics_port}"]}) as prom, \
            grpc.insecure_channel(address) as channel:
        # Traffic starts after the first scrape, so rate() sees it as an increase.
        prom.wait_for('up{job="cctriage-routing"} == 1')
        desktop = routing_pb2_grpc.AgentDesktopStub(channel)
        triage = routing_pb2_grpc.TriageRoutingStub(channel)
        for agent_id, tier in (("senior-a", 1), ("senior-b", 1), ("junior-a", 3)):
            _login(desktop, agent_id, tier)
        offers: queue.Queue = queue.Queue()
        listener = _first_offer(desktop, "senior-a", offers)
        # A labelled series appears with its first call: scrape it once before the rest, so
        # that rate() over the histogram sees the later calls as an increase.
        _route(triage, "calm-0", priority=10, stressed=False)
        prom.wait_for('grpc_server_handled_total{grpc_method="RouteConversation"} == 1')
        for i in range(3):
            _route(triage, f"stressed-{i}", priority=90, stressed=True)
        _route(triage, "calm-1", priority=10, stressed=False)
        offer = offers.get(timeout=15)
        assert offer.stressed
        accept = routing_pb2.AcceptOfferRequest(agent_id="senior-a", offer_id=offer.offer_id)
        desktop.AcceptOffer(accept, timeout=5)
        listener.join(10)

        # The scrape sees what the clients did: 5 routing calls, 3 agents, 1 senior assignment.
        prom.wait_for('sum(grpc_server_handled_total{job="cctriage-routing", '
                      'grpc_method="RouteConversation", grpc_code="OK"}) == 5')
        prom.wait_for('sum(routing_assignments_total{job="cctriage-routing", tier="1"}) == 1')
        prom.wait_for('sum(routing_wait_seconds_count{job="cctriage-routing", priority_band="critical"})'
                      " == 1")
        # Gauges (refreshed by the router on its own tick).
        prom.wait_for('sum(routing_agents{job="cctriage-routing"}) == 3')
        prom.wait_for('sum(routing_agents{job="cctriage-routing", tier="1"}) == 2')
        # Two senior seats for three stressed customers: one is accepted, one offered, one waits.
        prom.wait_for('sum(routing_queue_depth_conversations{priority_band="critical"}) == 1')
        prom.wait_for("max(routing_senior_occupancy_ratio) > 0")
        prom.wait_for("histogram_quantile(0.99, sum by (le) (rate("
                      'grpc_server_handling_seconds_bucket{grpc_method="RouteConversation"}[1m]))) > 0')

        # Every shipped rule evaluates cleanly against the real series.
        rules = prom.rules()
        assert rules and all(rule["health"] == "ok" for rule in rules), [
            (r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
        alerts = {a["metric"]["alertname"]: a["metric"]["alertstate"] for a in prom.query("ALERTS")}
        # No triage job is scraped here: the "no worker" alert is on its way (pending for 5m).
        assert alerts.get("CctriageTriageWorkersAbsent") == "pending"
        assert "CctriageRoutingDown" not in alerts

        # Stop the router: Prometheus records it down and the down alert starts.
        process.terminate()
        process.wait(15)
        prom.wait_for('up{job="cctriage-routing"} == 0')
        prom.wait_for('ALERTS{alertname="CctriageRoutingDown", alertstate="pending"}')


@pytest.mark.slow
def test_prometheus_scrapes_the_pipeline_during_a_short_run(
    tmp_path: Path, kafka_bootstrap: str, kafka_topics
) -> None:
    """Broker, router and a triage worker with the real model; an escalating customer, a calm
    one and a malformed event. Prometheus sees the traffic, the dead letter, the route call and
    its latency, and, with no agent logged in, the "no senior agent" alert on its way."""
    from cctriage_common.topics import TopicSettings, ensure_topics
    from cctriage_routing.testing import server_environment, server_process
    from triage_support import CALM, ESCALATING, Conversation, publish, worker_factory

    token = "prometheus-test-triage-token"
    prefix = kafka_topics.prefix
    ensure_topics(kafka_bootstrap, prefix=prefix, settings=TopicSettings(prefix=prefix, partitions=2))
    routing_metrics = free_port()
    environ = server_environment(tmp_path, ROUTING_METRICS_PORT=str(routing_metrics),
                                 ROUTING_AUTH_ENABLED="1", ROUTING_AUTH_TOKENS=f"{token}=triage")
    with server_process(environ) as (routing_address, _), \
            worker_factory(kafka_bootstrap, prefix, tmp_path, routing_address, partitions=2,
                           extra_env={"TRIAGE_ROUTING_TOKEN": token, "TRIAGE_CREATE_TOPICS": "0"}) as workers:
        worker = workers.start().wait_ready(90)
        jobs = {"cctriage-routing": [f"127.0.0.1:{routing_metrics}"],
                "cctriage-triage": [f"127.0.0.1:{worker.port}"]}
        with running_prometheus(tmp_path, jobs) as prom:
            prom.wait_for('sum(up{job=~"cctriage-routing|cctriage-triage"}) == 2')
            prom.wait_for("cctriage_triage_ready == 1")
            angry, calm = Conversation(), Conversation()
            events = [angry.opened(prior_contacts=2), calm.opened()]
            events += [angry.customer(text) for text in ESCALATING]
            events += [calm.customer(text) for text in CALM]
            events.append((b"broken", b"\x00not a support event"))
            publish(kafka_bootstrap, workers.topic("support-events"), events)

            scored = len(ESCALATING) + len(CALM)
            prom.wait_for(f'sum(cctriage_triage_events_total{{outcome="scored"}}) == {scored}', 60)
            prom.wait_for("sum(cctriage_triage_dead_letters_total) == 1")
            prom.wait_for('sum(grpc_server_handled_total{job="cctriage-routing", '
                          'grpc_method=~"RouteConversations?", grpc_code="OK"}) >= 1')
            prom.wait_for("sum(cctriage_triage_event_to_route_seconds_count) >= 1")
            prom.wait_for("cctriage:triage_event_to_route_seconds:p99_5m > 0")
            prom.wait_for('sum(cctriage_triage_flags_total{band=~"high|critical"}) >= 1')
            prom.wait_for('cctriage_triage_model_info{job="cctriage-triage"} == 1')
            prom.wait_for("cctriage:triage_consumer_lag_messages:sum")
            # The stressed customer waits at the router; no senior agent is logged in.
            prom.wait_for('sum(routing_queue_depth_conversations{priority_band!="low"}) >= 1')
            prom.wait_for('ALERTS{alertname="CctriageNoSeniorAgentAvailable", alertstate="pending"}')

            rules = prom.rules()
            assert all(rule["health"] == "ok" for rule in rules), [
                (r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
            alerts = {a["metric"]["alertname"] for a in prom.query("ALERTS")}
            down = {"CctriageTriageWorkersAbsent", "CctriageTriageWorkerDown", "CctriageRoutingDown"}
            assert not alerts & down
