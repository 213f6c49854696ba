"""Measure the two embedded broker candidates side by side, in one run, on this machine.

    .venv/bin/python bench/broker_compare.py            # both brokers, ~2 minutes
    .venv/bin/python bench/broker_compare.py tansu

For each broker: time to answer ApiVersions, stop time, resident memory, aiokafka produce and
consume throughput (default batching and one record per batch), whether end offsets are exact
after batched produce, consumer-group join time, whether a two-member group with commits
settles, idempotent producer support, and what survives a broker restart (SIGTERM, kill -9).
Results feed docs/broker.md; they are measurements, not assertions.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from cctriage_common.broker import BROKER_KINDS, EmbeddedBroker
from cctriage_common.topics import create_topics

RECORDS = 20_000
VALUE = b"x" * 100


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def produce(bootstrap: str, topic: str, count: int, **config) -> tuple[float, dict[int, int]]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **config)
    await producer.start()
    written: dict[int, int] = {}
    try:
        started = time.perf_counter()
        futures = [
            await producer.send(topic, key=b"conversation-%d" % (i % 97), value=VALUE) for i in range(count)
        ]
        for meta in await asyncio.gather(*futures):
            written[meta.partition] = written.get(meta.partition, 0) + 1
        rate = count / (time.perf_counter() - started)
    finally:
        await producer.stop()
    return rate, written


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {tp.partition: o for tp, o in (await consumer.end_offsets(parts)).items()}
    finally:
        await consumer.stop()


async def consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 30) -> tuple[int, float]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()])
        got, started = 0, time.perf_counter()
        while got < expected and time.perf_counter() - started < timeout_s:
            got += sum(len(b) for b in (await consumer.getmany(timeout_ms=500)).values())
        return got, got / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def join_seconds(bootstrap: str, topic: str, session_ms: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"join-{session_ms}-{time.time()}",
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=session_ms // 6,
    )
    started = time.perf_counter()
    await consumer.start()
    try:
        while not consumer.assignment() and time.perf_counter() - started < 30:
            await consumer.getmany(timeout_ms=100)
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def two_member_group(bootstrap: str, topic: str) -> str:
    """Member A consumes and commits; member B joins; 400 records follow. Did the group settle?"""
    seen: set[tuple[int, int]] = set()
    stop = asyncio.Event()
    started: list[str] = []

    async def member(name: str) -> None:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=f"pair-{topic}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
        )
        await consumer.start()
        started.append(name)
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    seen.update((r.partition, r.offset) for r in records)
                if batches:
                    try:
                        await consumer.commit()
                    except Exception:  # noqa: BLE001 - a failed commit is what we count
                        pass
        finally:
            await consumer.stop()

    tasks = [asyncio.create_task(member("A"))]
    await asyncio.sleep(1.5)
    tasks.append(asyncio.create_task(member("B")))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    for i in range(400):
        await producer.send_and_wait(topic, VALUE, key=b"k%d" % i)
        await asyncio.sleep(0.01)
    await producer.stop()
    await asyncio.sleep(10)
    stop.set()
    done, pending = await asyncio.wait(tasks, timeout=15)
    for task in pending:
        task.cancel()
    return f"{len(seen)}/400 records consumed, members started: {''.join(started) or 'none'}" + (
        f", {len(pending)} member(s) hung on stop" if pending else ""
    )


async def idempotence(bootstrap: str, topic: str) -> str:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    try:
        await asyncio.wait_for(producer.start(), 15)
        await asyncio.wait_for(producer.send_and_wait(topic, VALUE, key=b"k"), 15)
        return "works"
    except Exception as exc:  # noqa: BLE001
        return f"fails ({type(exc).__name__})"
    finally:
        await producer.stop()


async def restart(kind: str, how: signal.Signals) -> str:
    data_dir = tempfile.mkdtemp(prefix=f"bench-{kind}-")
    broker = EmbeddedBroker(kind, data_dir=data_dir).start()
    port = broker.port
    create_topics(broker.bootstrap, [("kept", 2, {})])
    _, written = await produce(broker.bootstrap, "kept", 1000, acks="all")
    consumer = AIOKafkaConsumer(
        "kept",
        bootstrap_servers=broker.bootstrap,
        group_id="kept-group",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    await consumer.start()
    got = 0
    while got < 500:
        got += sum(len(b) for b in (await consumer.getmany(timeout_ms=500, max_records=500 - got)).values())
    await consumer.commit()
    await consumer.stop()
    broker.process.send_signal(how)
    broker.process.wait(15)
    broker.process = None
    broker = EmbeddedBroker(kind, data_dir=data_dir, port=port).start()
    try:
        count, _ = await consume_all(broker.bootstrap, "kept", 1000, timeout_s=5)
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="kept-group")
        await consumer.start()
        committed = 0
        for p in range(2):
            committed += await consumer.committed(TopicPartition("kept", p)) or 0
        await consumer.stop()
        return f"{count}/1000 records, {committed}/500 committed offsets"
    except Exception as exc:  # noqa: BLE001
        return f"nothing left ({type(exc).__name__})"
    finally:
        broker.stop()


async def measure(kind: str) -> dict[str, object]:
    result: dict[str, object] = {"broker": kind}
    started = time.perf_counter()
    broker = EmbeddedBroker(kind).start()
    result["ready_s"] = round(time.perf_counter() - started, 3)
    bs = broker.bootstrap
    try:
        create_topics(bs, [("batched", 4, {}), ("single", 4, {}), ("join", 4, {}), ("pair", 4, {})])
        rate, written = await produce(bs, "batched", RECORDS)
        result["produce_batched_per_s"] = round(rate)
        result["end_offsets_exact_batched"] = await end_offsets(bs, "batched") == written
        result["end_offsets_missing_batched"] = RECORDS - sum((await end_offsets(bs, "batched")).values())
        rate, written = await produce(bs, "single", RECORDS // 4, max_batch_size=1)
        result["produce_one_per_batch_per_s"] = round(rate)
        result["end_offsets_exact_one_per_batch"] = await end_offsets(bs, "single") == written
        got, rate = await consume_all(bs, "batched", RECORDS)
        result["consume_per_s"] = round(rate)
        result["rss_mb_after_load"] = round(rss_mb(broker.process.pid), 1)
        result["join_s_session_10000"] = round(await join_seconds(bs, "join", 10000), 2)
        result["join_s_session_6000"] = round(await join_seconds(bs, "join", 6000), 2)
        result["idempotent_producer"] = await idempotence(bs, "join")
        result["two_members_with_commits"] = await two_member_group(bs, "pair")
        started = time.perf_counter()
    finally:
        broker.stop()
    result["stop_s"] = round(time.perf_counter() - started, 3)
    result["after_sigterm_restart"] = await restart(kind, signal.SIGTERM)
    result["after_kill9_restart"] = await restart(kind, signal.SIGKILL)
    return result


def main() -> None:
    logging.basicConfig(level=logging.CRITICAL)  # the point is the figures, not client retries
    kinds = sys.argv[1:] or list(BROKER_KINDS)
    for kind in kinds:
        print(json.dumps(asyncio.run(measure(kind))), flush=True)


if __name__ == "__main__":
    main()
