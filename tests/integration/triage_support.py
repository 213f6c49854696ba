"""Helpers for the triage worker's integration tests and benchmark: real subprocess workers,
real broker, events built as a publisher would.

Every worker started here is bounded: ``stop()`` sends SIGTERM, waits, then SIGKILLs.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from cctriage.events.v1 import events_pb2
from cctriage.triage.v1 import triage_pb2
from google.protobuf.timestamp_pb2 import Timestamp

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- events ----------------------------------------------------------------------------------

_counter = itertools.count()


class Conversation:
    """Builds the support events of one conversation, with increasing event times."""

    def __init__(
        self,
        conversation_id: str | None = None,
        tier: int = events_pb2.CUSTOMER_TIER_STANDARD,
        start: float | None = None,
        step_s: float = 20.0,
    ) -> None:
        self.conversation_id = conversation_id or f"conv-{uuid.uuid4().hex[:10]}"
        self.tier = tier
        self.at = time.time() - 600 if start is None else start
        self.step_s = step_s

    def _event(self, **payload: Any) -> events_pb2.SupportEvent:
        self.at += self.step_s
        event = events_pb2.SupportEvent(
            event_id=f"ev-{uuid.uuid4().hex}",
            conversation_id=self.conversation_id,
            tenant_id="acme",
            queue="billing",
            channel=events_pb2.CHANNEL_CHAT,
            source="tests",
            customer=events_pb2.Customer(customer_id="cust-1", tier=self.tier, language="en"),
            **payload,
        )
        ts = Timestamp()
        ts.FromNanoseconds(int(self.at * 1e9))
        event.occurred_at.CopyFrom(ts)
        return event

    def opened(self, prior_contacts: int = 0) -> events_pb2.SupportEvent:
        return self._event(
            conversation_opened=events_pb2.ConversationOpened(
                required_skills=["billing"], prior_contact_count=prior_contacts
            )
        )

    def customer(self, text: str) -> events_pb2.SupportEvent:
        return self._event(
            message_posted=events_pb2.MessagePosted(
                message_id=f"m{next(_counter)}", author_role=events_pb2.AUTHOR_ROLE_CUSTOMER, text=text
            )
        )

    def agent(self, text: str, agent_id: str = "agent-7") -> events_pb2.SupportEvent:
        return self._event(
            message_posted=events_pb2.MessagePosted(
                message_id=f"m{next(_counter)}",
                author_role=events_pb2.AUTHOR_ROLE_AGENT,
                author_id=agent_id,
                text=text,
            )
        )

    def closed(self, reason: int = events_pb2.CLOSE_REASON_RESOLVED) -> events_pb2.SupportEvent:
        return self._event(conversation_closed=events_pb2.ConversationClosed(reason=reason))


ESCALATING = [
    "Hi, my invoice shows a charge I don't recognise.",
    "I already told you, this charge is wrong. This is the third time I'm writing about it.",
    "This is ridiculous, I am really angry. Nobody is helping me!",
    "Terrible service. I want to cancel my account today and I will file a complaint.",
    "Fix this now or I'm calling my lawyer. I am furious!",
]
CALM = [
    "Hi, could you tell me when my order ships?",
    "Great, thanks for checking.",
    "That works for me, have a nice day!",
]


# -- Kafka -----------------------------------------------------------------------------------


def producer(bootstrap: str):
    from kafka import KafkaProducer

    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)


def publish(
    bootstrap: str, topic: str, events: Iterable[events_pb2.SupportEvent | tuple[bytes, bytes]]
) -> None:
    prod = producer(bootstrap)
    try:
        for event in events:
            if isinstance(event, tuple):
                key, value = event
            else:
                key, value = event.conversation_id.encode(), event.SerializeToString()
            prod.send(topic, key=key, value=value)
        prod.flush(30)
    finally:
        prod.close(10)


def read_all(bootstrap: str, topic: str, timeout_s: float = 30.0) -> list[Any]:
    """Every record currently in ``topic``: reads from the start up to the end offsets.

    Only for topics the worker writes: it produces one record per batch, for which the embedded
    Tansu broker's end offsets are right (docs/broker.md). A short fetch wait, because Tansu
    holds a fetch for most of it even when records are there.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
    )
    try:
        parts = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or [])]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end offsets {ends} in {timeout_s}s")
            for batch in consumer.poll(timeout_ms=100).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def flags(bootstrap: str, topic: str) -> list[triage_pb2.ConversationFlag]:
    return [triage_pb2.ConversationFlag.FromString(r.value) for r in read_all(bootstrap, topic)]


def scores(bootstrap: str, topic: str) -> list[triage_pb2.MessageScore]:
    return [triage_pb2.MessageScore.FromString(r.value) for r in read_all(bootstrap, topic)]


