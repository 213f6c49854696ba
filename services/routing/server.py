"""The routing gRPC server: TriageRouting, AgentDesktop, Supervisor, health, reflection.

One ``RoutingServer`` owns the engine, its lock, the journal, the timer thread, the offer
streams and the decision publisher. Every mutating RPC runs the engine under the lock,
hands the dirty rows to the journal in the same order, and answers only once they are
committed (see journal.py).
"""

from __future__ import annotations

import collections
import gc
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from cctriage.routing.v1 import routing_pb2 as pb
from cctriage.routing.v1 import routing_pb2_grpc as pb_grpc
from cctriage_routing import metrics
from cctriage_routing.engine import (
    ACCEPTED,
    AGENT_NOT_READY,
    D_OFFERED,
    DECLINED,
    OFFER_TIMED_OUT,
    OFFERED,
    OFFLINE,
    STATE_NAMES,
    WAITING,
    Agent,
    Conversation,
    Decision,
    Engine,
    RouteRequest,
    RoutingError,
    priority_band_index,
)
from cctriage_routing.journal import Journal, JournalError, collect
from cctriage_routing.publisher import DecisionPublisher
from cctriage_routing.settings import RoutingSettings
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

log = logging.getLogger(__name__)

SERVICE_NAMES = tuple(
    pb.DESCRIPTOR.services_by_name[name].full_name for name in ("TriageRouting", "AgentDesktop", "Supervisor")
)
_DECISION_KIND_NAMES = {
    v.number: v.name.removeprefix("DECISION_KIND_").lower() for v in pb.DecisionKind.DESCRIPTOR.values
}
_OUTCOME = {D_OFFERED: "offered", ACCEPTED: "accepted", DECLINED: "declined", OFFER_TIMED_OUT: "timed_out"}
# Label children made once (also exports every series at 0 from the start).
_DECISION_COUNTERS = {kind: metrics.decisions.labels(name) for kind, name in _DECISION_KIND_NAMES.items()}
_OUTCOME_COUNTERS = {kind: metrics.offers.labels(name) for kind, name in _OUTCOME.items()}


def _ts(seconds: float) -> Timestamp:
    ts = Timestamp()
    if seconds > 0:
        ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def _reasons(items: Any) -> list[pb.Reason]:
    return [pb.Reason(code=c, detail=d, value=v) for c, d, v in items]


# --------------------------------------------------------------------------- conversions


def agent_status(agent: Agent) -> pb.AgentStatus:
    return pb.AgentStatus(
        agent_id=agent.agent_id,
        tenant_id=agent.tenant_id,
        tier=agent.tier,
        state=agent.state,
        state_reason=agent.state_reason,
        state_since=_ts(agent.state_since),
        skills=[pb.AgentSkill(skill=s, proficiency=p) for s, p in agent.skills.items()],
        languages=list(agent.languages),
        load=[
            pb.ChannelLoad(
                channel=ch, active=sum(1 for c in agent.conversations.values() if c == ch), capacity=cap
            )
            for ch, cap in agent.capacity.items()
        ],
        queues=list(agent.queues),
        missed_offers=agent.missed_offers,
        last_assignment_at=_ts(agent.last_assignment_at),
        conversation_ids=list(agent.conversations),
    )


def decision_message(d: Decision) -> pb.RoutingDecision:
    return pb.RoutingDecision(
        decision_id=f"{d.conversation_id}:{d.kind}:{d.decided_at:.6f}:{d.offer_id}",
        kind=d.kind,
        conversation_id=d.conversation_id,
        agent_id=d.agent_id,
        tier=d.tier,
        priority=d.priority,
        effective_priority=d.effective_priority,
        waited_seconds=d.waited,
        reason=d.reason,
        triage_reasons=_reasons(d.triage_reasons),
        decided_at=_ts(d.decided_at),
        tenant_id=d.tenant_id,
        offer_id=d.offer_id,
    )


def _route_request(m: pb.RouteConversationRequest) -> RouteRequest:
    flagged = m.flagged_at.seconds + m.flagged_at.nanos / 1e9 if m.HasField("flagged_at") else 0.0
    # Comprehensions, and none for an empty field: this runs once per route (measured ~11 us
    # with generator expressions, a tenth of a streamed route's server CPU).
    reasons = m.reasons
    return RouteRequest(
        conversation_id=m.conversation_id,
        tenant_id=m.tenant_id,
        queue=m.queue,
        channel=m.channel,
        priority=m.priority,
        stress=m.stress,
        stressed=m.stressed,
        reasons=tuple([(r.code, r.detail, r.value) for r in reasons]) if reasons else (),
        skills=tuple([(s.skill, s.min_proficiency) for s in m.required_skills]),
        language=m.language,
        customer_tier=m.customer_tier,
        previous_agent_id=m.previous_agent_id,
        flagged_at=flagged,
        sequence=m.sequence,
        idempotency_key=m.idempotency_key,
    )


