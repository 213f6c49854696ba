"""Fault tests (issue 7): crashes and outages under a steady load, with real parts only --
the embedded Tansu broker, triage workers as processes (``python -m cctriage_triage``, real
ONNX model), the routing service as a process (``python -m cctriage_routing``, SQLite
journal) and agents accepting offers over its gRPC API.

Each test asserts what a contact centre would notice (an event lost, a customer assigned
twice, a flag that never reaches routing, a stressed conversation reset to calm) and reports
its recovery times: printed at the end of the run and, with ``CCTRIAGE_FAULTS_REPORT=path``,
written there as JSON. The load is short by default (CI); ``make faults`` runs the same tests
with minutes of load (``CCTRIAGE_FAULT_LOAD_S``, ``CCTRIAGE_FAULT_RATE``).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import time
import uuid

import pytest
from cctriage.routing.v1 import routing_pb2
from cctriage.triage.v1 import triage_pb2
from cctriage_common.topics import TopicSettings, ensure_topics
from triage_support import (
    ESCALATING,
    ROUTING_TOKEN,
    AgentDesk,
    Conversation,
    RoutingProcess,
    SteadyLoad,
    end_offsets_total,
    free_port,
    partition_of,
    publish,
    read_all,
    wait_for,
    worker_factory,
)

pytestmark = pytest.mark.slow

PARTITIONS = 4
# Seconds of load before and after each fault, and events per second (about half of them
# customer messages). CI keeps them short; `make faults` raises them.
LOAD_S = float(os.environ.get("CCTRIAGE_FAULT_LOAD_S", "6"))
RATE = float(os.environ.get("CCTRIAGE_FAULT_RATE", "8"))
OUTAGE_S = float(os.environ.get("CCTRIAGE_FAULT_OUTAGE_S", "30"))
SCORED = {"outcome": "scored"}

_figures: dict[str, dict] = {}


@pytest.fixture(scope="module", autouse=True)
def fault_report(request):
    """Prints every test's measured figures after the module (also when output is captured),
    and writes them as JSON to CCTRIAGE_FAULTS_REPORT when set."""
    yield _figures
    if not _figures:
        return
    lines = [f"fault tests (load {LOAD_S:g} s before/after each fault at {RATE:g} events/s):"]
    for test, figures in _figures.items():
        lines.append(f"  {test}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print("\n" + "\n".join(lines), flush=True)
    path = os.environ.get("CCTRIAGE_FAULTS_REPORT")
    if path:
        with open(path, "w") as out:
            json.dump({"load_s": LOAD_S, "rate_per_s": RATE, "tests": _figures}, out, indent=2)


def report(request, **figures) -> None:
    _figures[request.node.name] = figures
    for key, value in figures.items():
        request.node.user_properties.append((key, value))
    print(json.dumps({request.node.name: figures}))


@pytest.fixture
def topics(kafka_bootstrap, kafka_topics):
    ensure_topics(
        kafka_bootstrap,
        prefix=kafka_topics.prefix,
        settings=TopicSettings(prefix=kafka_topics.prefix, partitions=PARTITIONS),
    )
    return kafka_topics.prefix


@pytest.fixture
def started(tmp_path):
    """Starts routing processes and agent desks; stops every one at the end of the test."""
    things: list = []

    class Started:
        def routing(self, agents=(), **env) -> RoutingProcess:
            folder = tmp_path / f"routing-{len(things)}"
            folder.mkdir()
            process = RoutingProcess(folder, agents=agents, **env).start()
            things.append(process)
            return process

        def desk(self, routing, agent_id, accepted, **kwargs) -> AgentDesk:
            desk = AgentDesk(routing, agent_id, accepted, **kwargs).login().start()
            things.append(desk)
            return desk

    yield Started()
    for thing in reversed(things):
        thing.stop()


def _workers(kafka_bootstrap, prefix, tmp_path, routing):
    return worker_factory(
        kafka_bootstrap,
        prefix,
        tmp_path,
        routing.address,
        partitions=PARTITIONS,
        extra_env={"TRIAGE_ROUTING_TOKEN": ROUTING_TOKEN},
    )


def _scores(kafka_bootstrap, topic):
    return [
        (r.timestamp / 1000.0, triage_pb2.MessageScore.FromString(r.value))
        for r in read_all(kafka_bootstrap, topic)
    ]


class EventsLost(AssertionError):
    """Published customer messages that never got a score."""


def _all_scored(kafka_bootstrap, topic, expected: set[str], timeout_s: float = 45.0, load=None, factory=None):
    """Waits until every event id in ``expected`` has a score; returns (wall time, score) records.
    On timeout says which messages are missing: their partitions and when they were published."""
    records: list = []

    def check():
        records[:] = _scores(kafka_bootstrap, topic)
        return expected <= {s.event_id for _, s in records}

    try:
        wait_for(check, timeout_s, 1.0, f"all {len(expected)} customer messages scored")
    except AssertionError as exc:
        missing = expected - {s.event_id for _, s in records}
        detail = ""
        if load is not None:
            where = collections.Counter(
                (partition_of(load.conversation_of[e], PARTITIONS), round(load.customer_events[e] - load.t0))
                for e in missing
            )
            detail = f"; (partition, s after load start) of the missing: {sorted(where.items())}"
        if factory is not None:
            detail += "\n" + _diagnosis(factory)
        raise EventsLost(f"{exc}: {len(missing)} of {len(expected)} never scored{detail}") from None
    return list(records)


def _diagnosis(factory) -> str:
    """What the workers and the consumer group say, for a failure message."""
    from kafka import KafkaConsumer, TopicPartition

    lines = []
    for i, worker in enumerate(factory.workers):
        alive = worker.process is not None and worker.process.poll() is None
        line = f"worker {i} alive={alive}"
        if alive:
            with contextlib.suppress(Exception):
                outcomes = {
                    o: worker.metric("cctriage_triage_events_total", {"outcome": o})
                    for o in ("scored", "duplicate", "dead_lettered", "recorded")
                }
                lag = worker.metric("cctriage_triage_consumer_lag_messages")
                line += f" events={outcomes} lag={lag} readyz={worker.get('/readyz')[1]}"
        lines.append(line)
    topic = factory.topic("support-events")
    try:
        consumer = KafkaConsumer(bootstrap_servers=factory.bootstrap, group_id=factory.app_id)
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = consumer.end_offsets(parts)
        committed = {tp: consumer.committed(tp) for tp in parts}
        consumer.close()
        lines.append(
            "support-events committed/end offset by partition: "
            + ", ".join(f"{tp.partition}: {committed[tp]}/{ends[tp]}" for tp in parts)
        )
    except Exception as exc:  # noqa: BLE001 - a diagnosis must not hide the failure
        lines.append(f"(committed offsets not read: {exc!r})")
    return "\n".join(lines)


def _latest_flags(kafka_bootstrap, topic) -> dict[str, triage_pb2.ConversationFlag]:
    latest: dict[str, triage_pb2.ConversationFlag] = {}
    for record in read_all(kafka_bootstrap, topic):
        flag = triage_pb2.ConversationFlag.FromString(record.value)
        if flag.sequence >= getattr(latest.get(flag.conversation_id), "sequence", 0):
            latest[flag.conversation_id] = flag
    return latest


def _live(latest: dict[str, triage_pb2.ConversationFlag]) -> set[str]:
    """Conversations routing must hold: flagged and not withdrawn."""
    return {c for c, f in latest.items() if f.action != triage_pb2.FLAG_ACTION_WITHDRAWN}


def _settled(kafka_bootstrap, factory, routing, workers, timeout_s: float = 90.0):
    """Waits until every live flagged conversation is placed in routing and no worker has a
    flag pending; returns (latest flags, placement)."""

    def check():
        if any(w.metric("cctriage_triage_routing_pending_flags") for w in workers):
            return None
        latest = _latest_flags(kafka_bootstrap, factory.topic("conversation-flags"))
        placement = routing.placement()
        return _live(latest) <= placement.keys() and (latest, placement)

    return wait_for(check, timeout_s, 1.0, "every flag delivered to routing")


def _assignments(routing, accepted: dict[str, set]) -> tuple[dict[str, list[str]], dict[str, set]]:
    """The desks' acknowledged assignments, then routing's placement (in that order: an
    assignment acknowledged to a desk is already durable, so routing must show it held)."""
    acknowledged = {c: set(who) for c, who in list(accepted.items())}
    return routing.placement(), acknowledged


def _assert_not_doubled(placement: dict[str, list[str]], accepted: dict[str, set]) -> None:
    doubled = {c: where for c, where in placement.items() if len(where) != 1}
    assert not doubled, f"conversations placed more than once: {doubled}"
    twice = {c: who for c, who in accepted.items() if len(who) != 1}
    assert not twice, f"conversations assigned twice: {twice}"
    for conversation_id, who in accepted.items():
        ((agent_id, _),) = who
        assert placement.get(conversation_id) == [f"held:{agent_id}"], (
            f"acknowledged assignment of {conversation_id} to {agent_id} lost: "
            f"{placement.get(conversation_id)}"
        )


def test_kill_9_of_a_triage_worker_under_load_loses_no_event_and_assigns_nobody_twice(
    kafka_bootstrap, topics, tmp_path, started, request
):
    agents = ["a1", "a2", "a3"]
    routing = started.routing(agents)
    accepted: dict[str, set] = {}
    for agent_id in agents:
        started.desk(routing, agent_id, accepted, capacity=6)
    with _workers(kafka_bootstrap, topics, tmp_path, routing) as factory:
        worker = factory.start().wait_ready(120)
        load = SteadyLoad(kafka_bootstrap, factory.topic("support-events"), rate_per_s=RATE).start()
        try:
            time.sleep(LOAD_S)
            wait_for(lambda: worker.metric("cctriage_triage_events_total", SCORED) > 0, 30, what="output")
            scored_before_kill = worker.metric("cctriage_triage_events_total", SCORED)
            killed_at, killed = time.time(), time.monotonic()
            worker.kill()  # SIGKILL while events flow: no drain, no commit
            print(f"killed {killed_at - load.t0:.1f} s after the load started")
            restarted = factory.start()
            restarted.wait_ready(120)
            ready_s, ready_at = time.monotonic() - killed, time.time()
            time.sleep(LOAD_S)  # traffic goes on after the recovery
        finally:
            load.stop()
        published = set(load.customer_events)
        records = _all_scored(
            kafka_bootstrap, factory.topic("message-scores"), published, load=load, factory=factory
        )
        latest, placement = _settled(kafka_bootstrap, factory, routing, [restarted])
        assert restarted.process.poll() is None

    scored_ids = [s.event_id for _, s in records]
    assert set(scored_ids) == published, "every published customer message scored, nothing else"
    first_output = min(at for at, _ in records if at > killed_at)
    first_score: dict[str, float] = {}
    for at, s in records:
        first_score[s.event_id] = min(at, first_score.get(s.event_id, at))
    backlog = load.customer_events_before(ready_at)  # published before the new worker was ready
    caught_up = max(first_score[e] for e in backlog)

    # Routing: every flagged conversation is there once; nobody was assigned twice.
    assert load.escalating & load.finished <= latest.keys(), "every escalating conversation flagged"
    _assert_not_doubled(*_assignments(routing, accepted))
    assert accepted, "agents took assignments during the test"
    recovery_s = first_output - killed_at
    report(
        request,
        customer_messages=len(published),
        scored_before_kill=int(scored_before_kill),
        rescored_duplicates=len(scored_ids) - len(set(scored_ids)),
        flagged=len(latest),
        assigned=len(accepted),
        kill_to_ready_s=round(ready_s, 1),
        kill_to_first_new_score_s=round(recovery_s, 1),
        kill_to_downtime_backlog_scored_s=round(caught_up - killed_at, 1),
    )
    # A worker replaces a dead one within a session timeout (6 s) plus start-up and recovery.
    assert recovery_s < 90, f"first score {recovery_s:.1f} s after the kill"


def test_kill_9_of_routing_under_load_recovers_queue_offers_and_agents_and_doubles_nothing(
    kafka_bootstrap, topics, tmp_path, started, request
):
    routing = started.routing(["a1", "a2", "holder", "away"])
    accepted: dict[str, set] = {}
    for agent_id in ("a1", "a2"):
        started.desk(routing, agent_id, accepted, capacity=2)
    holder = started.desk(routing, "holder", accepted, capacity=2, accept=False)
    away = started.desk(routing, "away", accepted, capacity=2)
    away.set_state(routing_pb2.AGENT_STATE_AWAY, "lunch")
    with _workers(kafka_bootstrap, topics, tmp_path, routing) as factory:
        worker = factory.start().wait_ready(120)
        load = SteadyLoad(kafka_bootstrap, factory.topic("support-events"), rate_per_s=RATE).start()
        try:
            time.sleep(LOAD_S)
            # Mid-load with all three kinds of state: assignments, outstanding offers, waiting.
            wait_for(
                lambda: (
                    len(accepted) >= 4
                    and any(w == ["waiting"] for w in routing.placement().values())
                    and len(holder.offers) >= 1
                ),
                60,
                what="assignments, an outstanding offer and a waiting conversation",
            )
            agents_before = {
                a: (s.state, s.state_reason, sorted(s.conversation_ids)) for a, s in routing.agents().items()
            }
            placement_before = routing.placement()
            acknowledged = {c: set(who) for c, who in list(accepted.items())}
            killed_at, killed = time.time(), time.monotonic()
            routing.kill()
            routing.start()  # same journal, same port; returns once SERVING
            serving_s = time.monotonic() - killed
            placement_after = routing.placement()
            agents_after = {
                a: (s.state, s.state_reason, sorted(s.conversation_ids)) for a, s in routing.agents().items()
            }
            flagged_before = {
                triage_pb2.ConversationFlag.FromString(r.value).conversation_id
                for r in read_all(kafka_bootstrap, factory.topic("conversation-flags"))
                if r.timestamp / 1000.0 <= killed_at
            }
            wait_for(
                lambda: flagged_before <= routing.placement().keys(), 60, 0.2, "flags of before the kill"
            )
            redelivered_s = time.monotonic() - killed
            time.sleep(LOAD_S)
        finally:
            load.stop()
        _all_scored(
            kafka_bootstrap,
            factory.topic("message-scores"),
            set(load.customer_events),
            load=load,
            factory=factory,
        )
        latest, placement = _settled(kafka_bootstrap, factory, routing, [worker])
        assert worker.process.poll() is None, "the worker rode out the routing crash"

    # Right after the restart: the journal gave back everything it had acknowledged.
    assert agents_after.keys() == agents_before.keys()
    for agent_id, (state, reason, held) in agents_before.items():
        assert agents_after[agent_id][:2] == (state, reason), f"{agent_id} state not recovered"
        assert set(held) <= set(agents_after[agent_id][2]), f"{agent_id} lost conversations it held"
    assert agents_after["away"][:2] == (routing_pb2.AGENT_STATE_AWAY, "lunch")
    lost = {c: w for c, w in placement_before.items() if c not in placement_after}
    assert not lost, f"waiting/offered/assigned before the kill, gone after: {lost}"
    offers_before = {c for c, w in placement_before.items() if w == ["offered:holder"]}
    assert offers_before, "an offer was outstanding at the kill"
    assert all(placement_after[c] == ["offered:holder"] for c in offers_before), "outstanding offers back"
    waiting_before = {c for c, w in placement_before.items() if w == ["waiting"]}
    for conversation_id, who in acknowledged.items():
        ((agent_id, _),) = who
        assert placement_after[conversation_id] == [f"held:{agent_id}"], (
            f"assignment of {conversation_id} lost"
        )
    doubled = {c: where for c, where in placement_after.items() if len(where) != 1}
    assert not doubled, f"placed more than once after the restart: {doubled}"

    # After the load: every flagged conversation is waiting, offered or assigned, exactly once.
    assert _live(latest) <= placement.keys(), "no flagged conversation lost"
    _assert_not_doubled(*_assignments(routing, accepted))
    report(
        request,
        flagged=len(latest),
        assigned=len(accepted),
        waiting_at_kill=len(waiting_before),
        offers_at_kill=len(offers_before),
        assigned_at_kill=len(acknowledged),
        kill_to_serving_s=round(serving_s, 1),
        kill_to_flags_redelivered_s=round(redelivered_s, 1),
    )


def test_routing_unreachable_30s_while_traffic_continues_every_flag_arrives_afterwards(
    kafka_bootstrap, topics, tmp_path, started, request
):
    routing = started.routing()  # no agents: every flagged conversation stays in the queue
    with _workers(kafka_bootstrap, topics, tmp_path, routing) as factory:
        worker = factory.start().wait_ready(120)
        pid = worker.process.pid
        scores_topic = factory.topic("message-scores")
        load = SteadyLoad(kafka_bootstrap, factory.topic("support-events"), rate_per_s=RATE).start()
        try:
            time.sleep(LOAD_S)
            wait_for(lambda: routing.queue(), 60, what="a flag delivered before the outage")
            assert routing.stop() == 0  # stopped, not slowed: nothing listens on its port
            down = time.monotonic()
            retries_before = worker.metric("cctriage_triage_routing_calls_total", {"outcome": "retry"})
            flags_topic = factory.topic("conversation-flags")
            flags_at_stop = end_offsets_total(kafka_bootstrap, flags_topic)
            growth, pending = [end_offsets_total(kafka_bootstrap, scores_topic)], 0.0
            for _ in range(3):
                time.sleep(OUTAGE_S / 3)
                growth.append(end_offsets_total(kafka_bootstrap, scores_topic))
                pending = max(pending, worker.metric("cctriage_triage_routing_pending_flags"))
                assert worker.process.poll() is None and worker.process.pid == pid, "worker crashed"
            outage_s = time.monotonic() - down
            flags_during = end_offsets_total(kafka_bootstrap, flags_topic) - flags_at_stop
            retries = (
                worker.metric("cctriage_triage_routing_calls_total", {"outcome": "retry"}) - retries_before
            )
            assert worker.get("/healthz")[0] == 200
            flagged_during = _live(_latest_flags(kafka_bootstrap, factory.topic("conversation-flags")))
            back = time.monotonic()
            routing.start()
            serving_s = time.monotonic() - back
            wait_for(lambda: flagged_during <= routing.queue().keys(), 90, 0.2, "backlog of flags delivered")
            backlog_s = time.monotonic() - back
            time.sleep(LOAD_S)
        finally:
            load.stop()
        _all_scored(kafka_bootstrap, scores_topic, set(load.customer_events), load=load, factory=factory)
        latest, _ = _settled(kafka_bootstrap, factory, routing, [worker])
        queue = routing.queue()
        assert worker.process.pid == pid and worker.process.poll() is None, "worker never restarted"

    assert all(b > a for a, b in zip(growth, growth[1:], strict=False)), (
        f"scoring stalled during the outage: {growth}"
    )
    assert outage_s >= OUTAGE_S
    assert pending >= 1 and flags_during >= 1, "flags were raised and waited for routing"
    assert retries >= 1, "the worker kept retrying"
    assert _live(latest) == queue.keys(), "every flagged conversation reached routing"
    stale = {
        c: (queue[c].priority, f.priority)
        for c, f in latest.items()
        if (queue[c].priority, queue[c].stressed, [r.detail for r in queue[c].reasons])
        != (f.priority, f.stressed, [r.detail for r in f.reasons])
    }
    assert not stale, f"routing does not have the latest flag (routing, flag priority): {stale}"
    report(
        request,
        outage_s=round(outage_s, 1),
        scores_during_outage=growth[-1] - growth[0],
        flags_written_during_outage=flags_during,
        retries_during_outage=int(retries),
        flagged=len(latest),
        restart_to_serving_s=round(serving_s, 1),
        restart_to_backlog_delivered_s=round(backlog_s, 1),
    )


def _tracked_conversations(per_partition: int = 2) -> list[Conversation]:
    """Conversations whose keys cover every partition, so each worker owns some of them."""
    found: dict[int, list[str]] = collections.defaultdict(list)
    while any(len(found[p]) < per_partition for p in range(PARTITIONS)):
        conversation_id = f"conv-{uuid.uuid4().hex[:10]}"
        partition = partition_of(conversation_id, PARTITIONS)
        if len(found[partition]) < per_partition:
            found[partition].append(conversation_id)
    return [Conversation(c) for ids in found.values() for c in ids]


def _streak(turns: list[triage_pb2.MessageScore], threshold: float = 0.5) -> int:
    streak = 0
    for turn in reversed(turns):
        if turn.negative < threshold:
            break
        streak += 1
    return streak


def test_two_workers_one_killed_the_survivor_takes_its_partitions_with_their_state(
    kafka_bootstrap, topics, tmp_path, started, request
):
    routing = started.routing()
    tracked = _tracked_conversations()
    ids = {c.conversation_id for c in tracked}
    with _workers(kafka_bootstrap, topics, tmp_path, routing) as factory:
        doomed, survivor = factory.start(), factory.start()
        doomed.wait_ready(120)
        survivor.wait_ready(120)
        wait_for(
            lambda: (
                sum(json.loads(w.get("/readyz")[1])["partitions"] for w in (doomed, survivor))
                >= 2 * PARTITIONS
            ),
            60,
            what="partitions split between the two",
        )
        topic = factory.topic("support-events")
        # Phase 1: three escalating messages each, spread over both workers.
        publish(kafka_bootstrap, topic, [c.opened(prior_contacts=2) for c in tracked])
        publish(kafka_bootstrap, topic, [c.customer(text) for text in ESCALATING[:3] for c in tracked])
        wait_for(lambda: ids <= routing.queue().keys(), 90, what="tracked conversations routed")
        wait_for(
            lambda: (
                doomed.metric("cctriage_triage_events_total", SCORED)
                + survivor.metric("cctriage_triage_events_total", SCORED)
                >= 3 * len(tracked)
            ),
            60,
            what="phase 1 scored",
        )
        on_doomed = doomed.metric("cctriage_triage_events_total", SCORED)
        assert on_doomed > 0 and survivor.metric("cctriage_triage_events_total", SCORED) > 0
        before = _latest_flags(kafka_bootstrap, factory.topic("conversation-flags"))

        # Phase 2: kill -9 one worker while traffic flows; the escalation goes on.
        load = SteadyLoad(kafka_bootstrap, topic, rate_per_s=RATE).start()
        try:
            time.sleep(min(LOAD_S, 3))
            killed = time.monotonic()
            doomed.kill()
            publish(kafka_bootstrap, topic, [c.customer(text) for text in ESCALATING[3:] for c in tracked])

            def updated():
                queue = routing.queue()
                latest = _latest_flags(kafka_bootstrap, factory.topic("conversation-flags"))
                return all(
                    c in queue
                    and c in latest
                    and latest[c].sequence > before[c].sequence
                    and "legal" in {r.code for r in latest[c].reasons}
                    and [r.detail for r in queue[c].reasons] == [r.detail for r in latest[c].reasons]
                    for c in ids
                )

            wait_for(updated, 120, 0.5, "every tracked conversation updated in routing by the survivor")
            taken_over_s = time.monotonic() - killed
            time.sleep(LOAD_S)
        finally:
            load.stop()
        _all_scored(
            kafka_bootstrap,
            factory.topic("message-scores"),
            set(load.customer_events),
            load=load,
            factory=factory,
        )
        latest, _ = _settled(kafka_bootstrap, factory, routing, [survivor])
        assert survivor.process.poll() is None
        updates = survivor.metric(
            "cctriage_triage_routing_calls_total", {"rpc": "UpdateConversation", "outcome": "ok"}
        )
        queue = routing.queue()
        all_flags = [
            triage_pb2.ConversationFlag.FromString(r.value)
            for r in read_all(kafka_bootstrap, factory.topic("conversation-flags"))
        ]
        scores = [
            triage_pb2.MessageScore.FromString(r.value)
            for r in read_all(kafka_bootstrap, factory.topic("message-scores"))
        ]

    turns: dict[str, dict[str, triage_pb2.MessageScore]] = collections.defaultdict(dict)
    for s in scores:
        turns[s.conversation_id][s.event_id] = s
    needing_state = 0
    for c in tracked:
        flag = latest[c.conversation_id]
        unique = {f.flag_id: f for f in all_flags if f.conversation_id == c.conversation_id}.values()
        raised = [f for f in unique if f.action == triage_pb2.FLAG_ACTION_RAISED]
        assert len(raised) == 1, f"{c.conversation_id} raised {len(raised)} times: its state was reset"
        reasons = {r.code: r for r in flag.reasons}
        assert "repeat_contact" in reasons, "the opened event's cue is in the state that moved"
        history = sorted(turns[c.conversation_id].values(), key=lambda s: s.occurred_at.ToNanoseconds())
        assert len(history) == len(ESCALATING)
        streak = _streak(history)
        needing_state += streak > len(ESCALATING[3:])
        if streak >= 2:
            assert reasons["negative_streak"].value == streak, (
                f"{c.conversation_id}: streak {reasons['negative_streak'].value}, its messages give {streak}"
            )
        routed = queue[c.conversation_id]
        assert (routed.priority, routed.stressed) == (flag.priority, flag.stressed), (
            "survivor's update applied"
        )
    assert needing_state, "at least one streak spans the kill (else the test could not see a reset)"
    assert updates >= 1, "the survivor made the routing calls"
    report(
        request,
        tracked_conversations=len(tracked),
        scored_on_killed_worker=int(on_doomed),
        streaks_spanning_the_kill=needing_state,
        kill_to_all_tracked_updated_in_routing_s=round(taken_over_s, 1),
    )


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill9"])
def test_a_restart_of_the_embedded_broker_loses_every_topic_and_record(tmp_path, how, request):
    """What the README says: the embedded broker keeps everything in memory, so a restart is a
    total loss. A production Kafka (RF 3, min ISR 2, acks=all) keeps acknowledged records."""
    from cctriage_common.broker import EmbeddedBroker
    from kafka.admin import KafkaAdminClient, NewTopic

    port = free_port()
    broker = EmbeddedBroker("tansu", port=port, data_dir=tmp_path).start()
    try:
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        admin.create_topics([NewTopic("restart-check", 1, 1)])
        admin.close()
        publish(broker.bootstrap, "restart-check", [(b"k", b"v%d" % i) for i in range(200)])
        assert len(read_all(broker.bootstrap, "restart-check")) == 200
        broker.process.send_signal(how)
        broker.process.wait(15)
    finally:
        broker.stop()
    again = EmbeddedBroker("tansu", port=port, data_dir=tmp_path).start()
    try:
        admin = KafkaAdminClient(bootstrap_servers=again.bootstrap)
        remaining = admin.list_topics()
        admin.close()
    finally:
        again.stop()
    assert "restart-check" not in remaining, "the embedded broker kept a topic across a restart"
    report(
        request,
        records_before=200,
        topics_after_restart=len([t for t in remaining if not t.startswith("__")]),
    )
