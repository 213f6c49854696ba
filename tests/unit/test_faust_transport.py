"""The project faust transport's guards (cctriage_common.faust_transport), on faust's own objects.

The end-to-end proof is tests/integration/test_broker_conformance.py::
test_faust_table_survives_a_killed_worker (kill -9 and restart lose no event); these pin the
two mechanisms it relies on.
"""

import asyncio

from cctriage_common import faust_transport
from cctriage_common.kafka import KafkaSettings, faust_config
from cctriage_common.settings import load
from cctriage_common.topics import TopicSettings
from mode.utils.queues import FlowControlEvent, FlowControlQueue


def _queue(flow_control: FlowControlEvent) -> FlowControlQueue:
    queue = FlowControlQueue(flow_control=flow_control, clear_on_resume=True)
    flow_control.manage_queue(queue)
    return queue


def test_resume_while_flowing_keeps_records_already_handed_to_agents():
    async def scenario() -> tuple[int, int]:
        flow_control = FlowControlEvent()  # suspended, as at a rebalance
        faust_transport._keep_queues_while_flowing(flow_control)
        queue = _queue(flow_control)
        queue.put_nowait("stale record from before the rebalance")
        flow_control.resume()  # first resume after a suspension: stale records go
        after_rebalance = queue.qsize()
        queue.put_nowait("record of the new assignment")
        flow_control.resume()  # faust's second resume at the end of recovery
        return after_rebalance, queue.qsize()

    assert asyncio.run(scenario()) == (0, 1)


def test_unguarded_faust_resume_drops_them():
    # What the guard is for: faust's own flow control clears the agents' queues on every resume.
    async def scenario() -> int:
        flow_control = FlowControlEvent()
        queue = _queue(flow_control)
        flow_control.resume()
        queue.put_nowait("record of the new assignment")
        flow_control.resume()
        return queue.qsize()

    assert asyncio.run(scenario()) == 0


def test_faust_config_uses_the_project_transport():
    config = faust_config(load(KafkaSettings, {"KAFKA_BOOTSTRAP_SERVERS": "k1:9092"}), TopicSettings())
    assert config["broker"] == f"{faust_transport.SCHEME}://k1:9092"
    from faust.transport import drivers

    assert drivers.by_url(config["broker"]) is faust_transport.Transport


def _consumer():
    import faust

    app = faust.App("cctriage-transport-test", broker=f"{faust_transport.register()}://127.0.0.1:1")
    consumer = app.consumer  # built, not started: no connection
    assert isinstance(consumer, faust_transport.Consumer)
    return consumer


def test_no_commit_past_an_unacked_record_at_the_committed_offset():
    from faust.types import TP

    consumer = _consumer()
    tp = TP("events", 0)
    consumer._committed_offset[tp] = 560  # Kafka's committed offset: 560 is the next to read
    consumer._acked[tp] = [561, 562]
    assert consumer._new_offset(tp) is None  # faust alone would commit 563 past 560
    consumer._acked[tp] = [560, 561, 562]
    assert consumer._new_offset(tp) == 563
