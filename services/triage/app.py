"""The triage worker's faust app: topics, the conversation table, agents, lifecycle, pages.

    python -m cctriage_triage        (or: cctriage-triage)

Agents (verbs): ``score_messages`` reads support events in batches and writes scores, flags,
alerts and dead letters (processor.py); ``route_flags`` reads the flags and makes the routing
calls (delivery.py). Delivery guarantees are described in those two modules.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

import faust
from cctriage_common import topics as declared
from cctriage_common.events import MAX_EVENT_BYTES
from cctriage_common.kafka import faust_config
from cctriage_triage import metrics, transport
from cctriage_triage.delivery import RoutingDelivery
from cctriage_triage.processor import Triage
from cctriage_triage.retention import ConversationTable, Retention
from cctriage_triage.settings import load_settings
from faust.exceptions import ConsumerNotStarted
from mode import Service
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)

settings = load_settings()
scheme = transport.register(settings.fetch_max_wait_ms)

# A dead letter is the original record plus dlq.* headers, so the producer must take anything the
# events topic took (up to ~1 MiB on a default Kafka) plus those headers. With faust's default
# (1,000,000 bytes) a ~1 MB event crashed the worker, and again after every restart (issue 7).
PRODUCER_MAX_REQUEST_BYTES = 2 * MAX_EVENT_BYTES

app = faust.App(
    settings.app_id,
    **{
        **faust_config(settings.kafka, settings.topics),
        # Same servers, through the transport with a bounded fetch wait (transport.py).
        "broker": [f"{scheme}://{server}" for server in settings.bootstrap_servers.split(",")],
    },
    store="memory://",
    producer_max_request_size=PRODUCER_MAX_REQUEST_BYTES,
    datadir=settings.data_dir,
    topic_allow_declare=True,
    table_standby_replicas=0,
    web_enabled=True,
    web_bind=settings.web_bind,
    web_port=settings.web_port,
    web_host=settings.web_bind,
)


def _topic(spec: declared.TopicSpec) -> faust.TopicT:
    return app.topic(
        settings.topic(spec.name),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )


support_events = _topic(declared.SUPPORT_EVENTS)
dead_letters = _topic(declared.SUPPORT_EVENTS_DLQ)
message_scores = _topic(declared.MESSAGE_SCORES)
conversation_flags = _topic(declared.CONVERSATION_FLAGS)
supervisor_alerts = _topic(declared.SUPERVISOR_ALERTS)

# Closed conversations leave the table after a grace, idle ones after a TTL (retention.py).
retention = Retention(settings.closed_grace_s, settings.idle_ttl_s)
conversations = app.tables.add(
    ConversationTable(
        app,
        name="conversations",
        default=None,
        beacon=app.tables.beacon,
        partitions=settings.partitions,
        # JSON both ways so keys recovered from the changelog are str again, as when written.
        schema=faust.Schema(key_serializer="json", value_serializer="json"),
        retention=retention,
    )
)


class Model:
    """The ONNX model, loaded by the lifecycle service; agents wait for it."""

    instance: Any = None
    loaded = asyncio.Event()

    @classmethod
    def get(cls) -> Any:
        return cls.instance


routing = RoutingDelivery(
    settings.routing_target,
    settings.routing_timeout_s,
    settings.routing_backoff_initial_s,
    settings.routing_backoff_max_s,
    settings.routing_token,
    handoff=settings.routing_handoff,
)
triage = Triage(
    config=settings.policy,
    conversations=conversations,
    retention=retention,
    message_scores=message_scores,
    conversation_flags=conversation_flags,
    supervisor_alerts=supervisor_alerts,
    dead_letters=dead_letters,
    model_provider=Model.get,
    on_fatal=app.crash,
    batch_size=settings.batch_size,
    run_size=settings.model_batch_size,
    scorers=settings.model_parallel_runs,
    hand_off=routing.hand_off,
)


@app.agent(support_events)
async def score_messages(stream: faust.StreamT) -> None:
    await Model.loaded.wait()
    # Event by event, not take_events: the scorer batches whatever waits while the model runs
    # (dynamic batching, no window to wait out). take_events woke every ``within`` seconds
    # through mode's wait_first even when idle, and added that window to every event's latency.
    async for event in stream.events():
        await triage.accept([event])


@app.agent(conversation_flags)
async def route_flags(stream: faust.StreamT) -> None:
    # Manual acks: a flag is acked only once the routing service acknowledged its call. A flag
    # handed back on stop or revocation stays un-acked and is read again from its offset.
    flags = stream.noack()
    async for event in flags.events():
        transport.take(event.message)
        outcome = await routing.deliver_read(
            event.message.value, event.message.headers, keep_trying=app.flow_control.is_active
        )
        if outcome is not None:
            await flags.ack(event)
        else:
            # Release it without acking: faust stops waiting for it (stop, rebalance), and as its
            # offset was never acked, the committed offset stays before it.
            event.message.acked = True


@app.service
class Lifecycle(Service):
    """Loads the model and opens the routing channel at start; closes them at stop."""

    async def on_start(self) -> None:
        from cctriage_common.sentiment import SentimentModel

        await routing.start()
        started = time.perf_counter()
        model = await asyncio.to_thread(
            SentimentModel.load,
            model_dir=settings.model_dir or None,
            intra_op_threads=settings.model_threads,
            inter_op_threads=1,
            allow_spinning=settings.model_spinning,
        )
        Model.instance = model
        Model.loaded.set()
        metrics.MODEL_INFO.labels(model.version).set(1)
        log.info(
            "model loaded",
            extra={
                "model_version": model.version,
                "seconds": round(time.perf_counter() - started, 2),
                # uvloop or asyncio (TRIAGE_EVENT_LOOP), as actually running.
                "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
                # TRIAGE_GC_THRESHOLDS, as in effect.
                "gc_thresholds": list(gc.get_threshold()),
            },
        )

    async def on_stop(self) -> None:
        await triage.drain()
        await routing.stop()
        triage.close()


def readiness() -> dict[str, Any]:
    try:
        assigned = len(app.consumer.assignment())
    except ConsumerNotStarted:
        assigned = 0
    checks = {
        "model_loaded": Model.loaded.is_set(),
        "partitions_assigned": assigned > 0,
        "recovered": not app.rebalancing and not getattr(app, "in_recovery", False),
    }
    return {"ready": all(checks.values()), "checks": checks, "partitions": assigned}


@app.timer(interval=5.0)
async def measure_lag() -> None:
    consumer = app.consumer
    lag: dict[str, int] = {}
    names = {settings.topic(declared.SUPPORT_EVENTS.name): "support-events",
             settings.topic(declared.CONVERSATION_FLAGS.name): "conversation-flags"}
    for tp in consumer.assignment():
        role = names.get(tp.topic)
        if role is None:
            continue
        position = await consumer.position(tp)
        highwater = consumer.highwater(tp)
        if position is not None and highwater is not None:
            lag[role] = lag.get(role, 0) + max(0, highwater - position)
    for role in names.values():
        metrics.CONSUMER_LAG.labels(role).set(lag.get(role, 0))
    metrics.READY.set(1 if readiness()["ready"] else 0)


@app.page("/healthz")
async def healthz(web: Any, request: Any) -> Any:
    return web.json({"status": "ok"})


@app.page("/readyz")
async def readyz(web: Any, request: Any) -> Any:
    state = readiness()
    return web.json(state, status=200 if state["ready"] else 503)


@app.page("/metrics")
async def prometheus_metrics(web: Any, request: Any) -> Any:
    return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])
