"""The triage worker end to end: embedded broker, real ONNX model, real routing server,
workers as subprocesses (``python -m cctriage_triage``), each bounded by ``stop()``/``kill()``.
"""

from __future__ import annotations

import collections
import json
import time

import pytest
from cctriage.routing.v1 import routing_pb2
from cctriage.triage.v1 import triage_pb2
from cctriage_common.topics import TopicSettings, ensure_topics
from triage_support import (
    CALM,
    ESCALATING,
    Conversation,
    flags,
    free_port,
    partition_of,
    publish,
    read_all,
    scores,
    wait_for,
    worker_factory,
)

pytestmark = pytest.mark.slow

TOKEN = "triage-test-token"
PARTITIONS = 4


@pytest.fixture
def topics(kafka_bootstrap, kafka_topics):
    ensure_topics(
        kafka_bootstrap,
        prefix=kafka_topics.prefix,
        settings=TopicSettings(prefix=kafka_topics.prefix, partitions=PARTITIONS),
    )
    return kafka_topics.prefix


class Routing:
    """A real routing server in this process (gRPC on 127.0.0.1), startable on a fixed port."""

    def __init__(self, tmp_path, port: int | None = None) -> None:
        self.tmp_path = tmp_path
        self.port = port or free_port()
        self.server = None
        self.new_routes: collections.Counter[str] = collections.Counter()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Routing:
        from cctriage_common.settings import load
        from cctriage_routing.server import RoutingServer
        from cctriage_routing.settings import RoutingSettings
        from cctriage_routing.testing import server_environment

        environ = server_environment(
            self.tmp_path,
            ROUTING_LISTEN=self.target,
            ROUTING_METRICS_PORT="-1",
            ROUTING_AUTH_ENABLED="1",
            ROUTING_AUTH_TOKENS=f"{TOKEN}=triage",
            ROUTING_THREADS="8",
        )
        self.server = RoutingServer(load(RoutingSettings, environ))
        engine = self.server.engine
        route = engine.route

        def counting_route(request):
            # Records what the real engine answered: a second *new* route of one conversation
            # would be a double assignment.
            result = route(request)
            if not result.duplicate:
                self.new_routes[request.conversation_id] += 1
            return result

        engine.route = counting_route
        self.server.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(1)
            self.server = None

    def conversation(self, conversation_id: str):
        with self.server.lock:
            return self.server.engine.conversations.get(conversation_id)

    def finished(self, conversation_id: str):
        with self.server.lock:
            return self.server.engine.finished.get(conversation_id)


@pytest.fixture
def routing(tmp_path):
    server = Routing(tmp_path).start()
    yield server
    server.stop()


def _factory(kafka_bootstrap, prefix, tmp_path, target):
    return worker_factory(
        kafka_bootstrap,
        prefix,
        tmp_path,
        target,
        partitions=PARTITIONS,
        extra_env={"TRIAGE_ROUTING_TOKEN": TOKEN},
    )


def by_conversation(items):
    grouped = collections.defaultdict(list)
    for item in items:
        grouped[item.conversation_id].append(item)
    return grouped


