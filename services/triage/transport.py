"""faust's Kafka transport with a bounded fetch wait, acking only what the worker processed.

faust 0.15 creates its aiokafka consumer with ``fetch_max_wait_ms=1500`` and no setting to
change it. Apache Kafka answers a fetch as soon as a record arrives, so there it only bounds
idle polls; the embedded Tansu broker holds the fetch for most of the wait even when records
arrive, which measured ~0.6 s per hop (event -> flag -> routing call: ~1.3 s). A short wait
costs a few idle fetch requests per second and keeps every hop to milliseconds on any broker.

Second, faust 0.15 acks (marks committable) a message its stream *skips*: one fetched while
flow control is suspended, which happens after a rebalance between resuming the partitions
and seeking them to the committed offsets. Those offsets then get committed although no
agent saw the events, and the worker's read offset makes it drop them when they are
fetched again: measured as lost events after a kill -9 and restart. Here a message can only
be acked once an agent has taken it (``take``); a skipped one stays un-acked, is fetched
again after the seek, and processed.

Used as ``broker="cctriage-kafka://host:port"``.
"""

from __future__ import annotations

import weakref
from typing import Any

from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka

SCHEME = "cctriage-kafka"
FETCH_MAX_WAIT_MS = 20

# Messages an agent has taken responsibility for; faust's own acks of others are refused.
_TAKEN: weakref.WeakSet = weakref.WeakSet()


def take(message: Any) -> None:
    """Call when an agent starts processing ``message``: from now on its ack counts."""
    _TAKEN.add(message)


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def ack(self, message: Any) -> bool:
        if message not in _TAKEN:
            return False
        return super().ack(message)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


def register(fetch_max_wait_ms: int) -> str:
    """Make ``cctriage-kafka://`` URLs use this transport; returns the scheme."""
    global FETCH_MAX_WAIT_MS
    FETCH_MAX_WAIT_MS = fetch_max_wait_ms
    drivers.TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
    return SCHEME