# --------------------------------------------------------------------------- interceptor


class MetricsInterceptor(grpc.ServerInterceptor):
    """Records grpc_server_handled_total and grpc_server_handling_seconds for every RPC."""

    def __init__(self) -> None:
        # gRPC calls intercept_service on every RPC; the wrapped handler per method is built
        # once (the registered handlers never change after start).
        self._wrapped: dict[str, Any] = {}

    def intercept_service(self, continuation, handler_call_details):
        wrapped = self._wrapped.get(handler_call_details.method)
        if wrapped is None:
            handler = continuation(handler_call_details)
            if handler is None:
                return None
            wrapped = self._wrapped[handler_call_details.method] = self._wrap(handler, handler_call_details)
        return wrapped

    def _wrap(self, handler, handler_call_details):
        _, _, full = handler_call_details.method.rpartition("/")
        service = handler_call_details.method[1:].rpartition("/")[0]
        method = full
        handled = metrics.grpc_server_handled
        seconds = metrics.grpc_server_handling_seconds.labels(service, method)
        handled_ok = handled.labels(service, method, "OK")

        def _code(context) -> str:
            code = context.code()
            return (code or grpc.StatusCode.OK).name

        if handler.unary_unary is not None:
            inner = handler.unary_unary

            def unary(request, context):
                start = time.perf_counter()
                try:
                    response = inner(request, context)
                except BaseException:
                    code = context.code()
                    handled.labels(service, method, (code or grpc.StatusCode.UNKNOWN).name).inc()
                    seconds.observe(time.perf_counter() - start)
                    raise
                code = context.code()
                if code is None or code is grpc.StatusCode.OK:
                    handled_ok.inc()
                else:
                    handled.labels(service, method, code.name).inc()
                seconds.observe(time.perf_counter() - start)
                return response

            return grpc.unary_unary_rpc_method_handler(
                unary, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream is not None:
            inner_stream = handler.unary_stream

            def stream(request, context):
                start = time.perf_counter()
                code_name = "OK"
                try:
                    yield from inner_stream(request, context)
                except BaseException:
                    code_name = (context.code() or grpc.StatusCode.UNKNOWN).name
                    raise
                finally:
                    if code_name == "OK":
                        code_name = _code(context)
                    handled.labels(service, method, code_name).inc()
                    seconds.observe(time.perf_counter() - start)

            return grpc.unary_stream_rpc_method_handler(
                stream, handler.request_deserializer, handler.response_serializer
            )
        if handler.stream_stream is not None:
            inner_bidi = handler.stream_stream

            def bidi(request_iterator, context):
                start = time.perf_counter()
                code_name = "OK"
                try:
                    yield from inner_bidi(request_iterator, context)
                except GeneratorExit:
                    code_name = "CANCELLED"
                    raise
                except BaseException:
                    code_name = (context.code() or grpc.StatusCode.UNKNOWN).name
                    raise
                finally:
                    if code_name == "OK":
                        code_name = _code(context)
                    handled.labels(service, method, code_name).inc()
                    seconds.observe(time.perf_counter() - start)

            return grpc.stream_stream_rpc_method_handler(
                bidi, handler.request_deserializer, handler.response_serializer
            )
        return handler


# --------------------------------------------------------------------------- authentication


class Auth:
    """Who is calling: a bearer token or, with mutual TLS, the client certificate's CN."""

    def __init__(self, settings: RoutingSettings) -> None:
        self.enabled = settings.auth_enabled
        self.tokens = settings.tokens()
        self.mtls = bool(settings.tls_client_ca)

    def principal(self, context: grpc.ServicerContext) -> str | None:
        if not self.enabled:
            return None
        for key, value in context.invocation_metadata():
            if key == "authorization":
                scheme, _, token = value.partition(" ")
                principal = self.tokens.get(token) if scheme.lower() == "bearer" else None
                if principal is None:
                    context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown bearer token")
                return principal
        if self.mtls:
            names = context.auth_context().get("x509_common_name")
            if names:
                return names[0].decode()
        context.abort(
            grpc.StatusCode.UNAUTHENTICATED,
            "credentials required: send 'authorization: Bearer <token>' or a client certificate",
        )
        raise AssertionError("unreachable")

    def require(self, context: grpc.ServicerContext, role: str) -> None:
        principal = self.principal(context)
        if principal is not None and principal != role:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{principal} may not call {role} methods")

    def require_agent(self, context: grpc.ServicerContext, agent_id: str) -> None:
        principal = self.principal(context)
        if principal is None:
            return
        if not principal.startswith("agent:"):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{principal} may not call AgentDesktop methods")
        if principal != f"agent:{agent_id}":
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{principal} may act only as agent {principal[6:]}, not as agent {agent_id or '(empty)'}",
            )