def test_escalating_conversation_routes_once_calm_one_never_and_sigterm_commits(
    kafka_bootstrap, topics, routing, tmp_path
):
    angry = Conversation(tier=3)
    calm = Conversation()
    events = [angry.opened(), calm.opened()]
    events += [angry.customer(text) for text in ESCALATING]
    events += [
        calm.customer(CALM[0]),
        calm.agent("It ships tomorrow."),
        calm.customer(CALM[1]),
        calm.customer(CALM[2]),
    ]
    with _factory(kafka_bootstrap, topics, tmp_path, routing.target) as factory:
        worker = factory.start().wait_ready(90)
        publish(kafka_bootstrap, factory.topic("support-events"), events)

        wait_for(lambda: routing.conversation(angry.conversation_id), 60, what="route call")
        scored = wait_for(
            lambda: len(s := scores(kafka_bootstrap, factory.topic("message-scores"))) >= 8 and s,
            60,
            what="8 scores",
        )
        assert {s.conversation_id for s in scored} == {angry.conversation_id, calm.conversation_id}
        assert len({s.event_id for s in scored}) == 8, "every customer message scored, agent's not"
        assert all(s.model_version and "@sha256:" in s.model_version for s in scored)

        all_flags = flags(kafka_bootstrap, factory.topic("conversation-flags"))
        assert {f.conversation_id for f in all_flags} == {angry.conversation_id}, (
            "calm one never flagged"
        )
        raised = [f for f in all_flags if f.action == triage_pb2.FLAG_ACTION_RAISED]
        assert len(raised) == 1
        flag = raised[0]
        codes = {r.code for r in flag.reasons}
        assert "VIP customer" in {r.detail for r in flag.reasons}
        # The model may raise the flag before the first cue is written; by the newest flag the
        # cues of the later messages are among the reasons sent to routing.
        assert codes, "a raised flag always says why"
        latest_codes = {r.code for r in max(all_flags, key=lambda f: f.sequence).reasons}
        assert {"repeat_contact", "cancel_threat", "legal"} <= latest_codes, latest_codes
        assert flag.flag_id == f"{angry.conversation_id}/{flag.sequence}"

        routed = routing.conversation(angry.conversation_id)
        # The routing service has the priority and reasons of the newest flag it was sent.
        latest = max(all_flags, key=lambda f: f.sequence)
        wait_for(
            lambda: routing.conversation(angry.conversation_id).sequence == latest.sequence,
            30,
            what="latest flag applied",
        )
        routed = routing.conversation(angry.conversation_id)
        assert routed.priority == latest.priority
        assert [r[1] for r in routed.reasons] == [r.detail for r in latest.reasons]
        assert routed.stressed and routed.customer_tier == 3
        assert (
            worker.metric(
                "cctriage_triage_routing_calls_total", {"rpc": "RouteConversation", "outcome": "ok"}
            )
            == 1
        )
        assert routing.new_routes == {angry.conversation_id: 1}
        assert routing.conversation(calm.conversation_id) is None

        alerts = read_all(kafka_bootstrap, factory.topic("supervisor-alerts"))
        assert alerts, "a raised flag alerts supervisors"
        for record in alerts:
            alert = triage_pb2.SupervisorAlert.FromString(record.value)
            assert "stress" in alert.summary and alert.reasons
            assert not any(text.lower()[:20] in alert.summary.lower() for text in ESCALATING)

        # Closing withdraws it.
        publish(kafka_bootstrap, factory.topic("support-events"), [angry.closed(), calm.closed()])
        done = wait_for(lambda: routing.finished(angry.conversation_id), 60, what="withdrawal")
        assert done.status == routing_pb2.CONVERSATION_STATUS_WITHDRAWN

        status, body = worker.get("/metrics")
        assert status == 200
        for name in (
            "cctriage_triage_events_total",
            "cctriage_triage_inference_batch_size_messages",
            "cctriage_triage_event_to_route_seconds",
            "cctriage_triage_flags_total",
            "cctriage_triage_consumer_lag_messages",
            "cctriage_triage_model_info",
        ):
            assert name in body
        assert angry.conversation_id not in body and "furious" not in body.lower()
        assert worker.metric("cctriage_triage_events_total", {"outcome": "scored"}) == 8
        assert worker.get("/healthz")[0] == 200

        # SIGTERM: drains, commits and exits 0; a new worker of the group finds nothing to redo.
        assert worker.stop(30) == 0
        log = worker.log_path.read_text()
        assert "furious" not in log.lower() and "lawyer" not in log.lower(), "no customer text in logs"
        loaded = [json.loads(line) for line in log.splitlines() if '"model loaded"' in line]
        assert loaded and loaded[0]["event_loop"] == "uvloop", "the default event loop is uvloop"
        assert loaded[0]["gc_thresholds"] == [50_000, 20, 10], "TRIAGE_GC_THRESHOLDS' default is in effect"
        again = factory.start().wait_ready(90)
        publish(kafka_bootstrap, factory.topic("support-events"), [calm.customer("one more thing")])
        wait_for(
            lambda: again.metric("cctriage_triage_events_total", {"outcome": "after_close"}) >= 1,
            60,
            what="new event processed",
        )
        assert again.metric("cctriage_triage_events_total", {"outcome": "scored"}) == 0
        assert again.metric("cctriage_triage_events_total", {"outcome": "duplicate"}) == 0
        assert again.metric("cctriage_triage_routing_calls_total") == 0, "no flag delivered twice"


