"""Delivering flags to the routing service: the body of the ``route_flags`` agent.

The ``conversation-flags`` topic is the outbox. The scoring agent writes a flag there (and
waits for the broker's ack) before its source event's offset can be committed; this agent
reads the flags, partition by partition in order, and makes one TriageRouting call per flag.
faust acks a flag only when the body returns, i.e. after the routing service acknowledged the
call, so its offset is committed only then. While routing is down the call is retried with
exponential backoff and the flags behind it wait in Kafka, in order, while the scoring agent
keeps consuming and scoring. A worker killed mid-call re-reads the flag; the flag id is the
idempotency key, so the routing service answers "duplicate" instead of assigning twice, and
the per-conversation sequence makes a late update "stale" instead of reordering state.

A call the routing service refuses for good (e.g. INVALID_ARGUMENT) is logged and counted
as "rejected" and skipped: retrying it would block every conversation behind it forever.

**In-process handoff** (``TRIAGE_ROUTING_HANDOFF``, on by default). Reading a flag back from
the topic costs a fetch: on the embedded broker, which looks for new records at halving
intervals of the wait, up to half of ``TRIAGE_FETCH_MAX_WAIT_MS`` per flag. So the scoring side
also hands each flag to :meth:`RoutingDelivery.hand_off` before writing it, and the call is
made as soon as the broker has acked the write: the outbox record exists before the call, as
before. When the agent then reads that flag, it finds the call's outcome (waiting for it if the
call is still in flight) and acks the flag without a second call; the offset is still committed
only after the routing service acknowledged. Order is kept: handed-off calls are made one at a
time in write order, and after the first one that fails (routing down), every flag is left to
the agent, which retries in topic order as without the handoff, until it has caught up with
every flag that was left to it. A worker killed between the call and the ack re-reads the flag
and calls again: the idempotency key makes that a "duplicate", as for any retry.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from cctriage.routing.v1 import routing_pb2, routing_pb2_grpc
from cctriage.triage.v1 import triage_pb2
from cctriage_triage import metrics
from cctriage_triage.processor import SOURCE_TIMESTAMP_HEADER

log = logging.getLogger(__name__)

RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
        # A credentials problem is an operator's to fix; the flags wait in Kafka meanwhile
        # (and cctriage_triage_routing_pending_flags says so) rather than being dropped.
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
    }
)


def routing_request(flag: triage_pb2.ConversationFlag) -> tuple[str, Any]:
    """(rpc name, request) for a flag: RAISED routes, UPDATED/CLEARED update, WITHDRAWN withdraws."""
    if flag.action == triage_pb2.FLAG_ACTION_RAISED:
        request = routing_pb2.RouteConversationRequest(
            idempotency_key=flag.flag_id,
            conversation_id=flag.conversation_id,
            tenant_id=flag.tenant_id,
            queue=flag.queue,
            channel=flag.channel,
            priority=flag.priority,
            stress=flag.stress,
            stressed=flag.stressed,
            reasons=flag.reasons,
            required_skills=flag.required_skills,
            language=flag.language,
            customer_tier=flag.customer_tier,
            previous_agent_id=flag.previous_agent_id,
            sequence=flag.sequence,
        )
        request.flagged_at.CopyFrom(flag.flagged_at)
        return "RouteConversation", request
    if flag.action in (triage_pb2.FLAG_ACTION_UPDATED, triage_pb2.FLAG_ACTION_CLEARED):
        return "UpdateConversation", routing_pb2.UpdateConversationRequest(
            idempotency_key=flag.flag_id,
            conversation_id=flag.conversation_id,
            sequence=flag.sequence,
            priority=flag.priority,
            stress=flag.stress,
            stressed=flag.stressed,
            reasons=flag.reasons,
        )
    if flag.action == triage_pb2.FLAG_ACTION_WITHDRAWN:
        return "WithdrawConversation", routing_pb2.WithdrawConversationRequest(
            idempotency_key=flag.flag_id,
            conversation_id=flag.conversation_id,
            sequence=flag.sequence,
            reason=flag.withdraw_reason or routing_pb2.WITHDRAW_REASON_CLOSED,
        )
    raise ValueError(f"action: {flag.action} is not a flag action this worker knows")


def _source_timestamp(headers: Any) -> float | None:
    items: Sequence[tuple[str, bytes]] = list(headers.items()) if isinstance(headers, dict) else headers or []
    for name, value in items:
        if name == SOURCE_TIMESTAMP_HEADER:
            try:
                return int(value) / 1000.0
            except (TypeError, ValueError):
                return None
    return None


# Handed-off flags remembered for the agent at most; the oldest are forgotten past this (a flag
# the agent never reads here, e.g. its partition moved to another worker). A forgotten flag
# read later is simply called again (answered "duplicate").
HANDOFF_MEMORY = 10_000


class RoutingDelivery:
    def __init__(
        self, target: str, timeout_s: float, backoff_initial_s: float, backoff_max_s: float, token: str = "",
        handoff: bool = True,
    ) -> None:
        self.target = target
        self.handoff = handoff
        # flag id -> outcome of its handed-off call (None: left to the agent), oldest first.
        self._handed: collections.OrderedDict[str, asyncio.Future] = collections.OrderedDict()
        self._handoffs: asyncio.Queue | None = None
        self._handoff_task: asyncio.Future | None = None
        # Flags left to the agent that it has not read yet; handoff resumes once it is 0 again.
        self._left_to_agent = 0
        self._falling_back = False
        self.metadata = (("authorization", f"Bearer {token}"),) if token else None
        self.timeout_s = timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.channel: grpc.aio.Channel | None = None
        self.stub: routing_pb2_grpc.TriageRoutingStub | None = None

    async def start(self) -> None:
        if self.channel is not None:
            return
        self.channel = grpc.aio.insecure_channel(
            self.target,
            # Reconnect soon after the routing service comes back, not after gRPC's default
            # backoff of up to two minutes.
            options=[("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 1000)],
        )
        self.stub = routing_pb2_grpc.TriageRoutingStub(self.channel)

    async def stop(self) -> None:
        if self._handoff_task is not None:
            self._handoff_task.cancel()
            self._handoff_task = None
        for future in self._handed.values():
            if not future.done():
                future.set_result(None)
        self._handed.clear()
        if self.channel is not None:
            await self.channel.close(grace=1.0)

    # -- in-process handoff ----------------------------------------------------------------------

    def hand_off(self, flags: Sequence[tuple[str, bytes, Any]], written: asyncio.Future) -> None:
        """Flags (flag id, value, headers) about to be written; call routing once ``written`` is done.

        Called before the records are sent, so the agent always finds them here when it reads
        them. ``written`` fails if the write does (then nothing is called; the worker stops).
        """
        if not self.handoff or not flags:
            return
        if self._handoffs is None:  # created here, inside the worker's event loop
            self._handoffs = asyncio.Queue()
        loop = asyncio.get_running_loop()
        entries = []
        for flag_id_, value, headers in flags:
            future = loop.create_future()
            self._handed[flag_id_] = future
            self._handed.move_to_end(flag_id_)
            entries.append((future, value, headers))
        while len(self._handed) > HANDOFF_MEMORY:
            _, future = self._handed.popitem(last=False)
            if not future.done():
                future.set_result(None)  # not called yet: the agent will call when it reads it
            elif future.result() is None:
                self._left_to_agent -= 1  # it was left to the agent, which will no longer find it
        self._handoffs.put_nowait((entries, written))
        if self._handoff_task is None or self._handoff_task.done():
            self._handoff_task = asyncio.ensure_future(self._run_handoffs())

    async def _run_handoffs(self) -> None:
        assert self._handoffs is not None
        while True:
            entries, written = await self._handoffs.get()
            try:
                await written
            except Exception:  # noqa: BLE001 - the write failed: nothing to call
                for future, _, _ in entries:
                    self._leave(future)
                continue
            for future, value, headers in entries:
                if future.done():
                    continue  # forgotten (HANDOFF_MEMORY)
                if self._falling_back:
                    self._leave(future)
                    continue
                outcome = await self.deliver(value, headers, keep_trying=_once())
                if outcome is None:
                    # Routing did not answer: from here on the agent calls, in topic order.
                    self._falling_back = True
                    self._leave(future)
                else:
                    metrics.ROUTING_HANDOFFS.labels("called").inc()
                    if not future.done():
                        future.set_result(outcome)

    def _leave(self, future: asyncio.Future) -> None:
        if future.done():
            return
        metrics.ROUTING_HANDOFFS.labels("left_to_agent").inc()
        self._left_to_agent += 1
        future.set_result(None)

    async def deliver_read(self, value: bytes, headers: Any, keep_trying: Callable[[], bool]) -> str | None:
        """The agent's call for a flag read from the topic: the handed-off call's outcome if it was
        made, else :meth:`deliver`. None: not delivered (the caller must not ack)."""
        future = self._handed.pop(_flag_id(value), None) if self._handed else None
        if future is not None:
            outcome = await asyncio.shield(future)
            if outcome is not None:
                return outcome
            self._left_to_agent -= 1
        outcome = await self.deliver(value, headers, keep_trying)
        if outcome is not None and self._falling_back and self._left_to_agent <= 0:
            # Every flag left to the agent is delivered, in order: hand off again.
            self._falling_back = False
            self._left_to_agent = 0
        return outcome

    async def deliver(self, value: bytes, headers: Any, keep_trying: Callable[[], bool]) -> str | None:
        """Make the routing call for one flag: its outcome once acknowledged or rejected.

        Returns None, without a successful call, when ``keep_trying()`` turns false (the worker
        is stopping or its partitions are being revoked): the caller must then not ack the
        flag, so it is delivered after the restart or by the partition's next owner.
        """
        flag = triage_pb2.ConversationFlag()
        try:
            flag.ParseFromString(value)
            rpc, request = routing_request(flag)
        except Exception as exc:  # noqa: BLE001 - a bad flag must not stop delivery
            metrics.ROUTING_CALLS.labels("none", "rejected").inc()
            log.error("unreadable flag skipped", extra={"error": type(exc).__name__})
            return "rejected"
        if self.stub is None:
            # The agent may get its partitions before the lifecycle service has started.
            await self.start()
        method = getattr(self.stub, rpc)
        delay = self.backoff_initial_s
        attempt = 0
        while True:
            if not keep_trying():
                metrics.ROUTING_PENDING.set(0)
                log.info("routing call handed back undelivered", extra={"rpc": rpc, "flag_id": flag.flag_id})
                return None
            attempt += 1
            started = time.perf_counter()
            try:
                response = await method(
                    request, timeout=self.timeout_s, metadata=self.metadata, wait_for_ready=False
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - delivery must outlive any one failure
                metrics.ROUTING_CALL_DURATION.labels(rpc).observe(time.perf_counter() - started)
                code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
                if code is not None and code not in RETRYABLE:
                    metrics.ROUTING_CALLS.labels(rpc, "rejected").inc()
                    log.error(
                        "routing call rejected; flag skipped",
                        extra={"rpc": rpc, "code": code.name, "flag_id": flag.flag_id},
                    )
                    metrics.ROUTING_PENDING.set(0)
                    return "rejected"
                metrics.ROUTING_CALLS.labels(rpc, "retry").inc()
                metrics.ROUTING_PENDING.set(1)
                if attempt == 1 or attempt % 10 == 0:
                    failure = code.name if code else type(exc).__name__
                    log.warning(
                        "routing call failed; retrying",
                        extra={"rpc": rpc, "code": failure, "attempt": attempt,
                               "flag_id": flag.flag_id, "retry_in_s": round(delay, 3)},
                    )
                await self._sleep(delay, keep_trying)
                delay = min(self.backoff_max_s, delay * 2)
                continue
            metrics.ROUTING_CALL_DURATION.labels(rpc).observe(time.perf_counter() - started)
            metrics.ROUTING_PENDING.set(0)
            stale = getattr(response, "stale", False)
            outcome = "duplicate" if response.duplicate else "stale" if stale else "ok"
            metrics.ROUTING_CALLS.labels(rpc, outcome).inc()
            published = _source_timestamp(headers)
            if published is not None:
                metrics.EVENT_TO_ROUTE.observe(max(0.0, time.time() - published))
            log.info(
                "routing call acknowledged",
                extra={"rpc": rpc, "outcome": outcome, "flag_id": flag.flag_id, "attempts": attempt},
            )
            return outcome

    @staticmethod
    async def _sleep(delay: float, keep_trying: Callable[[], bool]) -> None:
        """Back off, but notice a stop or a revocation within 50 ms."""
        deadline = time.monotonic() + delay
        while keep_trying() and time.monotonic() < deadline:
            await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


def _once() -> Callable[[], bool]:
    """A ``keep_trying`` for one attempt: true the first time it is asked, false after."""
    answers = iter((True,))
    return lambda: next(answers, False)


def _flag_id(value: bytes) -> str:
    flag = triage_pb2.ConversationFlag()
    try:
        flag.ParseFromString(value)
    except Exception:  # noqa: BLE001 - deliver() reports an unreadable flag
        return ""
    return flag.flag_id