def tune_gc() -> None:
    """Keep the cyclic GC away from long-lived routing state.

    Agents and conversations live for minutes to hours and form almost no cycles, yet every
    full collection walks all of them: 0.2-0.6 s pauses at 10k agents / 50k waiting
    (measured). Freezing what exists after recovery and making full collections 100x rarer
    took the p99 of an agent-freed decision from 4.5 ms to about 0.5 ms in bench/routing_bench.py.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(700, 10, 1000)


# --------------------------------------------------------------------------- the server


class RoutingServer:
    def __init__(self, settings: RoutingSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.engine = Engine(settings.routing_config(), clock)
        self.lock = threading.Lock()
        self.journal = Journal(settings.journal_path, settings.journal_synchronous, settings.idempotency_keys)
        self.auth = Auth(settings)
        self.health = health.HealthServicer(experimental_non_blocking=True)
        for name in ("", *SERVICE_NAMES):
            self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        self.streams: dict[str, list[queue.SimpleQueue]] = {}
        self.publisher = (
            DecisionPublisher(settings.kafka_bootstrap_servers, settings.decisions_topic)
            if settings.kafka_bootstrap_servers
            else None
        )
        self._stopping = threading.Event()
        self._timer_thread: threading.Thread | None = None
        self._gauge_thread: threading.Thread | None = None
        self.grpc_server: grpc.Server | None = None
        self.port = 0
        self.metrics_port = 0
        self._metrics_http = None

    # ------------------------------------------------------------- lifecycle

    def start(self) -> int:
        """Recover the journal, bind, start; SERVING only after all of that. Returns the port."""
        self.recover()
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self.settings.threads, thread_name_prefix="rpc"),
            interceptors=[MetricsInterceptor()],
            options=[("grpc.so_reuseport", 0)],
        )
        pb_grpc.add_TriageRoutingServicer_to_server(TriageRoutingServicer(self), server)
        pb_grpc.add_AgentDesktopServicer_to_server(AgentDesktopServicer(self), server)
        pb_grpc.add_SupervisorServicer_to_server(SupervisorServicer(self), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        self.port = self._bind(server)
        server.start()
        self.grpc_server = server
        self._timer_thread = threading.Thread(target=self._run_timers, name="routing-timers", daemon=True)
        self._timer_thread.start()
        self._gauge_thread = threading.Thread(target=self._run_gauges, name="routing-gauges", daemon=True)
        self._gauge_thread.start()
        for name in ("", *SERVICE_NAMES):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        metrics.ready.set(1)
        log.info("routing server serving", extra={"port": self.port, "metrics_port": self.metrics_port})
        return self.port

    def recover(self) -> None:
        """Read the journal back into the engine; start the journal writer, /metrics, Kafka."""
        started = time.perf_counter()
        # Recovery allocates hundreds of thousands of long-lived objects: with the cyclic GC
        # on, it would re-walk them over and over while they are being created.
        gc.disable()
        try:
            counts = self.journal.load(self.engine)
        finally:
            tune_gc()
            gc.enable()
        self.journal.start()
        log.info(
            "journal recovered",
            extra={
                **counts,
                "seconds": round(time.perf_counter() - started, 3),
                "path": self.settings.journal_path,
            },
        )
        if self.settings.metrics_port >= 0:
            from prometheus_client import start_http_server

            http, _thread = start_http_server(
                self.settings.metrics_port, addr=self.settings.metrics_host, registry=metrics.REGISTRY
            )
            self._metrics_http = http
            self.metrics_port = http.server_port
        if self.publisher is not None:
            self.publisher.start()

    def _bind(self, server: grpc.Server) -> int:
        s = self.settings
        if not s.tls_cert:
            port = server.add_insecure_port(s.listen)
        else:
            key = Path(s.tls_key).read_bytes()
            cert = Path(s.tls_cert).read_bytes()
            ca = Path(s.tls_client_ca).read_bytes() if s.tls_client_ca else None
            creds = grpc.ssl_server_credentials(
                [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
            )
            port = server.add_secure_port(s.listen, creds)
        if port == 0:
            raise RuntimeError(f"could not bind gRPC on {s.listen}")
        return port

    def stop(self, grace: float | None = None) -> None:
        """Graceful stop: NOT_SERVING, finish in-flight RPCs, end streams, flush the journal."""
        grace = self.settings.grace_seconds if grace is None else grace
        for name in ("", *SERVICE_NAMES):
            self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        metrics.ready.set(0)
        self._stopping.set()
        with self.lock:
            for queues in self.streams.values():
                for q in queues:
                    q.put(None)
        if self.grpc_server is not None:
            self.grpc_server.stop(grace).wait(grace + 1)
        if self._timer_thread is not None:
            self._timer_thread.join(timeout=5)
        self.journal.close()
        if self.publisher is not None:
            self.publisher.close(timeout=max(1.0, grace))
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
        log.info("routing server stopped")

    # ------------------------------------------------------------- the engine, under lock

    def apply(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn`` on the engine; return once its state changes are durable."""
        return_value, ticket = self.apply_nowait(fn, *args)
        if ticket is not None:
            self.journal.wait(ticket)
        return return_value

    def apply_nowait(
        self, fn: Callable[..., Any], *args: Any, on_commit: Callable[[], None] | None = None
    ) -> tuple[Any, Any]:
        """Run ``fn`` on the engine and queue its changes: (result, journal ticket or None).

        Nothing may be acknowledged before ``journal.wait(ticket)`` returns (or ``on_commit``
        runs, on the journal thread). Tickets commit in the order they were handed out, so a
        stream can keep many in flight.
        """
        ticket = None
        with self.lock:
            try:
                return_value = fn(*args)
            finally:
                ops = collect(self.engine)
                decisions, events = self.engine.drain()
                if ops or decisions or events:
                    pushes = self._stream_pushes(events)

                    def after() -> None:
                        self._after_commit(decisions, pushes)
                        if on_commit is not None:
                            on_commit()

                    ticket = self.journal.submit(ops, after=after)
        return return_value, ticket

    def _stream_pushes(self, events: list[tuple]) -> list[tuple[str, pb.OfferEvent | None]]:
        """Build the desktop messages now (under the lock), send them after the commit."""
        pushes: list[tuple[str, pb.OfferEvent | None]] = []
        if not self.streams:
            return pushes
        engine = self.engine
        for event in events:
            agent_id = event[1]
            if agent_id not in self.streams:
                continue
            if event[0] == "offer":
                offer = engine.offers.get(event[2])
                if offer is not None:
                    pushes.append((agent_id, pb.OfferEvent(offer=self._offer_message(offer))))
            elif event[0] == "revoke":
                _, _, offer_id, conv_id, reason = event
                revoked = pb.OfferRevoked(offer_id=offer_id, conversation_id=conv_id, reason=reason)
                pushes.append((agent_id, pb.OfferEvent(revoked=revoked)))
            elif event[0] == "status":
                agent = engine.agents[agent_id]
                pushes.append((agent_id, pb.OfferEvent(status=agent_status(agent))))
                if agent.state == OFFLINE:
                    pushes.append((agent_id, None))
        return pushes

    def _offer_message(self, offer) -> pb.Offer:
        conv: Conversation = self.engine.conversations[offer.conversation_id]
        return pb.Offer(
            offer_id=offer.offer_id,
            conversation_id=conv.conversation_id,
            channel=conv.channel,
            priority=conv.priority,
            stress=conv.stress,
            stressed=conv.stressed,
            reasons=_reasons(conv.reasons),
            expires_at=_ts(offer.expires_at),
            routing_reason=offer.reason,
            waited_seconds=offer.waited,
            language=conv.language,
            customer_tier=conv.customer_tier,
        )

    def _after_commit(self, decisions: list[Decision], pushes: list) -> None:
        for agent_id, message in pushes:
            for q in self.streams.get(agent_id, ()):
                q.put(message)
        for d in decisions:
            _DECISION_COUNTERS[d.kind].inc()
            outcome = _OUTCOME_COUNTERS.get(d.kind)
            if outcome is not None:
                outcome.inc()
            if d.kind == ACCEPTED:
                metrics.assignments.labels(str(d.tier), d.reason_code).inc()
                metrics.wait_seconds.labels(metrics.priority_band(d.priority), str(d.tier)).observe(d.waited)
            elif d.kind == AGENT_NOT_READY:
                metrics.agents_not_ready.inc()
        if self.publisher is not None:
            self.publisher.publish(decisions)

    def _run_timers(self) -> None:
        while not self._stopping.is_set():
            with self.lock:
                due = self.engine.next_timer()
            now = self.engine.clock()
            if due is not None and due <= now:
                try:
                    self.apply(self.engine.tick)
                except JournalError:
                    log.exception("timer tick could not be journaled")
                    self._stopping.wait(1.0)
                continue
            wait = 0.2 if due is None else min(0.2, max(0.001, due - now))
            self._stopping.wait(wait)

    def _run_gauges(self) -> None:
        # The oldest wait needs a walk over every conversation: 68 ms at 90,000 (measured),
        # 7 % of the one core Python code gets, once a second, which streamed routes felt.
        # Walk at most every 100 x its own duration (<= 1 % of a core); the other gauges
        # are cheap and stay at once a second.
        next_walk = 0.0
        while not self._stopping.wait(1.0):
            walk = time.monotonic() >= next_walk
            started = time.monotonic()
            self.refresh_gauges(oldest_wait=walk)
            if walk:
                next_walk = time.monotonic() + 100 * (time.monotonic() - started)

    def refresh_gauges(self, oldest_wait: bool = True) -> None:
        """Set the state gauges; ``oldest_wait=False`` keeps the oldest-wait gauge as it is."""
        with self.lock:
            bands = list(self.engine.waiting_by_band)
            # The walk for the oldest wait runs on a copy, outside the lock (under it, it
            # stalled every route); the gauge may be a route or two behind.
            conversations = list(self.engine.conversations.values()) if oldest_wait else []
            now = self.engine.clock()
            occupancy = self.engine.senior_occupancy()
            counts: dict[tuple[str, str], int] = {}
            for agent in self.engine.agents.values():
                if agent.state != OFFLINE:
                    key = (STATE_NAMES[agent.state], str(agent.tier))
                    counts[key] = counts.get(key, 0) + 1
        oldest = [0.0, 0.0, 0.0, 0.0]
        for conv in conversations:
            if conv.status == WAITING or conv.status == OFFERED:
                band = priority_band_index(conv.priority)
                oldest[band] = max(oldest[band], now - conv.enqueued_at)
        for name, value in zip(metrics.PRIORITY_BANDS, bands, strict=True):
            metrics.queue_depth.labels(name).set(value)
        if oldest_wait:
            for name, seconds in zip(metrics.PRIORITY_BANDS, oldest, strict=True):
                metrics.oldest_wait_seconds.labels(name).set(seconds)
        metrics.senior_occupancy.set(occupancy)
        for state in STATE_NAMES.values():
            if state == "offline":
                continue
            for tier in range(1, self.settings.tiers + 1):
                metrics.agents_by_state.labels(state, str(tier)).set(counts.get((state, str(tier)), 0))

    # ------------------------------------------------------------- streams

    def open_stream(self, agent_id: str) -> tuple[queue.SimpleQueue, list[pb.OfferEvent]]:
        q: queue.SimpleQueue = queue.SimpleQueue()
        with self.lock:
            agent = self.engine.agents.get(agent_id)
            if agent is None:
                raise RoutingError("NOT_FOUND", f"unknown agent {agent_id}")
            first = [pb.OfferEvent(status=agent_status(agent))]
            for offer_id in agent.offers:
                first.append(pb.OfferEvent(offer=self._offer_message(self.engine.offers[offer_id])))
            self.streams.setdefault(agent_id, []).append(q)
        return q, first

    def close_stream(self, agent_id: str, q: queue.SimpleQueue) -> None:
        with self.lock:
            queues = self.streams.get(agent_id, [])
            if q in queues:
                queues.remove(q)
            if not queues:
                self.streams.pop(agent_id, None)


