"""A consumer-group member for the broker conformance tests, run as its own process.

    python tests/integration/conformance/consumer.py TOPIC GROUP_ID

Uses the project's consumer settings (cctriage_common.kafka). Prints one JSON line per event:
{"assigned": [partitions]} after each rebalance and {"p": partition, "o": offset, "v": value} per
record; commits after every batch it has printed (at-least-once), like the services do.
"""

import asyncio
import json
import signal
import sys

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from cctriage_common.kafka import KafkaSettings, consumer_config
from cctriage_common.settings import load


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


class PrintAssignment(ConsumerRebalanceListener):
    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked) -> None:
        pass

    async def on_partitions_assigned(self, assigned) -> None:
        emit(assigned=sorted(tp.partition for tp in self.consumer.assignment()))


async def consume(topic: str, group_id: str) -> None:
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    consumer = AIOKafkaConsumer(**consumer_config(load(KafkaSettings), group_id, client_id="conformance"))
    consumer.subscribe([topic], listener=PrintAssignment(consumer))
    await consumer.start()
    try:
        while not stopping.is_set():
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    emit(p=record.partition, o=record.offset, v=record.value.decode())
            if batches:
                await consumer.commit()
    finally:
        await consumer.stop()


if __name__ == "__main__":
    asyncio.run(consume(sys.argv[1], sys.argv[2]))
