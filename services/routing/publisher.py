"""Publishes every routing decision to Kafka from a background thread.

Routing never waits for Kafka: ``publish`` only appends to a bounded local buffer. If Kafka
is down long enough for the buffer to fill, decisions are dropped and counted
(``routing_decisions_published_total{result="dropped"}``); the journal, not Kafka, is the
source of truth for routing state.
"""

from __future__ import annotations

import logging
import queue
import threading

from cctriage_routing import metrics
from cctriage_routing.engine import Decision

log = logging.getLogger(__name__)


class DecisionPublisher:
    def __init__(self, bootstrap_servers: str, topic: str, buffer: int = 200_000) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self._queue: queue.Queue = queue.Queue(maxsize=buffer)
        self._thread: threading.Thread | None = None
        self._done = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="decision-publisher", daemon=True)
        self._thread.start()

    def publish(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            try:
                self._queue.put_nowait(decision)
            except queue.Full:
                metrics.decisions_published.labels("dropped").inc()

    def _run(self) -> None:
        from cctriage_routing.server import decision_message
        from kafka import KafkaProducer

        producer = None
        while producer is None:
            try:
                producer = KafkaProducer(
                    bootstrap_servers=self.bootstrap_servers.split(","),
                    acks="all",
                    linger_ms=20,
                    retries=5,
                    client_id="cctriage-routing",
                )
            except Exception:  # noqa: BLE001 - broker not reachable yet: keep buffering, retry
                log.warning("kafka not reachable for routing decisions; retrying", exc_info=True)
                if self._done.wait(2.0):
                    return

        def sent(_metadata) -> None:
            metrics.decisions_published.labels("sent").inc()

        def failed(exc) -> None:
            metrics.decisions_published.labels("failed").inc()
            log.warning("routing decision not published: %s", type(exc).__name__)

        try:
            while True:
                item = self._queue.get()
                if item is None:
                    break
                message = decision_message(item)
                future = producer.send(
                    self.topic, key=item.conversation_id.encode(), value=message.SerializeToString()
                )
                future.add_callback(sent).add_errback(failed)
        finally:
            producer.flush(timeout=10)
            producer.close(timeout=5)
            self._done.set()

    def close(self, timeout: float = 10.0) -> None:
        """Send what is buffered, then stop."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout=timeout)