def _abort(context: grpc.ServicerContext, exc: Exception) -> None:
    if isinstance(exc, RoutingError):
        context.abort(grpc.StatusCode[exc.code], exc.message)
    if isinstance(exc, JournalError):
        context.abort(grpc.StatusCode.UNAVAILABLE, f"state could not be made durable: {exc}")
    raise exc


# Route requests a RouteStream reads ahead of the acks the caller has received.
STREAM_WINDOW = 1000
_NOTHING = object()  # nothing arrived


def _committed(ticket) -> bool:
    """Whether ``journal.wait(ticket)`` would return at once (a ticket is a lock the
    journal releases on commit; see Journal.submit)."""
    if ticket is None:
        return True
    if ticket.acquire(blocking=False):
        ticket.release()
        return True
    return False


def _error_ack(message: pb.RouteConversationRequest, exc: RoutingError) -> pb.RouteAck:
    return pb.RouteAck(
        idempotency_key=message.idempotency_key,
        error_code=grpc.StatusCode[exc.code].value[0],
        error_message=exc.message,
    )


class TriageRoutingServicer(pb_grpc.TriageRoutingServicer):
    def __init__(self, server: RoutingServer) -> None:
        self.s = server

    def RouteConversation(self, request, context):  # noqa: N802
        self.s.auth.require(context, "triage")
        try:
            r = self.s.apply(self.s.engine.route, _route_request(request))
        except (RoutingError, JournalError) as exc:
            _abort(context, exc)
        return pb.RouteConversationResponse(
            conversation_id=r.conversation_id, status=r.status, duplicate=r.duplicate, agent_id=r.agent_id
        )

    def RouteConversations(self, request, context):  # noqa: N802
        self.s.auth.require(context, "triage")
        items = [_route_request(m) for m in request.requests]
        engine = self.s.engine

        def route_all():
            for i, item in enumerate(items):
                try:
                    engine.validate_route(item)
                except RoutingError as exc:
                    raise RoutingError(exc.code, f"requests[{i}].{exc.message}") from None
            return [engine.route(item) for item in items]

        try:
            results = self.s.apply(route_all)
        except (RoutingError, JournalError) as exc:
            _abort(context, exc)
        return pb.RouteConversationsResponse(
            responses=[
                pb.RouteConversationResponse(
                    conversation_id=r.conversation_id,
                    status=r.status,
                    duplicate=r.duplicate,
                    agent_id=r.agent_id,
                )
                for r in results
            ]
        )

    def RouteStream(self, request_iterator, context):  # noqa: N802
        """One route per request, one ack per request, in order, each sent once durable.

        A reader thread only takes requests off the wire and queues them. This generator
        takes whatever has queued since its last turn, applies it as one batch (one engine
        lock take, one journal ticket), waits for that commit and sends the batch's acks.
        Each route keeps its own key and its own answer (a refused one gets its error ack),
        exactly as ``RouteConversation`` would answer it, while the thread handoffs, lock
        takes and commit waits are paid per batch, not per route: at one route per message
        they, not the routing, were most of the server's CPU (services/routing/README.md).
        """
        self.s.auth.require(context, "triage")
        server = self.s
        route = server.engine.route
        arrived: queue.SimpleQueue = queue.SimpleQueue()  # requests, then None at the end
        # Requests read but not yet acked: a caller that sends without reading its acks
        # is slowed down by gRPC flow control once the reader stops reading.
        room = threading.Semaphore(STREAM_WINDOW)
        ended = threading.Event()

        def read() -> None:
            try:
                messages = iter(request_iterator)
                while not ended.is_set():
                    if not room.acquire(timeout=0.2):
                        continue
                    message = next(messages, None)
                    if message is None:
                        return
                    arrived.put(message)
            except Exception:  # noqa: BLE001 - the caller went away; what was applied is acked
                log.debug("route stream reader ended", exc_info=True)
            finally:
                arrived.put(None)

        def route_all(messages: list) -> list:
            acks = []
            for message in messages:
                try:
                    r = route(_route_request(message))
                except RoutingError as exc:
                    acks.append(_error_ack(message, exc))
                    continue
                acks.append(
                    pb.RouteAck(
                        idempotency_key=message.idempotency_key,
                        response=pb.RouteConversationResponse(
                            conversation_id=r.conversation_id,
                            status=r.status,
                            duplicate=r.duplicate,
                            agent_id=r.agent_id,
                        ),
                    )
                )
            return acks

        threading.Thread(target=read, name="route-stream-reader", daemon=True).start()
        # Batches applied and handed to the journal, oldest first: while they commit, the
        # acks of those before them go out.
        in_flight: collections.deque = collections.deque()
        try:
            while True:
                if server._stopping.is_set():
                    # Take no more requests, ack every one already applied, then tell the
                    # caller to resend the rest (same keys, so nothing doubles).
                    ended.set()
                    while in_flight:
                        yield from self._durable(context, *in_flight.popleft())
                    context.abort(
                        grpc.StatusCode.UNAVAILABLE, "routing server stopping; resend unacknowledged routes"
                    )
                try:
                    first = arrived.get_nowait() if in_flight else arrived.get(timeout=0.2)
                except queue.Empty:
                    first = _NOTHING
                last = first is None
                if not last and first is not _NOTHING:
                    messages = [first]
                    while not arrived.empty():
                        message = arrived.get_nowait()
                        if message is None:
                            last = True
                            break
                        messages.append(message)
                    try:
                        acks, ticket = server.apply_nowait(route_all, messages)
                    except JournalError as exc:
                        _abort(context, exc)
                    in_flight.append((ticket, acks))
                if in_flight and (first is _NOTHING or last):
                    # Nothing new to apply: wait for the oldest batch's commit.
                    ticket, acks = in_flight.popleft()
                    yield from self._durable(context, ticket, acks)
                    room.release(len(acks))
                # Send whatever has committed meanwhile; the rest keeps committing (and new
                # batches keep joining the journal's group commit) while the acks go out.
                while in_flight and _committed(in_flight[0][0]):
                    ticket, acks = in_flight.popleft()
                    yield from self._durable(context, ticket, acks)
                    room.release(len(acks))
                if last:
                    while in_flight:
                        yield from self._durable(context, *in_flight.popleft())
                    return
        finally:
            ended.set()

    def _durable(self, context, ticket, acks: list):
        """``acks`` once ``ticket`` (their batch's journal rows) is committed."""
        if ticket is not None:
            try:
                self.s.journal.wait(ticket)
            except JournalError as exc:
                _abort(context, exc)
        yield from acks

    def UpdateConversation(self, request, context):  # noqa: N802
        self.s.auth.require(context, "triage")
        try:
            r = self.s.apply(
                self.s.engine.update,
                request.conversation_id,
                request.sequence,
                request.priority,
                request.stress,
                request.stressed,
                tuple((x.code, x.detail, x.value) for x in request.reasons),
                request.idempotency_key,
            )
        except (RoutingError, JournalError) as exc:
            _abort(context, exc)
        return pb.UpdateConversationResponse(
            conversation_id=r.conversation_id, status=r.status, duplicate=r.duplicate, stale=r.stale
        )

    def WithdrawConversation(self, request, context):  # noqa: N802
        self.s.auth.require(context, "triage")
        try:
            r = self.s.apply(
                self.s.engine.withdraw,
                request.conversation_id,
                request.sequence,
                request.reason,
                request.idempotency_key,
            )
        except (RoutingError, JournalError) as exc:
            _abort(context, exc)
        return pb.WithdrawConversationResponse(
            conversation_id=r.conversation_id, status=r.status, duplicate=r.duplicate, stale=r.stale
        )


