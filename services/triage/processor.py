"""From a batch of support events to scores, flags, alerts, dead letters and new state.

``Triage.handle_batch`` is the body of the ``score_messages`` agent. For one batch it:

1. decodes and validates every event (cctriage_common.events); an invalid one goes to the
   dead-letter topic with its original bytes and the reason, and the batch goes on;
2. drops events whose id the conversation has seen (re-publishes, replays after a crash), and
   dead-letters late events of conversations no longer in the table (retention.py), in step 4;
3. scores all customer messages of the batch (length-sorted ONNX runs, batching.py) in a
   worker thread so the event loop keeps heart-beating, serving /metrics and delivering flags
   meanwhile. Up to ``scorers`` batches are scored at once, each on its own thread: a batch
   that arrives while the previous one is in the model does not wait for it (at light load,
   messages mostly come one by one, and a queue behind one model thread was what made the
   latency tail). Scores depend on the text only, so this step needs no state;
4. in batch order, once its scores are back: drops events whose id the conversation has seen
   and late events of evicted conversations (step 2 is done here, on the state the earlier
   batches left), applies the events to the conversations in order (state.py, policy.py), then picks the
   conversations whose time in the table is up on stream time (retention.py): closed ones
   after the grace, idle ones after the TTL (a routed idle one is withdrawn);
5. writes every output and waits until the broker has acknowledged each one;
6. only then writes the new conversation states to the table (its changelog), deletes the
   evicted ones (a tombstone each), and releases the events' acks.

Steps 5 and 6 run in the background, overlapping the scoring of the next batch, but an event
is acked (its offset committable) only at the end of 6, so an offset is committed only after
the outputs are in Kafka. A crash between 5 and 6 replays the events: the outputs are written
again (same event ids, same flag ids: consumers and the routing service drop the repeats).
A crash after 6 finds the events in the state and drops them as duplicates.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import logging
import re
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

from cctriage.events.v1 import events_pb2
from cctriage.routing.v1 import routing_pb2
from cctriage.triage.v1 import triage_pb2
from cctriage_common import events as support_events
from cctriage_common.deadletter import DeadLetter, Reason, Stage, dead_letter_record
from cctriage_triage import batching, metrics, policy, transport
from cctriage_triage.policy import Action, PolicyConfig, Turn
from cctriage_triage.retention import IDLE, Retention
from cctriage_triage.state import CloseKind, ConversationState, FlagOutcome, Severity
from faust import streams as faust_streams

log = logging.getLogger(__name__)

# Kafka header on a flag: when the support event that caused it was published (ms since epoch),
# so the delivery agent can measure event-to-route latency.
SOURCE_TIMESTAMP_HEADER = "cctriage-source-timestamp-ms"
# On a dead letter whose original record was too large to copy (key, value and headers dropped).
VALUE_OMITTED = "dlq.value_omitted"

CUSTOMER = events_pb2.AUTHOR_ROLE_CUSTOMER
AGENT = events_pb2.AUTHOR_ROLE_AGENT
ABANDONED_REASONS = (events_pb2.CLOSE_REASON_ABANDONED, events_pb2.CLOSE_REASON_TIMED_OUT)


@contextlib.contextmanager
def acting_for(event: Any) -> Iterator[None]:
    """Make ``event`` faust's current event while writing the table.

    A faust table writes its changelog to the partition of the current event. When a batch is
    written, the current event is whichever one the agent read last, which may belong to
    another partition; the state of a conversation must go to its own event's partition, or a
    worker recovering that partition would not find it.
    """
    token = faust_streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)


# The labelled children, looked up once (labels() takes a lock and a dict lookup per call).
_SENTIMENT_HISTOGRAMS = {
    name: metrics.MESSAGE_SENTIMENT.labels(name) for name in ("negative", "neutral", "positive")
}


@dataclasses.dataclass
class _Item:
    """One support event of the batch on its way through."""

    event: Any  # faust Event
    decoded: events_pb2.SupportEvent
    at: float  # event time (occurred_at, else the Kafka timestamp), seconds
    published: float  # Kafka timestamp, seconds
    scores: Any = None
    cues: frozenset[str] = frozenset()
    unscorable: bool = False


@dataclasses.dataclass
class Outputs:
    """What one batch writes; sent together, awaited together."""

    records: list[tuple[Any, bytes, bytes, list[tuple[str, bytes]] | None]] = dataclasses.field(
        default_factory=list
    )
    flags: list[tuple[float, Action, int]] = dataclasses.field(default_factory=list)
    # Flags to hand to the routing call once written: (flag id, value, headers).
    handoffs: list[tuple[str, bytes, list[tuple[str, bytes]]]] = dataclasses.field(default_factory=list)
    # Events by outcome label; counted once their outputs are written (the metric then says
    # how many events are fully done, which is what the pipeline benchmark counts).
    outcomes: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)


class Triage:
    """The scoring side of the worker; the faust app wires topics, table and model into it."""

    def __init__(
        self,
        *,
        config: PolicyConfig,
        conversations: Any,
        message_scores: Any,
        conversation_flags: Any,
        supervisor_alerts: Any,
        dead_letters: Any,
        model_provider: Callable[[], Any],
        on_fatal: Callable[[BaseException], Awaitable[None]],
        batch_size: int = 64,
        run_size: int = 8,
        scorers: int = 1,
        retention: Retention | None = None,
        hand_off: Callable[[list, asyncio.Future], None] | None = None,
    ) -> None:
        self.config = config
        # Called with a batch's flags before they are written, and a future done once they are
        # (delivery.RoutingDelivery.hand_off: the routing call without reading the flag back).
        self.hand_off = hand_off
        self.conversations = conversations
        # When closed and idle conversations leave the table (stream time, per partition).
        self.retention = retention if retention is not None else Retention()
        self.message_scores = message_scores
        self.conversation_flags = conversation_flags
        self.supervisor_alerts = supervisor_alerts
        self.dead_letters = dead_letters
        self.model_provider = model_provider
        self.on_fatal = on_fatal
        self._batches = 0
        self._writer: asyncio.Future | None = None
        self._scorer: asyncio.Future | None = None
        # Up to two full batches wait while the model runs; then the agent waits (backpressure).
        self._queue: asyncio.Queue[list[Any]] = asyncio.Queue(maxsize=2 * batch_size)
        self.batch_size = batch_size
        self.run_size = run_size
        # State of batches scored but not yet in the table (their writer is still running);
        # None: deleted from the table by that batch.
        self._unwritten: dict[str, tuple[int, dict[str, Any] | None]] = {}
        # ONNX Runtime releases the GIL; ``scorers`` threads score that many batches at once (one
        # session takes concurrent runs) while the event loop stays free. Decisions stay in order.
        self.executor = concurrent.futures.ThreadPoolExecutor(scorers, thread_name_prefix="onnx")
        self._scorers = asyncio.Semaphore(scorers)

    # -- the batch -------------------------------------------------------------------------------

    async def accept(self, batch: Sequence[Any]) -> None:
        """Take events from the agent; they are scored and written in the background, in order.

        Each event's message is held with an extra reference, so faust's own ack when the agent
        moves on does not make its offset committable; the writer releases it once the outputs
        are acked and the state is in the changelog. Returning at once lets the agent go on
        reading while the model runs; whatever waits when the scorer is free becomes its next
        batch (up to ``batch_size``). At most ``2 * batch_size`` wait here, then the agent waits.
        """
        for event in batch:
            transport.take(event.message)
            event.message.incref()
        if self._scorer is None or self._scorer.done():
            self._scorer = asyncio.ensure_future(self._score_batches())
        await self._queue.put(list(batch))

    async def _score_batches(self) -> None:
        """Take batches as scorer threads come free; decide and write them in arrival order."""
        scored: asyncio.Queue = asyncio.Queue()
        decider = asyncio.ensure_future(self._decide_in_order(scored))
        try:
            while True:
                await self._scorers.acquire()
                batch = await self._queue.get()
                taken = 1
                # Merge what waits, up to a full batch: fewer, fuller ONNX runs when busy, no
                # waiting when idle.
                while not self._queue.empty() and len(batch) < self.batch_size:
                    batch.extend(self._queue.get_nowait())
                    taken += 1
                outputs = Outputs()
                items = [item for item in (self._validate(event, outputs) for event in batch) if item]
                scoring = self._start_scoring(items)
                scoring.add_done_callback(lambda _: self._scorers.release())
                scored.put_nowait((batch, taken, items, outputs, scoring))
        finally:
            decider.cancel()

    async def _decide_in_order(self, scored: asyncio.Queue) -> None:
        while True:
            batch, taken, items, outputs, scoring = await scored.get()
            try:
                await self.handle_batch(batch, items, outputs, scoring)
            except Exception as exc:  # noqa: BLE001 - the events stay un-acked
                log.critical("processing a batch failed; stopping the worker", exc_info=True)
                await self.on_fatal(exc)
                raise
            finally:
                for _ in range(taken):
                    self._queue.task_done()

    def _start_scoring(self, items: list[_Item]) -> asyncio.Future:
        """The ONNX runs for the batch's customer messages, started now on a free scorer thread."""
        to_score = _customer_messages(items)
        texts = [item.decoded.message_posted.text for item in to_score]
        if not texts:
            done = asyncio.get_running_loop().create_future()
            done.set_result([])
            return done
        return asyncio.get_running_loop().run_in_executor(
            self.executor, batching.score_by_length, self.model_provider(), texts, self.run_size,
            _observe_run,
        )

    async def handle_batch(
        self, batch: Sequence[Any], items: list[_Item], outputs: Outputs, scoring: asyncio.Future
    ) -> None:
        """Dedupe and decide on ``items`` (validated, scoring started), in batch order; then write
        in the background, then release acks.

        Writing batch k (waiting for the broker's acks) overlaps scoring batch k+1. Writers run
        strictly one after the other, so outputs, changelog records and acks keep batch order.
        """
        self._batches += 1
        number = self._batches
        await self._score(items, outputs, scoring)
        states: dict[str, ConversationState] = {}
        last_event: dict[str, Any] = {}
        kept: list[_Item] = []
        newest: dict[int, _Item] = {}  # per partition, its last event of the batch

        for item in items:
            if item.unscorable:
                # Dead-lettered (the model could not score it), not applied; not remembered
                # either, so a replay from the dead-letter topic is not taken for a duplicate.
                continue
            event = item.event
            conversation_id = item.decoded.conversation_id
            partition = event.message.partition
            newest[partition] = item
            state = states.get(conversation_id)
            if state is None:
                state = self._load(conversation_id)
                if state is None:
                    if self.retention.is_late(partition, item.at):
                        # Not in the table, and older than the grace: most likely an event of a
                        # conversation already evicted. A new state from it could route a closed
                        # conversation again, so it is not applied; it is kept, with the reason,
                        # in the dead-letter topic (a publisher whose clock lags shows up there).
                        self._dead_letter(
                            outputs, event, Reason.LATE_EVENT, Stage.PROCESS, "occurred_at", None,
                            "older than TRIAGE_CLOSED_GRACE_S behind its partition's newest event, "
                            "for a conversation the worker no longer holds",
                        )
                        continue
                    state = ConversationState(conversation_id)
                states[conversation_id] = state
            self.retention.advance(partition, item.at)
            if state.seen_before(item.decoded.event_id):
                outputs.outcomes["duplicate"] += 1
                continue
            state.remember(item.decoded.event_id)
            last_event[conversation_id] = event
            kept.append(item)

        for item in kept:
            self._apply(item, states[item.decoded.conversation_id], outputs)

        for conversation_id, event in last_event.items():
            state = states[conversation_id]
            self.retention.track(event.message.partition, conversation_id, state.closed, state.last_event_at)
        removed = self._evict(newest, states, last_event, outputs)
        snapshots = {cid: states[cid].to_dict() for cid in last_event}
        for conversation_id, snapshot in snapshots.items():
            self._unwritten[conversation_id] = (number, snapshot)
        for conversation_id in removed:
            self._unwritten[conversation_id] = (number, None)
        previous = self._writer
        self._writer = asyncio.ensure_future(
            self._finish(number, previous, outputs, snapshots, last_event, list(batch), removed)
        )

    def _evict(
        self, newest: dict[int, _Item], states: dict[str, ConversationState], last_event: dict[str, Any],
        outputs: Outputs,
    ) -> dict[str, tuple[Any, str]]:
        """The conversations whose time in the table is up on their partition's stream time
        (retention.py); an idle one that was routed is withdrawn first. Returns id -> (an event
        of its partition, to write the tombstone to that changelog partition; the reason)."""
        removed: dict[str, tuple[Any, str]] = {}
        for partition, trigger in newest.items():
            for conversation_id in self.retention.due(partition):
                state = states[conversation_id] if conversation_id in states else self._load(conversation_id)
                if state is None:
                    continue
                reason = self.retention.reason(partition, state.closed, state.last_event_at)
                if reason is None:
                    self.retention.track(partition, conversation_id, state.closed, state.last_event_at)
                    continue
                if reason == IDLE:
                    expired_at = state.last_event_at + self.retention.idle_ttl_s
                    outcome = state.expire(self.retention.idle_ttl_s)
                    if outcome is not None:
                        # No event of its own causes it: flagged at the event time it expired (a
                        # replay writes the same flag), with no event id.
                        cause = events_pb2.SupportEvent(conversation_id=conversation_id)
                        item = _Item(trigger.event, cause, expired_at, trigger.published)
                        self._flag(item, state, outcome, outputs)
                states.pop(conversation_id, None)
                last_event.pop(conversation_id, None)
                removed[conversation_id] = (trigger.event, reason)
        return removed

    async def _finish(
        self,
        number: int,
        previous: asyncio.Future | None,
        outputs: Outputs,
        snapshots: dict[str, dict[str, Any]],
        last_event: dict[str, Any],
        batch: list[Any],
        removed: dict[str, tuple[Any, str]],
    ) -> None:
        try:
            if previous is not None:
                await previous
            await self._write(outputs)
            for conversation_id, event in last_event.items():
                with acting_for(event):
                    self.conversations[conversation_id] = snapshots[conversation_id]
                if self._unwritten.get(conversation_id, (None,))[0] == number:
                    del self._unwritten[conversation_id]
            for conversation_id, (event, reason) in removed.items():
                # A delete: the changelog gets a tombstone, so recovery does not bring it back.
                with acting_for(event):
                    if conversation_id in self.conversations:
                        del self.conversations[conversation_id]
                if self._unwritten.get(conversation_id, (None,))[0] == number:
                    del self._unwritten[conversation_id]
                metrics.EVICTED_CONVERSATIONS.labels(reason).inc()
            if removed or last_event:
                metrics.TABLE_CONVERSATIONS.set(len(self.conversations))
            for event in batch:
                event.ack()
            for outcome, count in outputs.outcomes.items():
                metrics.EVENTS.labels(outcome).inc(count)
        except Exception as exc:  # noqa: BLE001
            # Outputs not acknowledged: the events stay un-acked (replayed after a restart).
            log.critical("writing a batch failed; stopping the worker", exc_info=True)
            await self.on_fatal(exc)
            raise

    async def drain(self) -> None:
        """Wait until every accepted batch is scored, written and acked (for a graceful stop)."""
        if self._scorer is not None and not self._scorer.done():
            await self._queue.join()
        if self._writer is not None:
            await asyncio.shield(self._writer)

    # -- steps -----------------------------------------------------------------------------------

    def _validate(self, event: Any, outputs: Outputs) -> _Item | None:
        message = event.message
        value = message.value if isinstance(message.value, bytes) else bytes(message.value or b"")
        result = support_events.decode_protobuf(value)
        if not result.ok:
            reason, stage, field = dead_letter_reason(result)
            self._dead_letter(outputs, event, reason, stage, field, None, result.reasons())
            return None
        decoded = result.event
        if message.key is not None and bytes(message.key) != decoded.conversation_id.encode():
            self._dead_letter(
                outputs, event, Reason.KEY_MISMATCH, Stage.VALIDATE, "conversation_id", None,
                "the record key must be the conversation_id (UTF-8) so a conversation stays on one partition",
            )
            return None
        published = message.timestamp or time.time()
        at = decoded.occurred_at.ToNanoseconds() / 1e9 if decoded.HasField("occurred_at") else 0.0
        return _Item(event, decoded, at or published, published)

    def _dead_letter(
        self, outputs: Outputs, event: Any, reason: Reason, stage: Stage, field: str | None,
        error: str | None, explanation: str,
    ) -> None:
        """Queue the original record, unchanged, for the dead-letter topic with the reason."""
        message = event.message
        outputs.outcomes["dead_lettered"] += 1
        metrics.DEAD_LETTERS.labels(reason.value).inc()
        # ``explanation`` comes from the shared validator, which never quotes customer text.
        log.warning(
            "support event dead-lettered",
            extra={"reason_code": reason.value, "field": field, "reason": explanation,
                   "partition": message.partition, "offset": message.offset},
        )
        letter = DeadLetter(reason, stage, "triage", message.topic, message.partition, message.offset,
                            field=field, error=error)
        original = message.headers.items() if isinstance(message.headers, dict) else message.headers
        key, value, headers = dead_letter_record(message.key, message.value, original, letter)
        size = len(key or b"") + len(value or b"") + sum(len(n) + len(v or b"") for n, v in headers)
        if size > support_events.MAX_EVENT_BYTES:
            # Bigger than any event may be (a broker that allows it): it could not be produced,
            # and the worker would crash on it after every restart. The dead letter keeps the
            # reason and the source offset, where the original stays for the topic's retention.
            key, value = None, None
            headers = [(n, v) for n, v in headers if n.startswith("dlq.")] + [(VALUE_OMITTED, b"too_large")]
        if key is None and value is None:
            value = b""  # the producer needs one of the two (a Java client may send a record with neither)
        outputs.records.append((self.dead_letters, key, value, headers))

    def _load(self, conversation_id: str) -> ConversationState | None:
        """The conversation's state, or None when the table has none (new, or evicted)."""
        unwritten = self._unwritten.get(conversation_id)
        stored = unwritten[1] if unwritten is not None else self.conversations.get(conversation_id)
        if stored is None:
            return None
        return ConversationState.from_dict(stored)

    async def _score(self, items: list[_Item], outputs: Outputs, scoring: asyncio.Future) -> None:
        """Wait for the batch's scores; if the ONNX run failed, score message by message."""
        to_score = _customer_messages(items)
        try:
            scores = await scoring
        except Exception:  # noqa: BLE001 - one bad message must not stop the stream
            metrics.MODEL_ERRORS.inc()
            log.exception("ONNX run failed; scoring the batch message by message")
            model = self.model_provider()
            loop = asyncio.get_running_loop()
            scores = []
            for item in to_score:
                try:
                    (one,) = await loop.run_in_executor(
                        self.executor, model.score, [item.decoded.message_posted.text]
                    )
                except Exception as exc:  # noqa: BLE001
                    metrics.MODEL_ERRORS.inc()
                    self._dead_letter(
                        outputs, item.event, Reason.PROCESSING_FAILED, Stage.PROCESS, "message_posted.text",
                        type(exc).__name__, "the model could not score this message",
                    )
                    item.unscorable = True
                    one = None
                scores.append(one)
        for item, score in zip(to_score, scores, strict=True):
            item.scores = score
            item.cues = policy.detect_cues(item.decoded.message_posted.text)

    def _apply(self, item: _Item, state: ConversationState, outputs: Outputs) -> None:
        event = item.decoded
        customer = event.customer
        state.describe(event.tenant_id, event.queue, event.channel, customer.tier, customer.language, item.at)
        kind = event.WhichOneof("payload")
        # Flag sequence = the event's offset + 1: strictly increasing along a conversation (one
        # partition), and the same when a crash makes this event be processed again, even if
        # the decision differs the second time, so a replay can never reuse the sequence (and
        # idempotency key) of a different, later flag.
        sequence = item.event.message.offset + 1
        outcome: FlagOutcome | None = None
        outcome_label = "applied"
        if state.closed and kind != "conversation_closed":
            outputs.outcomes["after_close"] += 1
            return
        if kind == "conversation_opened":
            opened = event.conversation_opened
            state.open(list(opened.required_skills), opened.previous_agent_id, opened.prior_contact_count)
        elif kind == "message_posted":
            posted = event.message_posted
            if posted.author_role == CUSTOMER:
                outcome_label = "scored"
                scores = item.scores
                turn = Turn(event.event_id, float(scores.stress), float(scores.negative),
                            {k: float(v) for k, v in scores.emotions.items()}, item.at)
                outputs.records.append(self._message_score(item, state))
                outcome = state.customer_message(turn, item.cues, self.config, sequence)
            elif posted.author_role == AGENT:
                outcome = state.agent_message(item.at, self.config, sequence)
            # Bot and system messages move no mood and answer nobody: nothing else changes.
        elif kind == "agent_joined":
            outcome = state.agent_joined(event.agent_joined.agent_id, item.at, self.config)
        elif kind == "conversation_closed":
            abandoned = event.conversation_closed.reason in ABANDONED_REASONS
            outcome = state.close(CloseKind.ABANDONED if abandoned else CloseKind.CLOSED, sequence)
        outputs.outcomes[outcome_label] += 1
        if outcome is not None:
            self._flag(item, state, outcome, outputs)

    def _message_score(self, item: _Item, state: ConversationState) -> tuple:
        scores = item.scores
        event = item.decoded
        message = triage_pb2.MessageScore(
            event_id=event.event_id,
            conversation_id=event.conversation_id,
            tenant_id=event.tenant_id,
            channel=event.channel,
            model_version=self.model_provider().version,
            negative=scores.negative,
            neutral=scores.neutral,
            positive=scores.positive,
            emotions=dict(scores.emotions),
            stress=scores.stress,
        )
        message.occurred_at.FromNanoseconds(int(item.at * 1e9))
        # Not GetCurrentTime(): it goes through datetime (a visible share of the loop per message).
        message.scored_at.FromNanoseconds(time.time_ns())
        metrics.MESSAGE_STRESS.observe(scores.stress)
        for name, histogram in _SENTIMENT_HISTOGRAMS.items():
            histogram.observe(getattr(scores, name))
        return (self.message_scores, event.conversation_id.encode(), message.SerializeToString(), None)

    def _flag(self, item: _Item, state: ConversationState, outcome: FlagOutcome, outputs: Outputs) -> None:
        event = item.decoded
        reasons = [routing_pb2.Reason(code=r.code, detail=r.detail, value=r.value) for r in outcome.reasons]
        flag = triage_pb2.ConversationFlag(
            flag_id=flag_id(event.conversation_id, outcome.sequence),
            conversation_id=event.conversation_id,
            tenant_id=state.tenant_id,
            queue=state.queue,
            action=int(outcome.action),
            sequence=outcome.sequence,
            priority=outcome.priority,
            stress=outcome.stress,
            stressed=outcome.stressed,
            reasons=reasons,
            event_id=event.event_id,
            channel=state.channel,
            customer_tier=state.tier,
            language=state.language,
            required_skills=[routing_pb2.SkillRequirement(skill=s) for s in state.required_skills],
            previous_agent_id=state.previous_agent_id,
            withdraw_reason=_withdraw_reason(outcome),
        )
        # Event time, not the wall clock: a replay must produce byte-identical flags.
        flag.flagged_at.FromNanoseconds(int(item.at * 1e9))
        headers = [(SOURCE_TIMESTAMP_HEADER, str(int(item.published * 1000)).encode())]
        key = event.conversation_id.encode()
        value = flag.SerializeToString()
        outputs.records.append((self.conversation_flags, key, value, headers))
        outputs.handoffs.append((flag.flag_id, value, headers))
        outputs.flags.append((item.published, outcome.action, outcome.priority))
        log.info(
            "conversation flagged",
            extra={"conversation_id": event.conversation_id, "action": outcome.action.name.lower(),
                   "sequence": outcome.sequence, "priority": outcome.priority,
                   "reasons": [r.code for r in outcome.reasons]},
        )
        if outcome.alert is not Severity.NONE:
            alert = triage_pb2.SupervisorAlert(
                alert_id=f"{flag.flag_id}/alert",
                conversation_id=event.conversation_id,
                tenant_id=state.tenant_id,
                severity=int(outcome.alert),
                summary=alert_summary(outcome, state.waiting_s(item.at)),
                reasons=reasons,
            )
            alert.raised_at.CopyFrom(flag.flagged_at)
            outputs.records.append((self.supervisor_alerts, key, alert.SerializeToString(), None))
            metrics.ALERTS.labels(outcome.alert.name.lower()).inc()

    async def _write(self, outputs: Outputs) -> None:
        if not outputs.records:
            return
        written: asyncio.Future | None = None
        if self.hand_off is not None and outputs.handoffs:
            # Before sending: whoever reads a flag back must find it handed off already.
            written = asyncio.get_running_loop().create_future()
            self.hand_off(outputs.handoffs, written)
        try:
            futures = []
            for topic, key, value, headers in outputs.records:
                futures.append(await topic.send(key=key, value=value, headers=headers))
            await asyncio.gather(*futures)
        except BaseException as exc:
            if written is not None:
                written.set_exception(exc if isinstance(exc, Exception) else RuntimeError("write cancelled"))
            raise
        if written is not None:
            written.set_result(None)
        now = time.time()
        for published, action, priority in outputs.flags:
            metrics.EVENT_TO_FLAG.observe(max(0.0, now - published))
            metrics.FLAGS.labels(action.name.lower(), policy.priority_band(priority)).inc()

    def close(self) -> None:
        self.executor.shutdown(wait=True)