def test_malformed_events_are_dead_lettered_and_the_worker_goes_on(
    kafka_bootstrap, topics, routing, tmp_path
):
    good = Conversation()
    no_conversation = Conversation()
    bad = no_conversation.customer("hello")
    bad.conversation_id = ""
    mismatched = Conversation().customer("hi")
    garbage = [
        (b"k1", b"\xff\x00 not protobuf"),
        (b"k2", b'{"event_id": "x"}'),
        (b"", bad.SerializeToString()),
        (b"some-other-key", mismatched.SerializeToString()),
    ]
    with _factory(kafka_bootstrap, topics, tmp_path, routing.target) as factory:
        worker = factory.start().wait_ready(90)
        publish(
            kafka_bootstrap,
            factory.topic("support-events"),
            [
                garbage[0],
                good.opened(),
                garbage[1],
                garbage[2],
                good.customer(ESCALATING[0]),
                garbage[3],
                good.customer(CALM[1]),
            ],
        )
        dead = wait_for(
            lambda: len(d := read_all(kafka_bootstrap, factory.topic("support-events-dlq"))) >= 4 and d,
            60,
            what="4 dead letters",
        )
        assert sorted(r.value for r in dead) == sorted(v for _, v in garbage), "original bytes kept"
        for record in dead:
            headers = {k: v.decode() for k, v in record.headers}
            assert any(headers.values()), headers
        reasons = " | ".join(v.decode() for r in dead for _, v in r.headers)
        assert "conversation_id" in reasons and "key" in reasons
        wait_for(
            lambda: len(scores(kafka_bootstrap, factory.topic("message-scores"))) >= 2, 60, what="scores"
        )
        assert worker.process.poll() is None and worker.ready()
        assert worker.metric("cctriage_triage_dead_letters_total") == 4
        assert worker.metric("cctriage_triage_events_total", {"outcome": "dead_lettered"}) == 4


def test_kill_9_mid_stream_then_restart_loses_nothing_and_routes_once(
    kafka_bootstrap, topics, routing, tmp_path
):
    conversations = [Conversation() for _ in range(16)]
    opening = [c.opened(prior_contacts=2) for c in conversations]
    first = [c.customer(ESCALATING[0]) for c in conversations]
    middle = [c.customer(text) for text in ESCALATING[1:] for c in conversations]
    middle += [c.customer(CALM[1]) for c in conversations]
    closing = [c.closed() for c in conversations]
    customer_ids = {e.event_id for e in first + middle}
    with _factory(kafka_bootstrap, topics, tmp_path, routing.target) as factory:
        worker = factory.start().wait_ready(90)
        topic = factory.topic("support-events")
        publish(kafka_bootstrap, topic, opening + first)
        wait_for(
            lambda: worker.metric("cctriage_triage_events_total", {"outcome": "scored"}) >= 16,
            60,
            what="first messages scored",
        )
        publish(kafka_bootstrap, topic, middle)
        wait_for(
            lambda: worker.metric("cctriage_triage_events_total", {"outcome": "scored"}) >= 30,
            60,
            what="mid-stream",
        )
        worker.kill()  # SIGKILL, mid-stream: no drain, no commit

        restarted = factory.start().wait_ready(90)
        publish(kafka_bootstrap, topic, closing)
        wait_for(
            lambda: all(routing.finished(c.conversation_id) for c in conversations),
            120,
            what="every conversation withdrawn",
        )

        scored = scores(kafka_bootstrap, factory.topic("message-scores"))
        assert {s.event_id for s in scored} == customer_ids, (
            "every customer message scored (deduplicated)"
        )

        all_flags = flags(kafka_bootstrap, factory.topic("conversation-flags"))
        assert len(by_conversation(all_flags)) == 16
        for items in by_conversation(all_flags).values():
            unique = sorted({f.flag_id: f for f in items}.values(), key=lambda f: f.sequence)
            # A flag id is the conversation and the causing event's position: replays reuse it.
            assert all(f.flag_id == f"{f.conversation_id}/{f.sequence}" for f in unique)
            assert unique[0].action == triage_pb2.FLAG_ACTION_RAISED
            assert "repeat_contact" in {r.code for r in unique[0].reasons}, "opened event's cue kept"
            assert unique[-1].action == triage_pb2.FLAG_ACTION_WITHDRAWN, "state (routed) survived"
        # No double assignment: the routing engine created each conversation once, however
        # often its flag was replayed.
        assert routing.new_routes == {c.conversation_id: 1 for c in conversations}
        assert restarted.process.poll() is None