class AgentDesktopServicer(pb_grpc.AgentDesktopServicer):
    def __init__(self, server: RoutingServer) -> None:
        self.s = server

    def _call(self, context, agent_id: str, fn, *args):
        self.s.auth.require_agent(context, agent_id)
        try:
            return self.s.apply(fn, *args)
        except (RoutingError, JournalError) as exc:
            _abort(context, exc)

    def _status(self, agent_id: str) -> pb.AgentStatus:
        with self.s.lock:
            return agent_status(self.s.engine.agents[agent_id])

    def Login(self, request, context):  # noqa: N802
        self._call(
            context,
            request.agent_id,
            self.s.engine.login,
            request.agent_id,
            request.tenant_id,
            request.tier,
            [(k.skill, k.proficiency) for k in request.skills],
            list(request.languages),
            [(c.channel, c.capacity) for c in request.capacities],
            list(request.queues),
        )
        return self._status(request.agent_id)

    def SetState(self, request, context):  # noqa: N802
        self._call(
            context,
            request.agent_id,
            self.s.engine.set_state,
            request.agent_id,
            request.state,
            request.reason,
            request.wrap_up_seconds,
        )
        return self._status(request.agent_id)

    def Logout(self, request, context):  # noqa: N802
        self._call(context, request.agent_id, self.s.engine.logout, request.agent_id)
        return self._status(request.agent_id)

    def StreamOffers(self, request, context):  # noqa: N802
        self.s.auth.require_agent(context, request.agent_id)
        try:
            q, first = self.s.open_stream(request.agent_id)
        except RoutingError as exc:
            _abort(context, exc)
        try:
            yield from first
            while context.is_active() and not self.s._stopping.is_set():
                try:
                    message = q.get(timeout=0.5)
                except queue.Empty:
                    continue
                if message is None:
                    return
                yield message
        finally:
            self.s.close_stream(request.agent_id, q)

    def AcceptOffer(self, request, context):  # noqa: N802
        conv = self._call(context, request.agent_id, self.s.engine.accept, request.agent_id, request.offer_id)
        with self.s.lock:
            tier = self.s.engine.agents[request.agent_id].tier
        return pb.Assignment(
            assignment_id=conv.assignment_id,
            conversation_id=conv.conversation_id,
            agent_id=request.agent_id,
            tier=tier,
            routing_reason=conv.routing_reason,
            waited_seconds=max(0.0, conv.assigned_at - conv.enqueued_at),
            assigned_at=_ts(conv.assigned_at),
        )

    def DeclineOffer(self, request, context):  # noqa: N802
        self._call(
            context,
            request.agent_id,
            self.s.engine.decline,
            request.agent_id,
            request.offer_id,
            request.reason,
        )
        return pb.DeclineOfferResponse(offer_id=request.offer_id)

    def CompleteConversation(self, request, context):  # noqa: N802
        self._call(
            context,
            request.agent_id,
            self.s.engine.complete,
            request.agent_id,
            request.conversation_id,
            request.wrap_up_seconds,
        )
        return self._status(request.agent_id)

    def TransferConversation(self, request, context):  # noqa: N802
        conv = self._call(
            context,
            request.agent_id,
            self.s.engine.transfer,
            request.agent_id,
            request.conversation_id,
            request.target_agent_id,
            [(k.skill, k.min_proficiency) for k in request.required_skills],
            request.reason,
        )
        return pb.TransferConversationResponse(conversation_id=conv.conversation_id, status=conv.status)


