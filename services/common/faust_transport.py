"""faust's Kafka transport with the fixes every cctriage faust worker needs.

    scheme = register(fetch_max_wait_ms=20)            # once, before faust.App(...)
    app = faust.App(..., broker=f"{scheme}://host:port")

(``cctriage_common.kafka.faust_config`` does both.)

1. **No records lost around the post-rebalance seek (the kill -9 loss).** After every
   rebalance faust's ``Recovery.on_recovery_completed`` resumes the stream partitions, *then*
   seeks them to the committed offsets, *then* calls ``app.flow_control.resume()`` again.
   The fetcher runs all along, so a batch read before the seek is being handed to the agents
   meanwhile, and two things lose records of it (measured, see docs/broker.md, "faust loses
   records around the post-rebalance seek"; 6 of 28 instrumented kill -9 runs lost 1-19 events):

   a. ``perform_seek`` moves each read offset *back* to the committed offset while that batch
      continues, so its next record looks like a jump: faust records the offsets between as a
      *gap* (``Consumer._add_gap``, meant for compacted topics) and commits them as processed.
      Here the read offsets are forgotten after the seek instead (the next record delivered
      sets them), so no false gap is built, and records fetched again after the seek that
      the agents already got are still dropped as read.
   b. ``flow_control.resume()`` clears every agent queue (``clear_on_resume``) even though
      flow was never suspended, discarding records already handed out; the refetch then drops
      them as read. Here a resume clears the queues only when flow was actually suspended
      (the first resume after a rebalance still drops stale records).

2. **Bounded fetch wait.** faust 0.15 creates its aiokafka consumer with
   ``fetch_max_wait_ms=1500`` and no setting. The embedded Tansu broker looks for records when
   a fetch arrives, then again after half the remaining wait, half of that, and so on, and a
   record arriving in between waits for the next look (up to half the wait: ~0.6 s per hop
   measured at 1.5 s; docs/broker.md); a short wait keeps every hop to milliseconds on any broker.

3. **No commit past the record at the committed offset.** faust 0.15 compares the first
   acked offset with the committed offset off by one and commits past an unacked record
   there (seen in the same runs: a record dropped by 1b was committed over without any
   gap). Here a partition's commit waits until that record is acked.

4. **Optional: ack only what an agent took** (``ack_only_taken=True``, used by the triage
   worker). faust acks a message its stream *skips* (flow control suspended or generation
   changed around a rebalance); with this on, only a message passed to ``take()`` by an agent
   can be acked, so a skipped one stays uncommitted and is fetched again after the seek.
"""

from __future__ import annotations

import weakref
from typing import Any

from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka

SCHEME = "cctriage-kafka"
_FETCH_MAX_WAIT_MS = 20
_ACK_ONLY_TAKEN = False

# Messages an agent has taken responsibility for (used when _ACK_ONLY_TAKEN).
_TAKEN: weakref.WeakSet = weakref.WeakSet()


def take(message: Any) -> None:
    """Call when an agent starts processing ``message``: from now on its ack counts."""
    _TAKEN.add(message)


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = _FETCH_MAX_WAIT_MS
        return consumer


def _keep_queues_while_flowing(flow_control: Any) -> None:
    """Make ``flow_control.resume()`` clear the agents' queues only when flow was suspended."""
    if getattr(flow_control, "_cctriage_guarded", False):
        return
    resume = flow_control.resume

    def guarded_resume() -> None:
        if flow_control.is_active():
            return  # already flowing: the queues hold current records handed to agents
        resume()

    flow_control.resume = guarded_resume
    flow_control._cctriage_guarded = True


class Consumer(faust_aiokafka.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _keep_queues_while_flowing(self.app.flow_control)

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def perform_seek(self) -> None:
        await super().perform_seek()
        # faust just set each partition's read offset back to the committed offset, but the
        # fetcher may be halfway through a batch read before the seek. Forget the read offsets:
        # the next record delivered for a partition sets it again, so a batch that continues
        # past the seek builds no false gap, and records fetched again after the seek that the
        # agents already got are still dropped as read.
        for tp in list(self._read_offset):
            self._read_offset[tp] = None

    def _new_offset(self, tp: Any) -> int | None:
        # faust keeps Kafka's committed offset (the next offset to read) but tests "is the
        # first acked offset right after it?" as if it were the last offset processed
        # (``min(acked) - committed > 1``), so with committed 560 and 561 acked first it
        # commits 562 past an unprocessed 560. Wait for the record at the committed offset.
        acked = self._acked[tp]
        committed = self._committed_offset[tp]
        if acked and committed is not None and not self._gap[tp] and min(acked) > committed:
            return None
        return super()._new_offset(tp)

    def ack(self, message: Any) -> bool:
        if _ACK_ONLY_TAKEN and message not in _TAKEN:
            return False
        return super().ack(message)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


def register(fetch_max_wait_ms: int | None = None, ack_only_taken: bool | None = None) -> str:
    """Make ``cctriage-kafka://`` URLs use this transport; returns the scheme.

    Either option left at None keeps what an earlier call chose (default: 20 ms, ack guard
    off); one process runs one worker.
    """
    global _FETCH_MAX_WAIT_MS, _ACK_ONLY_TAKEN
    if fetch_max_wait_ms is not None:
        _FETCH_MAX_WAIT_MS = fetch_max_wait_ms
    if ack_only_taken is not None:
        _ACK_ONLY_TAKEN = ack_only_taken
    drivers.TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
    return SCHEME