def wait_for(condition: Callable[[], Any], timeout_s: float, interval_s: float = 0.5, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what or condition}")
        time.sleep(interval_s)


# -- workers ---------------------------------------------------------------------------------


class TriageWorker:
    """One ``python -m cctriage_triage`` subprocess."""

    def __init__(self, env: dict[str, str], log_path: Path, command: list[str] | None = None) -> None:
        self.env = env
        self.port = int(env["TRIAGE_WEB_PORT"])
        self.log_path = log_path
        self.command = command or [sys.executable, "-m", "cctriage_triage"]
        self.process: subprocess.Popen | None = None

    def start(self) -> TriageWorker:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
        log.close()
        return self

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def ready(self) -> bool:
        with contextlib.suppress(OSError):
            status, body = self.get("/readyz")
            return status == 200 and json.loads(body)["ready"]
        return False

    def wait_ready(self, timeout_s: float = 60.0) -> TriageWorker:
        def check() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.tail()}")
            return self.ready()

        try:
            wait_for(check, timeout_s, 0.3, "worker ready")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.tail()}") from None
        return self

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        from prometheus_client.parser import text_string_to_metric_families

        _, body = self.get("/metrics")
        total = 0.0
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                    total += sample.value
        return total

    def tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def terminate(self) -> None:
        """SIGTERM once (a second SIGTERM during shutdown is not a graceful stop)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout_s: float = 20.0) -> int | None:
        """Exit code after ``terminate()``; SIGKILL and None if it takes longer than ``timeout_s``."""
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM, wait up to ``timeout_s``, then SIGKILL. Returns the exit code (None if killed)."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return None


class WorkerFactory:
    """Starts workers of one app (same group, same topics) and stops them all at the end."""

    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        tmp: Path,
        routing_target: str,
        partitions: int = 4,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.tmp = tmp
        self.partitions = partitions
        self.app_id = f"{prefix}triage"
        self.routing_target = routing_target
        self.extra_env = extra_env or {}
        self.workers: list[TriageWorker] = []

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def env(self, **overrides: str) -> dict[str, str]:
        index = len(self.workers)
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "CCTRIAGE_TOPIC_PREFIX": self.prefix,
            "CCTRIAGE_TOPIC_PARTITIONS": str(self.partitions),
            "TRIAGE_APP_ID": self.app_id,
            "TRIAGE_WEB_PORT": str(free_port()),
            "TRIAGE_DATA_DIR": str(self.tmp / f"worker-{index}"),
            "TRIAGE_ROUTING_TARGET": self.routing_target,
            "TRIAGE_ROUTING_BACKOFF_MAX_S": "0.5",
            "TRIAGE_MODEL_THREADS": "1",
            **self.extra_env,
        }
        env.update(overrides)
        return env

    def start(self, **overrides: str) -> TriageWorker:
        worker = TriageWorker(self.env(**overrides), self.tmp / f"worker-{len(self.workers)}.log")
        self.workers.append(worker)
        return worker.start()

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop(15)


@contextlib.contextmanager
def worker_factory(*args: Any, **kwargs: Any) -> Iterator[WorkerFactory]:
    factory = WorkerFactory(*args, **kwargs)
    try:
        yield factory
    finally:
        factory.stop_all()


# -- steady load, routing as a process, agents at their desks (fault tests) -------------------


def end_offsets_total(bootstrap: str, topic: str) -> int:
    """Records in ``topic`` so far (sum of end offsets; right for topics the worker writes)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        parts = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or [])]
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()


def partition_of(conversation_id: str, partitions: int) -> int:
    """The partition kafka-python's default partitioner picks for this key (murmur2)."""
    from kafka.partitioner.default import murmur2

    return (murmur2(conversation_id.encode()) & 0x7FFFFFFF) % partitions