def test_routing_down_flags_wait_and_arrive_when_it_returns(kafka_bootstrap, topics, tmp_path):
    routing = Routing(tmp_path)  # not started yet: nothing listens on its port
    conversations = [Conversation() for _ in range(6)]
    events = [c.opened(prior_contacts=1) for c in conversations]
    events += [c.customer(text) for text in ESCALATING for c in conversations]
    try:
        with _factory(kafka_bootstrap, topics, tmp_path, routing.target) as factory:
            worker = factory.start().wait_ready(90)
            publish(kafka_bootstrap, factory.topic("support-events"), events)
            wait_for(
                lambda: worker.metric("cctriage_triage_events_total", {"outcome": "scored"}) == 30,
                90,
                what="all scored while routing is down",
            )
            wait_for(
                lambda: worker.metric("cctriage_triage_routing_pending_flags") == 1, 30, what="pending"
            )
            assert worker.metric("cctriage_triage_routing_calls_total", {"outcome": "retry"}) >= 1
            raised = {
                f.conversation_id
                for f in flags(kafka_bootstrap, factory.topic("conversation-flags"))
                if f.action == triage_pb2.FLAG_ACTION_RAISED
            }
            assert raised == {c.conversation_id for c in conversations}

            routing.start()
            wait_for(
                lambda: all(routing.conversation(c.conversation_id) for c in conversations),
                60,
                what="every flag delivered after routing came back",
            )
            latest = {}
            for f in flags(kafka_bootstrap, factory.topic("conversation-flags")):
                latest[f.conversation_id] = max(latest.get(f.conversation_id, 0), f.sequence)
            wait_for(
                lambda: all(routing.conversation(c).sequence == s for c, s in latest.items()),
                60,
                what="updates applied in order",
            )
            assert worker.metric("cctriage_triage_routing_pending_flags") == 0
            assert worker.metric("cctriage_triage_routing_calls_total", {"outcome": "rejected"}) == 0
            assert json.loads(worker.get("/readyz")[1])["ready"]
    finally:
        routing.stop()


def test_two_workers_share_the_partitions(kafka_bootstrap, topics, routing, tmp_path):
    conversations = [Conversation() for _ in range(12)]
    events = [c.customer(CALM[0]) for c in conversations]
    with _factory(kafka_bootstrap, topics, tmp_path, routing.target) as factory:
        first = factory.start()
        second = factory.start()
        first.wait_ready(90)
        second.wait_ready(90)
        wait_for(
            lambda: (
                sum(json.loads(w.get("/readyz")[1])["partitions"] for w in (first, second))
                >= 2 * PARTITIONS
            ),
            60,
            what="support-events and flags partitions split",
        )
        publish(kafka_bootstrap, factory.topic("support-events"), events)
        wait_for(
            lambda: (
                first.metric("cctriage_triage_events_total")
                + second.metric("cctriage_triage_events_total")
                >= 12
            ),
            60,
            what="all processed",
        )
        assert first.metric("cctriage_triage_events_total") > 0
        assert second.metric("cctriage_triage_events_total") > 0
        for worker in (first, second):
            worker.terminate()
        assert [first.wait_exit(30), second.wait_exit(30)] == [0, 0], "both drained and exited"


def _on_partition(partition: int, **kwargs) -> Conversation:
    """A conversation whose id the default partitioner puts on ``partition``."""
    while True:
        conversation = Conversation(**kwargs)
        if partition_of(conversation.conversation_id, PARTITIONS) == partition:
            return conversation


def _at(conversation: Conversation, seconds: float) -> Conversation:
    """Its next event happens at ``seconds`` (event time), whatever came before."""
    conversation.at = seconds - conversation.step_s
    return conversation


