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
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
        auto_offset_reset="earliest", fetch_max_wait_ms=20,
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


def wait_for(
    condition: Callable[[], Any], timeout_s: float, interval_s: float = 0.5, what: str = ""
) -> Any:
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
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in (labels or {}).items()
                ):
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
