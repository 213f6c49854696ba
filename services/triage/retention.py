"""When a conversation leaves the conversation table: on stream time, never the wall clock.

A closed conversation's state stays in the table for ``grace_s`` after its last event, so a late
event (a re-published close, a message delivered late) still finds it and is handled as an
event after the close. Then the state is deleted, which writes a tombstone to the changelog: a
worker that recovers the partition does not bring it back. A conversation that never closes
(the customer left, nobody sent a close) is expired after ``idle_ttl_s`` without an event: the
processor withdraws it from routing if it was routed, then deletes it the same way.

Both are measured on the partition's *stream time*: the newest event time (``occurred_at``) of
the events applied on that partition, the time the conversation states are kept in. So a
replay (after kill -9, on the worker that takes a partition over, of a backlog after an outage)
evicts at the same point of the stream as the first run did, whenever it runs, and a backlog
of hours is never mistaken for hours of silence. A partition without traffic evicts nothing
until its next event; without traffic nothing grows either.

An event of a conversation the table does not know, older than the stream time minus the
grace, is *late*: most likely an event of a conversation already evicted. The processor
dead-letters it (reason ``late_event``) instead of starting a new conversation from it, which
could send a closed conversation to routing again. The grace is therefore also the most a conversation's first
event may lag the newest event of its partition. Stream time is not stored on its own: it is
the newest ``last_event_at`` in the partition's changelog, which recovery replays
(``ConversationTable``), so a restarted worker judges lateness from where the old one stopped.

The index keeps, per partition, the conversations in the order they were last touched, closed
and open apart, each with the stream time at which it is due. ``due()`` reads only from the
front, so a conversation touched out of event-time order may leave a little later than its
due time, never earlier: the caller checks each one against its state before evicting it.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Any

import faust
from cctriage_triage import metrics

CLOSED = "closed"  # closed, and the grace after its last event has passed
IDLE = "idle"  # open, with no event for the idle TTL
REASONS = (CLOSED, IDLE)


@dataclasses.dataclass
class _Partition:
    stream_time: float = 0.0
    # conversation id -> stream time at which it is due, least recently touched first.
    closed: collections.OrderedDict[str, float] = dataclasses.field(default_factory=collections.OrderedDict)
    open: collections.OrderedDict[str, float] = dataclasses.field(default_factory=collections.OrderedDict)


class Retention:
    """Stream time per partition and the conversations due to leave the table."""

    def __init__(self, grace_s: float = 600.0, idle_ttl_s: float = 86400.0) -> None:
        if grace_s <= 0:
            raise ValueError("grace_s must be positive")
        if idle_ttl_s < 0:
            raise ValueError("idle_ttl_s must not be negative (0 = never)")
        self.grace_s = grace_s
        self.idle_ttl_s = idle_ttl_s
        self._partitions: dict[int, _Partition] = {}

    def _partition(self, partition: int) -> _Partition:
        part = self._partitions.get(partition)
        if part is None:
            part = self._partitions[partition] = _Partition()
        return part

    # -- the rule --------------------------------------------------------------------------------

    def due_at(self, closed: bool, last_event_at: float) -> float:
        """The stream time from which this conversation leaves the table."""
        if closed:
            return last_event_at + self.grace_s
        return last_event_at + self.idle_ttl_s if self.idle_ttl_s > 0 else math.inf

    def reason(self, partition: int, closed: bool, last_event_at: float) -> str | None:
        """Why the conversation leaves the table now (CLOSED or IDLE), or None while it stays."""
        if self.due_at(closed, last_event_at) > self.stream_time(partition):
            return None
        return CLOSED if closed else IDLE

    def stream_time(self, partition: int) -> float:
        part = self._partitions.get(partition)
        return part.stream_time if part is not None else 0.0

    def advance(self, partition: int, at: float) -> None:
        """An event applied on ``partition`` at event time ``at``."""
        part = self._partition(partition)
        if at > part.stream_time:
            part.stream_time = at

    def is_late(self, partition: int, at: float) -> bool:
        """For an event of a conversation not in the table: older than the grace allows."""
        stream_time = self.stream_time(partition)
        return stream_time > 0 and at < stream_time - self.grace_s

    # -- the index -------------------------------------------------------------------------------

    def track(self, partition: int, conversation_id: str, closed: bool, last_event_at: float) -> None:
        """The conversation's state as just decided (or recovered): when it is due."""
        part = self._partition(partition)
        due = self.due_at(closed, last_event_at)
        index, other = (part.closed, part.open) if closed else (part.open, part.closed)
        other.pop(conversation_id, None)
        if math.isinf(due):
            index.pop(conversation_id, None)
            return
        index[conversation_id] = due
        index.move_to_end(conversation_id)

    def untrack(self, partition: int, conversation_id: str) -> None:
        part = self._partitions.get(partition)
        if part is not None:
            part.closed.pop(conversation_id, None)
            part.open.pop(conversation_id, None)

    def due(self, partition: int) -> list[str]:
        """Conversations of ``partition`` due at its stream time, taken out of the index.

        The caller checks each against its state (``reason``) and tracks it again if it stays.
        """
        part = self._partitions.get(partition)
        if part is None:
            return []
        found: list[str] = []
        for index in (part.closed, part.open):
            while index:
                conversation_id, due = next(iter(index.items()))
                if due > part.stream_time:
                    break
                del index[conversation_id]
                found.append(conversation_id)
        return found

    def recovered(self, partition: int, conversation_id: str, state: Mapping[str, Any] | None) -> None:
        """A changelog record replayed by recovery: a state, or None for a tombstone."""
        if state is None:
            self.untrack(partition, conversation_id)
            return
        last_event_at = float(state.get("last_event_at") or 0.0)
        self.advance(partition, last_event_at)
        self.track(partition, conversation_id, bool(state.get("closed")), last_event_at)

    def keep(self, partitions: Iterable[int]) -> None:
        """Forget the partitions this worker no longer has (after a rebalance)."""
        wanted = set(partitions)
        for partition in [p for p in self._partitions if p not in wanted]:
            del self._partitions[partition]

    def tracked(self) -> int:
        """Conversations in the index (not ``__len__``: an empty index must not be falsy)."""
        return sum(len(p.closed) + len(p.open) for p in self._partitions.values())


class ConversationTable(faust.Table):
    """The faust table of conversation states; tells ``Retention`` what recovery brings back.

    Live writes are tracked by the processor, which knows each event's partition; recovered
    states (including those written before eviction existed) are tracked here, where faust
    applies each changelog record with its partition.
    """

    def __init__(self, *args: Any, retention: Retention | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retention = retention

    def apply_changelog_batch(self, batch: Iterable[Any]) -> None:
        records = list(batch)
        super().apply_changelog_batch(records)
        if self.retention is None:
            return
        for record in records:
            value = None if record.message.value is None else record.value
            self.retention.recovered(record.message.partition, record.key, value)

    async def on_recovery_completed(self, active_tps: Any, standby_tps: Any) -> None:
        await super().on_recovery_completed(active_tps, standby_tps)
        if self.retention is not None:
            self.retention.keep(tp.partition for tp in active_tps)
        metrics.TABLE_CONVERSATIONS.set(len(self))