def _customer_messages(items: list[_Item]) -> list[_Item]:
    """The items the model scores: customer messages (agent and bot messages are not the mood)."""
    return [
        item for item in items
        if item.decoded.WhichOneof("payload") == "message_posted"
        and item.decoded.message_posted.author_role == CUSTOMER
    ]


def _observe_run(messages: int, seconds: float) -> None:
    metrics.INFERENCE_DURATION.observe(seconds)
    metrics.INFERENCE_BATCH_SIZE.observe(messages)


def flag_id(conversation_id: str, sequence: int) -> str:
    """The routing idempotency key: the same flag, replayed or retried, has the same key."""
    return f"{conversation_id}/{sequence}"


def _withdraw_reason(outcome: FlagOutcome) -> int:
    if outcome.close is CloseKind.ABANDONED:
        return routing_pb2.WITHDRAW_REASON_ABANDONED
    if outcome.close is CloseKind.CLOSED:
        return routing_pb2.WITHDRAW_REASON_CLOSED
    return routing_pb2.WITHDRAW_REASON_UNSPECIFIED


def alert_summary(outcome: FlagOutcome, waiting_s: float) -> str:
    """e.g. "mentions legal action, stress 0.93, waiting 4 min": codes and figures, no customer text."""
    parts = [r.detail for r in outcome.reasons if r.code in policy.CUES_BY_CODE]
    parts.append(f"stress {outcome.stress:.2f}")
    parts.append(f"priority {outcome.priority}")
    if waiting_s >= 60:
        parts.append(f"waiting {waiting_s / 60:.0f} min")
    return ", ".join(parts)


_SCHEMA_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*")


def dead_letter_reason(result: support_events.DecodedEvent) -> tuple[Reason, Stage, str | None]:
    """The shared dead-letter vocabulary for a failed decode or validation, and the field."""
    first = result.errors[0] if result.errors else None
    # A map entry's path (metadata["k"]) quotes a key: keep only the schema part (metadata).
    match = _SCHEMA_PATH.match(first.field) if first and first.field else None
    field = match.group(0) if match else None
    if first is None:
        return Reason.UNDECODABLE, Stage.DECODE, None
    # The validator's own code, as docs/events.md promises (too_large for a 1 MB text,
    # unsupported_event for no payload), so the dead letter agrees with cctriage-publish.
    return Reason(first.code), Stage.DECODE if result.event is None else Stage.VALIDATE, field
