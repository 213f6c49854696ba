"""Triage pipeline benchmark: end to end through the broker against the model alone, same run.

Run: ``make bench-pipeline`` or ``.venv/bin/python bench/pipeline_bench.py [--messages 3000]``.
From Python (bench/run_all.py): ``pipeline_bench.run(messages=1500) -> dict``.

One run, on this machine, with one message pool (calm support messages from
``models/data/support_messages.jsonl``: 19 words on average, a few over 100):

1. **model sweep**: the model alone on the same messages, in this process, in every
   configuration the worker could use: plain batches of 4, 8, 16 and 32, and gathered batches
   of 32 and 64 cut into runs of 8, 16 or 32 similar-length messages (the worker's way,
   ``cctriage_triage.batching``), each with 1 and 2 ONNX threads (2 with and without thread
   spinning), plus 64 by length in runs of 8 with two 1-thread runs at once (the worker's
   TRIAGE_MODEL_PARALLEL_RUNS=2). The best configuration per session goes on.
2. **end to end**: one triage worker (``python -m cctriage_triage``, a subprocess; ``--workers``
   for more) on the embedded broker, with a real routing server in this process. In each of
   ``--rounds`` rounds, ``--messages``/rounds customer messages are published as fast as the
   producer goes while the worker runs; the rate is the steady state (from 10% to 100% of the
   round's messages processed: scored, scores/flags/state written to Kafka, acked).
   Before the first round and after every round, the two configurations of (1) are measured
   again (the worker idles; its CPU use then is recorded), and the better one counts: other
   jobs on a shared machine come and go within seconds, so each end-to-end round is compared
   with the model alone right before and after it. End to end must be at least 70% of the
   model alone (means over the rounds and windows).
3. **latency**: at 25%, 50% and 80% of (2) (``--rates``) for ``--latency-seconds`` each, one
   conversation in five is an angry one-message conversation that must be routed; for each,
   the time from publishing its event to the routing server receiving the RouteConversation
   call (at the real engine's entry): p50/p95/p99/max. At 50%, p99 must be at most 100 ms.
4. **worker memory**: peak resident set (VmHWM) of each worker. At most 500 MB.

The load generator publishes with librdkafka (confluent-kafka, ``--publisher``; kafka-python
is the other choice): it runs on the same two cores as the pipeline, and paced, kafka-python
cost ~1.5 CPU ms per message there against ~0.3 (services/triage/README.md, "Session 14").

Also: CPU seconds per process and thread during (2) (where the machine's time went), and the
load average. Prints a markdown table and writes ``bench/results/pipeline_bench.json``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

from benchlib import cpu_shares, cpu_ticks  # noqa: E402
from cctriage_common.broker import kafka_broker  # noqa: E402
from cctriage_common.settings import load  # noqa: E402
from cctriage_common.topics import TopicSettings, ensure_topics  # noqa: E402
from triage_support import Conversation, WorkerFactory, producer, wait_for  # noqa: E402

RESULTS = REPO / "bench" / "results" / "pipeline_bench.json"
DATASET = REPO / "models" / "data" / "support_messages.jsonl"
TOKEN = "bench-token"
ANGRY = (
    "This is the third time I'm writing about this. It is ridiculous and I am furious. "
    "Fix it today or I will cancel everything and talk to my lawyer."
)
RATES = (0.25, 0.5, 0.8)
# Issue 5's latency target: p99 event published -> route call at most this at half the maximum.
P99_TARGET_MS = 100.0
# Model configurations tried for the ceiling: ("plain", batch) = model.score on batches in
# arrival order; ("by_length", gathered, run) = the worker's batching.score_by_length;
# ("by_length", gathered, run, parallel) = the same with up to ``parallel`` runs scored at once
# (the worker's TRIAGE_MODEL_PARALLEL_RUNS; tried with 1-thread sessions only).
MODEL_CONFIGS: tuple[tuple, ...] = (
    ("plain", 4), ("plain", 8), ("plain", 16), ("plain", 32),
    ("by_length", 32, 8), ("by_length", 64, 8), ("by_length", 64, 16), ("by_length", 64, 32),
    ("by_length", 64, 8, 2),
)
# ONNX sessions tried: (intra-op threads, spinning). Spinning only matters with 2 threads; the
# worker runs without it (TRIAGE_MODEL_SPINNING), the model alone may do better either way.
MODEL_SESSIONS = ((1, True), (2, True), (2, False))
POLL_S = 0.25  # how often the worker's /metrics is read (each read costs the worker CPU)


def calm_texts() -> list[str]:
    rows = [json.loads(line) for line in DATASET.read_text().splitlines() if line.strip()]
    texts = [r["text"] for r in rows if not r.get("stressed") and r.get("sentiment") != "negative"]
    return texts or ["Could you tell me when my order ships?"]


def message_pool(size: int = 1024, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    texts = calm_texts()
    return [rng.choice(texts) for _ in range(size)]


# -- the model alone ------------------------------------------------------------------------------


def _config_name(config: tuple, threads: int) -> str:
    plural = "s" if threads > 1 else ""
    if config[0] == "plain":
        return f"batch {config[1]}, {threads} thread{plural}"
    if len(config) > 3:
        return f"{config[1]} by length in runs of {config[2]}, {config[3]} at once, {threads} thread{plural}"
    return f"{config[1]} by length in runs of {config[2]}, {threads} thread{plural}"


def model_rate(model, texts: Sequence[str], config: tuple, seconds: float) -> float:
    """Messages per second of ``model`` on ``texts`` in one configuration (see MODEL_CONFIGS)."""
    from cctriage_triage.batching import score_by_length

    if config[0] == "plain":
        size = config[1]

        def score(batch):
            return model.score(batch)
    else:
        size, run = config[1], config[2]
        parallel = concurrent.futures.ThreadPoolExecutor(config[3]) if len(config) > 3 else None

        def score(batch):
            return score_by_length(model, batch, run, parallel=parallel)

    batches = [texts[i : i + size] for i in range(0, len(texts) - size + 1, size)]
    for batch in batches[:2]:
        score(batch)
    scored = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for batch in batches:
            score(batch)
            scored += len(batch)
            if time.perf_counter() - started >= seconds:
                break
    rate = scored / (time.perf_counter() - started)
    if config[0] != "plain" and parallel is not None:
        parallel.shutdown()
    return rate


def load_model(threads: int, spinning: bool = True):
    from cctriage_common.sentiment import SentimentModel

    return SentimentModel.load(intra_op_threads=threads, inter_op_threads=1, allow_spinning=spinning)


def model_sweep(
    texts: Sequence[str], seconds: float, configs: Sequence[tuple] = MODEL_CONFIGS,
    sessions: Sequence[tuple[int, bool]] = MODEL_SESSIONS,
) -> list[dict]:
    rows = []
    for count, spinning in sessions:
        model = load_model(count, spinning)
        for config in configs:
            if len(config) > 3 and count > 1:
                continue  # parallel runs of multi-thread sessions: more threads than cores
            rate = model_rate(model, texts, config, seconds)
            name = _config_name(config, count) + ("" if spinning else ", no spinning")
            rows.append({"config": list(config), "threads": count, "spinning": spinning, "name": name,
                         "messages_per_s": round(rate, 1)})
    return rows


def _session(row: dict) -> tuple[int, bool]:
    return row["threads"], row.get("spinning", True)


def _contenders(sweep: list[dict]) -> list[dict]:
    """The best configuration of the sweep for each session (threads, spinning): each is
    re-measured next to every end-to-end window, and the best one there is the ceiling."""
    best: dict[tuple[int, bool], dict] = {}
    for row in sweep:
        key = _session(row)
        if key not in best or row["messages_per_s"] > best[key]["messages_per_s"]:
            best[key] = row
    return list(best.values())


# -- processes ------------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> tuple[float, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


EXITED = "exited threads"


def _cpu_by_thread(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of ``pid``, by "name:thread id" (Python threads all carry the
    process's name; in a worker the busiest thread is the ONNX one, the next the event loop)."""
    out: dict[str, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[f"{name}:{tid}"] = (int(fields[11]) + int(fields[12])) / _TICK
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return out
    # The process's own counter keeps the time of threads that have exited (a Kafka client's, say,
    # closed within the window): without it the window's total would leave their work out.
    out[EXITED] = max(0.0, (int(fields[11]) + int(fields[12])) / _TICK - sum(out.values()))
    return out


def _children(pid: int) -> dict[int, str]:
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            kids[int(entry)] = stat[stat.index("(") + 1 : stat.rindex(")")]
    return kids


def cpu_snapshot(workers: dict[str, int]) -> dict[str, dict[str, float]]:
    """CPU seconds by process role and thread: this process, the broker, each worker."""
    snap = {"bench": _cpu_by_thread(os.getpid())}
    for pid, name in _children(os.getpid()).items():
        if name in ("tansu", "noida-db"):
            snap["broker"] = _cpu_by_thread(pid)
    for role, pid in workers.items():
        snap[role] = _cpu_by_thread(pid)
    return snap


def cpu_used(before: dict, after: dict) -> dict[str, dict[str, float]]:
    """CPU seconds each role used between two ``cpu_snapshot``s: its total (the process's own
    counter, so threads that exited in between count too) and the threads that used >= 0.05 s,
    with EXITED for the work of threads no longer there at the end."""
    used = {}
    for role, threads in after.items():
        was = before.get(role, {})
        total = sum(threads.values()) - sum(was.values())
        per = {name: v - was.get(name, 0.0) for name, v in threads.items() if name != EXITED}
        per[EXITED] = total - sum(per.values())
        per = {k: round(v, 2) for k, v in sorted(per.items(), key=lambda kv: -kv[1]) if v >= 0.05}
        used[role] = {"total": round(total, 2), **per}
    return used


class RoutingProbe:
    """A real routing server in this process; records when each conversation's route call arrives."""

    def __init__(self, tmp: Path) -> None:
        from cctriage_routing.server import RoutingServer
        from cctriage_routing.settings import RoutingSettings
        from cctriage_routing.testing import server_environment

        environ = server_environment(
            tmp, ROUTING_METRICS_PORT="-1", ROUTING_AUTH_ENABLED="1", ROUTING_AUTH_TOKENS=f"{TOKEN}=triage"
        )
        self.server = RoutingServer(load(RoutingSettings, environ))
        self.received: dict[str, float] = {}
        route = self.server.engine.route

        def timed_route(request):
            self.received.setdefault(request.conversation_id, time.time())
            return route(request)

        self.server.engine.route = timed_route

    def __enter__(self) -> RoutingProbe:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(1)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"


# The load generator's Kafka client (``--publisher``). The bench's publisher shares the machine's
# two cores with the system under test, so what it costs per message is taken from the worker
# and the broker. kafka-python sends a paced message through its sender thread: ~1.5 CPU ms per
# message at 115-196 msg/s here, about a fifth of everything else in the pipeline at those
# rates; librdkafka (confluent-kafka, C threads, no GIL) ~0.3 ms (triage README, "Session 14").
PUBLISHERS = ("confluent-kafka", "kafka-python")
# The default; ``run(publisher=...)``, ``--publisher`` or CCTRIAGE_BENCH_PUBLISHER choose another.
PUBLISHER = os.environ.get("CCTRIAGE_BENCH_PUBLISHER", "confluent-kafka")


def _check_publisher(client: str) -> str:
    if client not in PUBLISHERS:
        raise ValueError(f"publisher {client!r}: expected one of {', '.join(PUBLISHERS)}")
    return client


def publish_paced(
    bootstrap: str, topic: str, events: list, rate: float, client: str | None = None
) -> dict[str, float]:
    """Publish ``events`` (SupportEvent) at ``rate`` per second (0 = as fast as possible);
    {conversation_id: wall time its first event was handed to the producer}.

    ``client``: one of PUBLISHERS (default PUBLISHER); both send each record as soon as it is
    handed over (linger 0) and wait for every broker ack (acks=all) before returning."""
    client = _check_publisher(client or PUBLISHER)
    if client == "kafka-python":
        prod = producer(bootstrap)
        send, finish = prod.send, lambda: (prod.flush(60), prod.close(10))
    else:
        from confluent_kafka import Producer

        failures: list[str] = []

        def delivered(error, _message) -> None:
            if error is not None:
                failures.append(str(error))

        # murmur2_random: Java's and kafka-python's partitioner (librdkafka's own default differs), so
        # a conversation lands on the partition any other client would put it on (docs/events.md).
        ck = Producer({
            "bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all", "partitioner": "murmur2_random",
            "on_delivery": delivered,
        })

        def send(topic: str, key: bytes, value: bytes) -> None:
            ck.produce(topic, key=key, value=value)
            ck.poll(0)

        def finish() -> None:
            left = ck.flush(60)
            if left or failures:
                raise RuntimeError(
                    f"publisher: {left} records not delivered, {len(failures)} failed: {failures[:3]}"
                )

    published: dict[str, float] = {}
    started = time.perf_counter()
    try:
        for i, event in enumerate(events):
            due = started + i / rate if rate else started
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            published.setdefault(event.conversation_id, time.time())
            send(topic, key=event.conversation_id.encode(), value=event.SerializeToString())
    finally:
        finish()
    return published


def latency_traffic(count: int, pool: Sequence[str]) -> tuple[list, set[str]]:
    """``count`` customer messages: every fifth the one angry message of a new conversation (it
    must be routed), the rest calm messages spread over 64 conversations. Returns (events, the
    angry conversations' ids)."""
    # One event second per calm message: at 20 s (the default) the 64 conversations' clocks ran
    # minutes ahead of the new angry ones at high rates, and the worker rightly dead-lettered
    # those as late (older than the grace behind their partition's newest event).
    calm = [Conversation(step_s=1.0) for _ in range(64)]
    angry: set[str] = set()
    events = []
    for i in range(count):
        if i % 5 == 0:
            conversation = Conversation()
            angry.add(conversation.conversation_id)
            events.append(conversation.customer(ANGRY))
        else:
            events.append(calm[i % 64].customer(pool[i % len(pool)]))
    return events, angry


# How long a latency phase waits for its last route call after publishing; a conversation not
# routed by then counts as that late (the worker fell behind: the rate was over its capacity).
ROUTE_WAIT_S = 120.0


def route_latencies(
    routing: RoutingProbe, published: dict[str, float], ids: set[str], wait_s: float
) -> tuple[dict[str, float], int]:
    """Publish -> route call seconds for ``ids``, waiting at most ``wait_s`` after the last publish;
    a conversation still not routed counts as routed at the deadline.

    Returns ({conversation id: seconds}, how many were not routed)."""
    deadline = max(published[c] for c in ids) + wait_s
    while not ids <= routing.received.keys() and time.time() < deadline:
        time.sleep(POLL_S)
    received = dict(routing.received)
    values = {c: received.get(c, deadline) - published[c] for c in ids}
    return values, sum(1 for c in ids if c not in received)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _mean(workers, name: str) -> float | None:
    total = sum(w.metric(f"{name}_sum") for w in workers)
    count = sum(w.metric(f"{name}_count") for w in workers)
    return round(total / count, 4) if count else None


def _model_version(worker) -> str:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(worker.get("/metrics")[1]):
        for sample in family.samples:
            if sample.name == "cctriage_triage_model_info":
                return sample.labels.get("version", "")
    return ""


# -- the run --------------------------------------------------------------------------------------


# Warm-up of a latency phase's fresh worker: a burst, then the phase's traffic for WARM_S.
WARM_MESSAGES, WARM_S = 600, 5.0


def latency_phase(
    bootstrap: str, topic: str, routing: RoutingProbe, rate: float, seconds: float, pool: Sequence[str],
    log: Callable[[str], None],
) -> dict:
    """Publish ``rate`` messages/s for ``seconds`` (one in five the angry message of a new
    conversation) and return the publish -> route call percentiles of the angry ones."""
    count = max(5, int(rate * seconds))
    events, angry_ids = latency_traffic(count, pool)
    log(f"latency at {rate:.0f}/s: {count} messages, {len(angry_ids)} to route ...")
    published = publish_paced(bootstrap, topic, events, rate)
    by_id, unrouted = route_latencies(routing, published, angry_ids, ROUTE_WAIT_S)
    values = list(by_id.values())
    row = {
        "offered_messages_per_s": round(rate, 1),
        "route_calls": len(angry_ids) - unrouted,
        "unrouted": unrouted,
        **{f"p{q}_ms": round(1000 * percentile(values, q / 100), 1) for q in (50, 95, 99)},
        "max_ms": round(1000 * max(values), 1),
    }
    log(f"  p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms, p99 {row['p99_ms']} ms"
        + (f"; {unrouted} not routed {ROUTE_WAIT_S:.0f} s after publishing (counted as"
           f" that long: the percentiles are lower bounds)" if unrouted else ""))
    return row


def capacity_at_target(
    measured: dict[float, dict], max_rate: float, steps: int, phase: Callable[[float], dict],
    log: Callable[[str], None] = lambda line: None,
) -> dict:
    """The highest paced rate found whose p99 event -> route call meets ``P99_TARGET_MS``.

    ``measured`` maps fractions of ``max_rate`` to latency rows already taken; the search bisects
    between the highest fraction that met the target and the lowest one above it that did not,
    with ``steps`` more ``phase(rate)`` runs (none when every measured fraction met it). For
    capacity planning: how much *paced* traffic one worker takes within the target, next to the
    maximum, which is a drain rate of a backlog. The verdict of the issue stays the 50% phase.
    """
    held = [f for f, row in measured.items() if row["p99_ms"] <= P99_TARGET_MS]
    low = max(held, default=0.0)
    high = min((f for f, row in measured.items() if row["p99_ms"] > P99_TARGET_MS and f > low), default=None)
    tried = []
    if high is not None:
        for _ in range(steps):
            middle = (low + high) / 2
            log(f"latency target search: {100 * middle:.1f}% of the maximum")
            row = phase(max_rate * middle)
            tried.append({"share_of_max": round(middle, 4), **row})
            if row["p99_ms"] <= P99_TARGET_MS:
                low = middle
            else:
                high = middle
    return {
        "p99_target_ms": P99_TARGET_MS,
        "messages_per_s": round(max_rate * low, 1),
        "share_of_max": round(low, 4),
        # The lowest fraction seen to miss the target (None: none missed it).
        "lowest_share_missed": None if high is None else round(high, 4),
        "phases": tried,
    }


def _fresh_latency_phase(
    rate: float, seconds: float, pool: Sequence[str], partitions: int, worker_env: dict,
    log: Callable[[str], None],
) -> tuple[dict, float]:
    """``latency_phase`` on a new broker, routing server and worker (warmed up first);
    (the row, the worker's peak RSS in MB)."""
    tmp = Path(tempfile.mkdtemp(prefix="pipeline-latency-"))
    prefix = f"lat-{uuid.uuid4().hex[:8]}."
    with kafka_broker() as bootstrap, RoutingProbe(tmp) as routing:
        ensure_topics(bootstrap, prefix=prefix, settings=TopicSettings(prefix=prefix, partitions=partitions))
        factory = WorkerFactory(
            bootstrap, prefix, tmp, routing.target, partitions=partitions, extra_env=worker_env
        )
        try:
            worker = factory.start()
            worker.wait_ready(180)
            # A new worker is slow at first (first ONNX runs of each shape, first produce to each
            # partition, the first routing calls): measured p99 209-580 ms at 25% after a 64-message
            # warm-up against 47-62 ms on the warmed worker. So: a burst, then the phase's own
            # traffic for WARM_S at its rate (routes included), not measured.
            topic = factory.topic("support-events")
            warm = [Conversation().customer(pool[i % len(pool)]) for i in range(WARM_MESSAGES)]
            publish_paced(bootstrap, topic, warm, 0)
            scored = lambda: worker.metric("cctriage_triage_events_total", {"outcome": "scored"})  # noqa: E731
            wait_for(lambda: scored() >= len(warm), 180, POLL_S, "warm-up processed")
            events, angry_ids = latency_traffic(max(5, int(rate * WARM_S)), pool)
            route_latencies(routing, publish_paced(bootstrap, topic, events, rate), angry_ids, ROUTE_WAIT_S)
            row = latency_phase(bootstrap, topic, routing, rate, seconds, pool, log)
            return row, rss_mb(worker.process.pid)[1]
        finally:
            factory.stop_all()


def run(
    messages: int = 3000,
    latency_seconds: float = 15.0,
    model_seconds: float = 2.0,
    rates: Sequence[float] = RATES,
    workers: int = 1,
    partitions: int = 4,
    batch_size: int | None = None,
    model_batch_size: int | None = None,
    threads: int | None = None,
    parallel_runs: int | None = None,
    results_path: Path | None = RESULTS,
    log: Callable[[str], None] = lambda line: print(line, flush=True),
    quick: bool = False,
    rounds: int = 3,
    fresh_phases: bool = True,
    capacity_steps: int = 3,
    publisher: str | None = None,
) -> dict:
    """The whole benchmark; returns the figures (and writes them to ``results_path`` unless None).

    ``batch_size``, ``model_batch_size``, ``threads`` and ``parallel_runs`` override the worker's
    TRIAGE_BATCH_SIZE, TRIAGE_MODEL_BATCH_SIZE, TRIAGE_MODEL_THREADS and
    TRIAGE_MODEL_PARALLEL_RUNS (None: its defaults).
    ``quick`` (bench/run_all.py's quick mode): 1,000 messages, 6 s per latency rate, 1 s per
    model configuration.
    ``fresh_phases`` (default): each latency rate runs on its own fresh embedded broker, routing
    server and worker (one worker whatever ``workers`` says). The embedded Tansu broker's CPU per
    request grows with every record it holds (docs/broker.md): measured 1.87 -> 2.71 CPU ms per
    message between two back-to-back 20 s phases at 150 msg/s, and p99 472 -> 952 ms with it. On
    the throughput phase's broker the 50% rate came after ~4,000 events and their outputs, so it
    measured that broker's history as much as the worker. With KAFKA_BOOTSTRAP_SERVERS set the
    phases share that Kafka (fresh topics each).
    ``capacity_steps``: fresh latency phases spent bisecting for the highest paced rate that meets
    the p99 target (``capacity_at_target``; none in quick mode or with ``fresh_phases`` off).
    ``publisher``: the load generator's Kafka client, one of PUBLISHERS (default PUBLISHER), for
    every phase of the run.
    """
    global PUBLISHER
    if publisher is not None:
        PUBLISHER = _check_publisher(publisher)
    if quick:
        messages, latency_seconds, model_seconds = min(messages, 1000), min(latency_seconds, 6.0), 1.0
        capacity_steps = 0
    from cctriage_triage.settings import TriageSettings

    defaults = TriageSettings()
    worker_settings = {
        "TRIAGE_BATCH_SIZE": batch_size or defaults.batch_size,
        "TRIAGE_MODEL_BATCH_SIZE": model_batch_size or defaults.model_batch_size,
        "TRIAGE_MODEL_THREADS": threads or defaults.model_threads,
        "TRIAGE_MODEL_PARALLEL_RUNS": parallel_runs or defaults.model_parallel_runs,
    }
    worker_env = {
        "TRIAGE_ROUTING_TOKEN": TOKEN,
        "TRIAGE_ROUTING_BACKOFF_MAX_S": "1",
        "TRIAGE_LOG_LEVEL": "warning",
        **{k: str(v) for k, v in worker_settings.items()},
    }
    rates = sorted(set(rates) | {0.5})
    ticks = cpu_ticks()
    pool = message_pool()
    results: dict = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "publisher": PUBLISHER,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
        "broker": os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        or os.environ.get("CCTRIAGE_EMBEDDED_BROKER", "default (embedded Tansu)"),
        "partitions": partitions,
        "workers": workers,
        "latency_phases": "each on a fresh broker, routing server and worker" if fresh_phases
        else "on the throughput phase's broker and worker",
        "worker_settings": worker_settings,
        "messages": messages,
        "message_words_mean": round(statistics.mean(len(t.split()) for t in pool), 1),
    }

    configurations = sum(1 for count, _ in MODEL_SESSIONS for c in MODEL_CONFIGS if count == 1 or len(c) < 4)
    log(f"model ceiling: {configurations} configurations, {model_seconds:.0f} s each ...")
    sweep = model_sweep(pool, model_seconds)
    for row in sweep:
        log(f"  {row['name']}: {row['messages_per_s']:.0f} messages/s")
    results["model_sweep_before"] = sweep

    tmp = Path(tempfile.mkdtemp(prefix="pipeline-bench-"))
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    with kafka_broker() as bootstrap, RoutingProbe(tmp) as routing:
        ensure_topics(bootstrap, prefix=prefix, settings=TopicSettings(prefix=prefix, partitions=partitions))
        factory = WorkerFactory(
            bootstrap, prefix, tmp, routing.target, partitions=partitions, extra_env=worker_env
        )
        topic = factory.topic("support-events")
        try:
            procs = [factory.start() for _ in range(workers)]
            for worker in procs:
                worker.wait_ready(180)
            pids = {f"worker-{i}": w.process.pid for i, w in enumerate(procs)}

            def processed() -> float:
                return sum(w.metric("cctriage_triage_events_total", {"outcome": "scored"}) for w in procs)

            warm = [Conversation().customer(t) for t in pool[:64]]
            publish_paced(bootstrap, topic, warm, 0)
            wait_for(lambda: processed() >= len(warm), 180, POLL_S, "warm-up processed")

            # -- end to end, interleaved with the model alone ----------------------------------
            # Other jobs on a shared machine come and go within seconds, so each end-to-end
            # window sits between two model windows (the worker idles during those; its CPU use
            # is recorded), and the ratio compares them window by window.
            contenders = _contenders(sweep)
            models = {_session(row): load_model(*_session(row)) for row in contenders}

            def model_window() -> dict:
                idle_before = cpu_snapshot(pids)
                rates_now = {row["name"]: model_rate(models[_session(row)], pool, tuple(row["config"]),
                                                     model_seconds) for row in contenders}
                idle = cpu_used(idle_before, cpu_snapshot(pids))
                name = max(rates_now, key=rates_now.get)
                return {"best": name, "messages_per_s": round(rates_now[name], 1),
                        "all": {k: round(v, 1) for k, v in rates_now.items()},
                        "idle_worker_cpu_s": round(sum(u["total"] for r, u in idle.items()
                                                       if r.startswith("worker")), 2)}

            per_round = max(200, messages // rounds)
            windows = [model_window()]
            log(f"  model alone: {windows[-1]['messages_per_s']:.0f} messages/s ({windows[-1]['best']})")
            ends: list[dict] = []
            for number in range(rounds):
                conversations = [Conversation() for _ in range(max(1, per_round // 4))]
                events = [conversations[i % len(conversations)].customer(pool[i % len(pool)])
                          for i in range(per_round)]
                base = processed()
                target = base + len(events)
                cpu_round = cpu_snapshot(pids)
                publisher = threading.Thread(target=publish_paced, args=(bootstrap, topic, events, 0))
                publisher.start()
                samples: list[tuple[float, float]] = []

                def done(target=target, samples=samples) -> bool:
                    count = processed()
                    samples.append((time.perf_counter(), count))
                    return count >= target

                wait_for(done, 900, POLL_S, "all processed")
                publisher.join()
                cpu_end = cpu_snapshot(pids)
                # Steady state: from 10% of the messages processed to the last (leaves out the
                # first fetches; the publisher runs alongside the whole time).
                start_at = next(x for x in samples if x[1] >= base + len(events) // 10)
                rate = (samples[-1][1] - start_at[1]) / (samples[-1][0] - start_at[0])
                ends.append({"messages": per_round, "messages_per_s": round(rate, 1),
                             "cpu_seconds": cpu_used(cpu_round, cpu_end)})
                windows.append(model_window())
                ceiling_now = (windows[-2]["messages_per_s"] + windows[-1]["messages_per_s"]) / 2
                ends[-1]["share_of_model"] = round(rate / ceiling_now, 3)
                log(f"  round {number + 1}: end to end {rate:.0f} messages/s; model alone "
                    f"{windows[-1]['messages_per_s']:.0f} ({windows[-1]['best']}); "
                    f"{100 * rate / ceiling_now:.0f}% of the model on both sides")
            models.clear()
            e2e_rate = statistics.mean(r["messages_per_s"] for r in ends)
            pairs = zip(windows[:-1], windows[1:], strict=True)
            ceiling = statistics.mean((a["messages_per_s"] + b["messages_per_s"]) / 2 for a, b in pairs)
            results["end_to_end_messages_per_s"] = round(e2e_rate, 1)
            results["end_to_end_rounds"] = ends
            # CPU seconds per process during the end-to-end rounds only (not the model windows).
            results["end_to_end_cpu_seconds"] = {
                role: round(sum(r["cpu_seconds"].get(role, {}).get("total", 0.0) for r in ends), 2)
                for role in ends[0]["cpu_seconds"]
            }
            results["end_to_end_worker_means"] = {
                name: _mean(procs, f"cctriage_triage_{name}")
                for name in ("inference_batch_size_messages", "inference_duration_seconds")
            }
            results["model_ceiling"] = {
                "configs": [row["name"] for row in contenders],
                "windows": windows,
                "messages_per_s": round(ceiling, 1),
                "config": max(contenders, key=lambda r: sum(w["all"][r["name"]] for w in windows))["name"],
            }
            log(f"end to end {e2e_rate:.0f} messages/s; model alone {ceiling:.0f}; "
                f"{100 * e2e_rate / ceiling:.0f}%")

            # -- latency at fractions of the end-to-end rate -----------------------------------
            latency: dict[str, dict] = {}
            latency_rss: list[float] = []
            for fraction in rates:
                rate = e2e_rate * fraction
                if fresh_phases:
                    row, peak = _fresh_latency_phase(rate, latency_seconds, pool, partitions, worker_env, log)
                    latency_rss.append(peak)
                else:
                    row = latency_phase(bootstrap, topic, routing, rate, latency_seconds, pool, log)
                latency[f"{round(100 * fraction)}%"] = row
            results["event_to_route_call"] = latency

            def search_phase(rate: float) -> dict:
                row, peak = _fresh_latency_phase(rate, latency_seconds, pool, partitions, worker_env, log)
                latency_rss.append(peak)
                return row

            results["latency_target_capacity"] = capacity_at_target(
                dict(zip(rates, latency.values(), strict=True)), e2e_rate,
                capacity_steps if fresh_phases else 0, search_phase, log,
            )
            memory = {role: rss_mb(pid) for role, pid in pids.items()}
            results["worker_rss_mb"] = {role: round(m[0], 1) for role, m in memory.items()}
            results["worker_peak_rss_mb"] = round(max([m[1] for m in memory.values()] + latency_rss), 1)
            results["worker_means_whole_run"] = {
                name: _mean(procs, f"cctriage_triage_{name}")
                for name in ("event_to_flag_seconds", "event_to_route_seconds", "inference_duration_seconds",
                             "routing_call_duration_seconds", "inference_batch_size_messages")
            }
            results["model_version"] = _model_version(procs[0])
        finally:
            factory.stop_all()

    results["end_to_end_share_of_model"] = round(e2e_rate / ceiling, 3)
    # The names bench/run_all.py reads.
    results["model_only_messages_per_s_mean"] = round(ceiling, 1)
    results["latency_by_rate"] = [
        {"share_of_max": fraction, "offered_messages_per_s": row["offered_messages_per_s"],
         "route_calls": row["route_calls"],
         "event_to_route_call_ms": {"p50": row["p50_ms"], "p95": row["p95_ms"], "p99": row["p99_ms"],
                                    "max": row["max_ms"]}}
        for fraction, row in zip(rates, results["event_to_route_call"].values(), strict=True)
    ]
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["machine"]["cpu_during_run"] = cpu_shares(ticks, cpu_ticks())
    half = results["event_to_route_call"]["50%"]
    results["holds"] = {
        "end to end >= 70% of the model ceiling": results["end_to_end_share_of_model"] >= 0.7,
        "p99 event -> route call <= 100 ms at half the end-to-end rate": half["p99_ms"] <= 100,
        "worker peak RSS <= 500 MB": results["worker_peak_rss_mb"] <= 500,
    }
    if results_path is not None:
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(results, indent=2) + "\n")
    return results


def table(results: dict) -> str:
    ceiling = results["model_ceiling"]
    rounds = ", ".join(f"{100 * r['share_of_model']:.0f}%" for r in results["end_to_end_rounds"])
    lines = [
        "| measure | value | must hold |",
        "|---|---|---|",
        f"| model alone, same messages: the better of {' / '.join(ceiling['configs'])} (the best per "
        f"ONNX session of {len(results['model_sweep_before'])} configurations), in "
        f"{len(ceiling['windows'])} windows around the end-to-end rounds "
        f"| {ceiling['messages_per_s']:.0f} messages/s | |",
        f"| end to end through the broker ({results['workers']} worker, "
        f"{results['worker_settings']}; load from {results.get('publisher', 'kafka-python')}) "
        f"| {results['end_to_end_messages_per_s']:.0f} messages/s = "
        f"{100 * results['end_to_end_share_of_model']:.0f}% of the model alone (rounds: "
        f"{rounds}) "
        f"| >= 70% |",
    ]
    for name, row in results["event_to_route_call"].items():
        must = "p99 <= 100 ms" if name == "50%" else ""
        lines.append(
            f"| event published -> route call at {name} ({row['offered_messages_per_s']:.0f} messages/s, "
            f"{row['route_calls']} calls) | p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms, "
            f"p99 {row['p99_ms']} ms, max {row['max_ms']} ms | {must} |"
        )
    capacity = results.get("latency_target_capacity")
    if capacity is not None:
        missed = capacity["lowest_share_missed"]
        lines.append(
            f"| highest paced rate found with p99 <= {capacity['p99_target_ms']:.0f} ms "
            f"({len(capacity['phases'])} more fresh phases; capacity planning, not a target) "
            f"| {capacity['messages_per_s']:.0f} messages/s = {100 * capacity['share_of_max']:.0f}% of the "
            f"end-to-end rate" + (f" (missed at {100 * missed:.0f}%)" if missed is not None else "") + " | |"
        )
    lines.append(f"| worker peak RSS | {results['worker_peak_rss_mb']:.0f} MB | <= 500 MB |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=3000, help="messages for the throughput phase")
    parser.add_argument("--latency-seconds", type=float, default=15.0, help="seconds per latency rate")
    parser.add_argument("--model-seconds", type=float, default=2.0, help="seconds per model configuration")
    parser.add_argument("--rates", type=float, nargs="+", default=list(RATES),
                        help="latency phases, as fractions of the end-to-end rate (0.5 always included)")
    parser.add_argument("--rounds", type=int, default=3, help="end-to-end windows (between model windows)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch-size", type=int, help="worker TRIAGE_BATCH_SIZE (default: its own)")
    parser.add_argument("--model-batch-size", type=int, help="worker TRIAGE_MODEL_BATCH_SIZE")
    parser.add_argument("--threads", type=int, help="worker TRIAGE_MODEL_THREADS")
    parser.add_argument("--parallel-runs", type=int, help="worker TRIAGE_MODEL_PARALLEL_RUNS")
    parser.add_argument("--same-broker", action="store_true",
                        help="latency rates on the throughput phase's broker and worker (before session 7)")
    parser.add_argument("--publisher", choices=PUBLISHERS, default=PUBLISHER,
                        help="the load generator's Kafka client (default %(default)s)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args(argv)
    results = run(
        messages=args.messages, latency_seconds=args.latency_seconds, model_seconds=args.model_seconds,
        rates=args.rates, workers=args.workers, partitions=args.partitions, batch_size=args.batch_size,
        model_batch_size=args.model_batch_size, threads=args.threads, parallel_runs=args.parallel_runs,
        results_path=args.out,
        rounds=args.rounds,
        fresh_phases=not args.same_broker,
        publisher=args.publisher,
    )
    print()
    print(table(results))
    for name, ok in results["holds"].items():
        print(f"{'holds' if ok else 'FAILS'}: {name}")
    print(f"written to {args.out}")
    print("CPU seconds during the end-to-end rounds:", json.dumps(results["end_to_end_cpu_seconds"]))
    return 0 if all(results["holds"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