def test_closed_and_idle_conversations_leave_the_table_and_stay_gone_after_a_restart(
    kafka_bootstrap, topics, routing, tmp_path
):
    # The test moves its partition's stream time with the event times it publishes: grace 60 s,
    # idle TTL 300 s of event time (the defaults are 10 min and 24 h).
    s = time.time() - 1000
    angry = _on_partition(0, tier=3, start=s, step_s=5)  # routed, closed: withdrawn, then evicted
    calm = _on_partition(0, start=s, step_s=5)  # closed: evicted
    stalled = _on_partition(0, tier=3, start=s, step_s=5)  # routed, never closed: expires idle
    clock = _on_partition(0, start=s, step_s=5)  # open; its events move stream time on
    events = [angry.opened(prior_contacts=1), calm.opened(), stalled.opened(prior_contacts=1), clock.opened()]
    calm_message = calm.customer(CALM[0])
    calm_close = calm.closed()  # at s+15
    events += [calm_message, calm_close]
    events += [angry.customer(t) for t in ESCALATING] + [stalled.customer(t) for t in ESCALATING]
    events += [angry.closed(), calm_close]  # angry closes at s+35; calm's close once more

    def metric(worker, name, **labels):
        return worker.metric(f"cctriage_triage_{name}", labels)

    with _factory(kafka_bootstrap, topics, tmp_path, routing.target) as factory:
        env = {"TRIAGE_CLOSED_GRACE_S": "60", "TRIAGE_IDLE_TTL_S": "300"}
        worker = factory.start(**env).wait_ready(90)
        topic = factory.topic("support-events")
        publish(kafka_bootstrap, topic, events)
        wait_for(lambda: metric(worker, "events_total") == len(events), 90, what="all processed")
        wait_for(lambda: routing.finished(angry.conversation_id), 60, what="angry withdrawn on close")
        wait_for(lambda: routing.conversation(stalled.conversation_id), 60, what="stalled routed")
        assert metric(worker, "events_total", outcome="duplicate") == 1, (
            "a second close within the grace still finds the conversation"
        )
        assert metric(worker, "table_conversations") == 4
        assert metric(worker, "evicted_conversations_total") == 0

        # Stream time s+100: the 60 s grace after angry's (s+35) and calm's (s+15) close is over.
        publish(kafka_bootstrap, topic, [_at(clock, s + 100).customer(CALM[1])])
        wait_for(
            lambda: metric(worker, "evicted_conversations_total", reason="closed") == 2, 60,
            what="both closed conversations evicted",
        )
        assert metric(worker, "table_conversations") == 2
        # A late angry message of the evicted conversation (written before its close) must not
        # start a new conversation, which would be routed again; it is kept in the dead-letter
        # topic with the reason.
        publish(kafka_bootstrap, topic, [late := _at(angry, s + 33).customer(ESCALATING[-1])])
        wait_for(
            lambda: metric(worker, "dead_letters_total", reason="late_event") == 1, 60, what="late event"
        )
        dlq = factory.topic("support-events-dlq")
        dead = wait_for(lambda: read_all(kafka_bootstrap, dlq), 30, what="dlq")
        assert dead[-1].value == late.SerializeToString()
        assert dict(dead[-1].headers)["dlq.reason"] == b"late_event"
        assert metric(worker, "table_conversations") == 2
        assert routing.new_routes == {angry.conversation_id: 1, stalled.conversation_id: 1}
        assert routing.conversation(angry.conversation_id) is None, "still withdrawn"

        # The changelog ends with a tombstone for each, so recovery does not bring them back.
        changelog = read_all(kafka_bootstrap, f"{factory.app_id}-conversations-changelog")
        last = {json.loads(r.key): r.value for r in changelog}
        assert last[angry.conversation_id] is None and last[calm.conversation_id] is None
        assert last[stalled.conversation_id] is not None

        assert worker.stop(30) == 0
        again = factory.start(**env).wait_ready(90)
        wait_for(lambda: metric(again, "table_conversations") == 2, 30, what="recovered table size")
        # Stream time comes back with the table: a late event is still late on the new worker.
        publish(kafka_bootstrap, topic, [_at(calm, s + 12).agent("It ships tomorrow.")])
        wait_for(
            lambda: metric(again, "dead_letters_total", reason="late_event") == 1, 60,
            what="late after restart",
        )
        assert metric(again, "table_conversations") == 2, "evicted conversations not recovered"

        # Stream time s+340: stalled's last event (s+30) is more than the idle TTL (300 s) ago.
        publish(kafka_bootstrap, topic, [_at(clock, s + 340).customer(CALM[2])])
        done = wait_for(lambda: routing.finished(stalled.conversation_id), 60, what="stalled withdrawn")
        assert done.status == routing_pb2.CONVERSATION_STATUS_WITHDRAWN
        wait_for(lambda: metric(again, "evicted_conversations_total", reason="idle") == 1, 30, what="idle")
        assert metric(again, "table_conversations") == 1, "only clock is left"
        stalled_flags = sorted(
            (f for f in flags(kafka_bootstrap, factory.topic("conversation-flags"))
             if f.conversation_id == stalled.conversation_id),
            key=lambda f: f.sequence,
        )
        expiry = stalled_flags[-1]
        assert expiry.action == triage_pb2.FLAG_ACTION_WITHDRAWN
        assert expiry.withdraw_reason == routing_pb2.WITHDRAW_REASON_ABANDONED
        assert [r.code for r in expiry.reasons] == ["expired"]
        assert expiry.sequence == stalled_flags[-2].sequence + 1
        # Flagged at the event time it expired (last event + TTL), not when the worker noticed.
        assert abs(expiry.flagged_at.ToNanoseconds() / 1e9 - (s + 30 + 300)) < 0.01