class SupervisorServicer(pb_grpc.SupervisorServicer):
    def __init__(self, server: RoutingServer) -> None:
        self.s = server

    def GetQueueSnapshot(self, request, context):  # noqa: N802
        self.s.auth.require(context, "supervisor")
        engine = self.s.engine
        with self.s.lock:
            now = engine.clock()
            chosen = engine.waiting(request.tenant_id, request.queue, request.limit or 100)
            waiting = stressed = 0
            oldest = 0.0
            for c in engine.conversations.values():
                if c.status != 1:
                    continue
                if request.tenant_id and c.tenant_id != request.tenant_id:
                    continue
                if request.queue and c.queue != request.queue:
                    continue
                waiting += 1
                stressed += c.stressed
                oldest = max(oldest, now - c.enqueued_at)
            rows = [
                pb.WaitingConversation(
                    conversation_id=c.conversation_id,
                    queue=c.queue,
                    channel=c.channel,
                    priority=c.priority,
                    effective_priority=engine.effective_priority(c, now),
                    stress=c.stress,
                    stressed=c.stressed,
                    waited_seconds=max(0.0, now - c.enqueued_at),
                    tier_reach=c.tier_reach if c.stressed else engine.config.tiers,
                    reasons=_reasons(c.reasons),
                    status=c.status,
                    offered_to=c.agent_id if c.status == 2 else "",
                )
                for c in chosen
            ]
        return pb.QueueSnapshot(
            taken_at=_ts(now),
            waiting=waiting,
            waiting_stressed=stressed,
            oldest_wait_seconds=oldest,
            conversations=rows,
        )

    def GetAgentSnapshot(self, request, context):  # noqa: N802
        self.s.auth.require(context, "supervisor")
        engine = self.s.engine
        with self.s.lock:
            now = engine.clock()
            agents = [
                agent_status(a)
                for a in engine.agents.values()
                if not request.tenant_id or a.tenant_id == request.tenant_id
            ]
            occupancy = engine.senior_occupancy(request.tenant_id)
        return pb.AgentSnapshot(taken_at=_ts(now), agents=agents, senior_occupancy_ratio=occupancy)


def serve_forever(settings: RoutingSettings, stop: threading.Event) -> None:
    """Run until ``stop`` is set (the entrypoint's SIGTERM handler sets it)."""
    server = RoutingServer(settings)
    server.start()
    stop.wait()
    server.stop()


def wait_ready(
    target: str, timeout: float = 30.0, credentials: grpc.ChannelCredentials | None = None
) -> None:
    """Block until the server at ``target`` reports SERVING on the health service."""
    deadline = time.monotonic() + timeout
    channel = grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"routing server at {target} not SERVING after {timeout} s")
            time.sleep(0.05)