class SteadyLoad:
    """Publishes support events at a steady rate from a thread until ``stop()``.

    A pool of ``active`` conversations is worked round-robin, one event per tick; a finished
    conversation is replaced by a new one. Every ``escalating_every``-th conversation is an
    escalating one (the ESCALATING texts, repeat contact), the others calm (CALM texts and an
    agent reply). ``stop()`` flushes and keeps only events the broker acknowledged.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        rate_per_s: float = 10.0,
        active: int = 6,
        escalating_every: int = 2,
    ) -> None:
        import threading

        self.bootstrap = bootstrap
        self.topic = topic
        self.rate_per_s = rate_per_s
        self.active = active
        self.escalating_every = escalating_every
        self.escalating: set[str] = set()
        self.calm: set[str] = set()
        self.customer_events: dict[str, float] = {}  # acknowledged customer message -> wall time
        self.conversation_of: dict[str, str] = {}  # event id -> conversation id
        self.t0 = time.time()
        self.finished: set[str] = set()  # conversations whose every event was published
        self._sent: list[tuple[events_pb2.SupportEvent, float, Any]] = []
        self._started = itertools.count()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steady-load", daemon=True)
        self.error: BaseException | None = None

    def _plan(self) -> tuple[str, Iterator[events_pb2.SupportEvent]]:
        conversation = Conversation(step_s=5.0)
        if next(self._started) % self.escalating_every == 0:
            self.escalating.add(conversation.conversation_id)
            steps = [lambda: conversation.opened(prior_contacts=1)]
            steps += [lambda t=t: conversation.customer(t) for t in ESCALATING]
        else:
            self.calm.add(conversation.conversation_id)
            steps = [conversation.opened, lambda: conversation.customer(CALM[0])]
            steps += [lambda: conversation.agent("It ships tomorrow.")]
            steps += [lambda t=t: conversation.customer(t) for t in CALM[1:]]
        return conversation.conversation_id, (step() for step in steps)

    def _run(self) -> None:
        prod = producer(self.bootstrap)
        try:
            pool = [self._plan() for _ in range(self.active)]
            started = time.monotonic()
            for n in itertools.count():
                if self._stop.is_set():
                    break
                delay = started + n / self.rate_per_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                slot = n % len(pool)
                conversation_id, events = pool[slot]
                event = next(events, None)
                if event is None:
                    self.finished.add(conversation_id)
                    pool[slot] = self._plan()
                    conversation_id, events = pool[slot]
                    event = next(events)
                future = prod.send(
                    self.topic, key=event.conversation_id.encode(), value=event.SerializeToString()
                )
                self._sent.append((event, time.time(), future))
            prod.flush(30)
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc
        finally:
            prod.close(10)

    def start(self) -> SteadyLoad:
        self.t0 = time.time()
        self._thread.start()
        return self

    @property
    def published(self) -> int:
        return len(self._sent)

    def customer_events_before(self, wall_time: float) -> set[str]:
        return {e for e, at in self.customer_events.items() if at <= wall_time}

    def stop(self) -> SteadyLoad:
        self._stop.set()
        self._thread.join(60)
        if self.error is not None:
            raise AssertionError(f"load generator failed: {self.error!r}")
        for event, at, future in self._sent:
            if future.is_done and future.succeeded() and event.WhichOneof("payload") == "message_posted":
                if event.message_posted.author_role == events_pb2.AUTHOR_ROLE_CUSTOMER:
                    self.customer_events[event.event_id] = at
                    self.conversation_of[event.event_id] = event.conversation_id
        unacked = sum(1 for _, _, f in self._sent if not (f.is_done and f.succeeded()))
        if unacked:
            raise AssertionError(f"{unacked} of {len(self._sent)} events not acknowledged by the broker")
        return self


ROUTING_TOKEN = "fault-triage-token"
SUPERVISOR_TOKEN = "fault-supervisor-token"


class RoutingProcess:
    """``python -m cctriage_routing`` on a fixed port with its journal under ``tmp``: can be
    killed (SIGKILL), stopped (SIGTERM) and started again on the same journal and port.
    Auth on: triage, supervisor and one token per agent in ``agents``."""

    def __init__(self, tmp: Path, agents: Iterable[str] = (), **env: str) -> None:
        from cctriage_routing.testing import server_environment

        tokens = [f"{ROUTING_TOKEN}=triage", f"{SUPERVISOR_TOKEN}=supervisor"]
        tokens += [f"agent-{a}-token=agent:{a}" for a in agents]
        self.environ = server_environment(
            tmp,
            ROUTING_AUTH_ENABLED="1",
            ROUTING_AUTH_TOKENS=",".join(tokens),
            ROUTING_METRICS_PORT="-1",
            ROUTING_OFFER_TIMEOUT_SECONDS="300",
            ROUTING_BULLSEYE_WIDEN_SECONDS="3600",
            **env,
        )
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> RoutingProcess:
        from cctriage_routing.testing import start_process

        _, self.process = start_process(self.environ, port=self.port)  # returns once SERVING
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout_s: float = 15.0) -> int | None:
        if not self.alive():
            return None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def _supervisor(self, method: str, request: Any) -> Any:
        import grpc
        from cctriage.routing.v1 import routing_pb2_grpc

        with grpc.insecure_channel(self.address) as channel:
            stub = routing_pb2_grpc.SupervisorStub(channel)
            return getattr(stub, method)(
                request, timeout=10, metadata=[("authorization", f"Bearer {SUPERVISOR_TOKEN}")]
            )

    def queue(self, tenant: str = "acme") -> dict[str, Any]:
        """Waiting and offered conversations by id (WaitingConversation)."""
        from cctriage.routing.v1 import routing_pb2

        snap = self._supervisor(
            "GetQueueSnapshot", routing_pb2.QueueSnapshotRequest(tenant_id=tenant, limit=100000)
        )
        return {c.conversation_id: c for c in snap.conversations}

    def agents(self, tenant: str = "acme") -> dict[str, Any]:
        """Logged-in agents by id (AgentStatus: state, conversation_ids held)."""
        from cctriage.routing.v1 import routing_pb2

        snap = self._supervisor("GetAgentSnapshot", routing_pb2.AgentSnapshotRequest(tenant_id=tenant))
        return {a.agent_id: a for a in snap.agents}

    def placement(self, tenant: str = "acme") -> dict[str, list[str]]:
        """Where every live conversation is: id -> ["waiting" | "offered:<agent>" | "held:<agent>"].
        More than one entry for a conversation is a doubled assignment."""
        from cctriage.routing.v1 import routing_pb2

        where: dict[str, list[str]] = {}
        for conversation_id, c in self.queue(tenant).items():
            offered = c.status == routing_pb2.CONVERSATION_STATUS_OFFERED
            where.setdefault(conversation_id, []).append(f"offered:{c.offered_to}" if offered else "waiting")
        for agent_id, agent in self.agents(tenant).items():
            for conversation_id in agent.conversation_ids:
                where.setdefault(conversation_id, []).append(f"held:{agent_id}")
        return where


class AgentDesk:
    """One agent at a desktop, in a thread: logs in (tier 1, billing, English, chat), keeps its
    offer stream open (reconnecting while the routing service is away) and accepts every offer,
    or with ``accept=False`` lets offers sit (they stay outstanding until the offer timeout).

    ``accepted`` (shared between desks) records every acknowledged assignment as
    conversation id -> {(agent, offer id)}: two entries for one conversation is a double
    assignment. ``offers`` are the offer ids this desk was sent.
    """

    def __init__(
        self, routing: RoutingProcess, agent_id: str, accepted: dict, capacity: int = 3, accept: bool = True
    ) -> None:
        import threading

        self.routing = routing
        self.agent_id = agent_id
        self.accepted = accepted
        self.capacity = capacity
        self.accept = accept
        self.offers: dict[str, str] = {}  # offer id -> conversation id
        self.reconnects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"desk-{agent_id}", daemon=True)
        self._call = None

    @property
    def metadata(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer agent-{self.agent_id}-token")]

    def _stub(self, channel):
        from cctriage.routing.v1 import routing_pb2_grpc

        return routing_pb2_grpc.AgentDesktopStub(channel)

    def login(self) -> AgentDesk:
        import grpc
        from cctriage.events.v1 import events_pb2 as ev
        from cctriage.routing.v1 import routing_pb2

        with grpc.insecure_channel(self.routing.address) as channel:
            self._stub(channel).Login(
                routing_pb2.LoginRequest(
                    agent_id=self.agent_id,
                    tenant_id="acme",
                    tier=1,
                    skills=[routing_pb2.AgentSkill(skill="billing", proficiency=5)],
                    languages=["en"],
                    capacities=[routing_pb2.ChannelCapacity(channel=ev.CHANNEL_CHAT, capacity=self.capacity)],
                ),
                timeout=10,
                metadata=self.metadata,
            )
        return self

    def set_state(self, state: int, reason: str = "") -> None:
        import grpc
        from cctriage.routing.v1 import routing_pb2

        with grpc.insecure_channel(self.routing.address) as channel:
            self._stub(channel).SetState(
                routing_pb2.SetStateRequest(agent_id=self.agent_id, state=state, reason=reason),
                timeout=10,
                metadata=self.metadata,
            )

    def _run(self) -> None:
        import grpc
        from cctriage.routing.v1 import routing_pb2

        while not self._stop.is_set():
            try:
                with grpc.insecure_channel(self.routing.address) as channel:
                    stub = self._stub(channel)
                    self._call = stub.StreamOffers(
                        routing_pb2.StreamOffersRequest(agent_id=self.agent_id), metadata=self.metadata
                    )
                    for event in self._call:
                        if event.WhichOneof("event") != "offer":
                            continue
                        offer = event.offer
                        self.offers[offer.offer_id] = offer.conversation_id
                        if not self.accept:
                            continue
                        try:
                            reply = stub.AcceptOffer(
                                routing_pb2.AcceptOfferRequest(
                                    agent_id=self.agent_id, offer_id=offer.offer_id
                                ),
                                timeout=10,
                                metadata=self.metadata,
                            )
                        except grpc.RpcError as exc:
                            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                                raise
                            continue  # revoked or expired meanwhile: the next offer comes
                        self.accepted.setdefault(reply.conversation_id, set()).add(
                            (self.agent_id, offer.offer_id)
                        )
            except grpc.RpcError:
                pass
            if not self._stop.is_set():
                self.reconnects += 1
                self._stop.wait(0.3)

    def start(self) -> AgentDesk:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        call = self._call
        if call is not None:
            call.cancel()
        self._thread.join(10)
