"""Triage pipeline benchmark: end to end through the broker against the model alone, same run.

Run: ``make bench-pipeline`` or ``.venv/bin/python bench/pipeline_bench.py [--messages 3000]``.

On this machine, in one run:

1. **model only**: ``SentimentModel.score`` on batches of ``--batch-size`` support messages with
   ``--threads`` ONNX threads (what a worker uses); messages per second.
2. **end to end**: one triage worker (``python -m cctriage_triage``, a subprocess) on the embedded
   broker, with a real routing server (in this process). ``--messages`` customer messages are
   published as fast as the producer goes; messages per second from the first publish until
   the worker has scored and written the last one (scores, flags, state changelog, acks).
   Must be at least 70% of (1).
3. **latency at half of (2)**: customer messages published at half the end-to-end rate for
   ``--latency-seconds``; one conversation in five is an angry one-message conversation that
   must be flagged and routed. For each: time from publishing its event to the routing server
   receiving the RouteConversation call (recorded at the real engine's entry). p99 must be at
   most 100 ms.
   (1) is measured before and again after (2)-(3); the ratio uses their mean, as the machine's
   other load changes during a run.
4. **worker memory**: peak resident set (VmHWM) of the worker process. At most 500 MB.

Prints a markdown table and writes ``bench/results/pipeline_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

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


def calm_texts() -> list[str]:
    rows = [json.loads(line) for line in DATASET.read_text().splitlines() if line.strip()]
    texts = [r["text"] for r in rows if not r.get("stressed") and r.get("sentiment") != "negative"]
    return texts or ["Could you tell me when my order ships?"]


def model_only(texts: list[str], batch_size: int, threads: int, seconds: float) -> float:
    from cctriage_common.sentiment import SentimentModel

    model = SentimentModel.load(intra_op_threads=threads, inter_op_threads=1)
    batches = [texts[i : i + batch_size] for i in range(0, len(texts) - batch_size + 1, batch_size)]
    for batch in batches[:3]:
        model.score(batch)
    scored = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for batch in batches:
            model.score(batch)
            scored += len(batch)
            if time.perf_counter() - started >= seconds:
                break
    return scored / (time.perf_counter() - started)


def rss_mb(pid: int) -> tuple[float, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


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


def publish_paced(bootstrap: str, topic: str, events: list, rate: float) -> dict[str, float]:
    """Publish ``events`` (SupportEvent) at ``rate`` per second; {conversation_id: publish time}."""
    prod = producer(bootstrap)
    published: dict[str, float] = {}
    started = time.perf_counter()
    try:
        for i, event in enumerate(events):
            due = started + i / rate if rate else started
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            published.setdefault(event.conversation_id, time.time())
            prod.send(topic, key=event.conversation_id.encode(), value=event.SerializeToString())
        prod.flush(60)
    finally:
        prod.close(10)
    return published


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=3000, help="messages for the throughput phase")
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--model-seconds", type=float, default=8.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="ONNX intra-op threads (model and worker)")
    parser.add_argument("--partitions", type=int, default=4)
    return parser


# Small sizes for a smoke run (bench/run_all.py --quick): every figure, none of them meaningful.
QUICK_ARGS = ["--messages", "300", "--latency-seconds", "5", "--model-seconds", "1.5"]


def run(quick: bool = False, argv: list[str] | None = None) -> dict:
    """Measure (``argv``: this script's options) and return what ``main`` writes and prints
    (bench/run_all.py calls this)."""
    return measure(_parser().parse_args((QUICK_ARGS if quick else []) + (argv or [])))


def measure(args: argparse.Namespace) -> dict:
    rng = random.Random(11)
    texts = calm_texts()
    pool = [rng.choice(texts) for _ in range(max(512, args.batch_size * 16))]

    print(
        f"model only: batch {args.batch_size}, {args.threads} threads, {args.model_seconds:.0f} s ...",
        flush=True,
    )
    model_rate = model_only(pool, args.batch_size, args.threads, args.model_seconds)
    print(f"  {model_rate:.0f} messages/s", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="pipeline-bench-"))
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    results: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "broker": os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        or os.environ.get("CCTRIAGE_EMBEDDED_BROKER", "default"),
        "batch_size": args.batch_size,
        "threads": args.threads,
        "partitions": args.partitions,
        "model_only_messages_per_s": round(model_rate, 1),
    }
    with kafka_broker() as bootstrap, RoutingProbe(tmp) as routing:
        ensure_topics(
            bootstrap, prefix=prefix, settings=TopicSettings(prefix=prefix, partitions=args.partitions)
        )
        factory = WorkerFactory(
            bootstrap,
            prefix,
            tmp,
            routing.target,
            partitions=args.partitions,
            extra_env={
                "TRIAGE_ROUTING_TOKEN": TOKEN,
                "TRIAGE_MODEL_THREADS": str(args.threads),
                "TRIAGE_BATCH_SIZE": str(args.batch_size),
                "TRIAGE_ROUTING_BACKOFF_MAX_S": "1",
                "TRIAGE_LOG_LEVEL": "warning",
            },
        )
        topic = factory.topic("support-events")
        try:
            worker = factory.start().wait_ready(120)
            pid = worker.process.pid

            def scored() -> float:
                return worker.metric("cctriage_triage_events_total", {"outcome": "scored"})

            warm = [Conversation().customer(t) for t in pool[:64]]
            publish_paced(bootstrap, topic, warm, 0)
            wait_for(lambda: scored() >= len(warm), 120, 0.2, "warm-up scored")

            # -- end-to-end throughput ---------------------------------------------------------
            conversations = [Conversation() for _ in range(max(1, args.messages // 4))]
            events = [
                conversations[i % len(conversations)].customer(pool[i % len(pool)])
                for i in range(args.messages)
            ]
            base = scored()
            target = base + len(events)
            print(f"end to end: {len(events)} messages ...", flush=True)
            publisher = threading.Thread(target=publish_paced, args=(bootstrap, topic, events, 0))
            publisher.start()
            # Steady state: from the 10th to the last percent of the messages scored (leaves out
            # the first fetches and the time to publish them, which runs alongside).
            samples: list[tuple[float, float]] = []

            def done() -> bool:
                count = scored()
                samples.append((time.perf_counter(), count))
                return count >= target

            wait_for(done, 600, 0.05, "all scored")
            publisher.join()
            start_at = next(s for s in samples if s[1] >= base + len(events) // 10)
            e2e_rate = (samples[-1][1] - start_at[1]) / (samples[-1][0] - start_at[0])
            print(
                f"  {e2e_rate:.0f} messages/s ({100 * e2e_rate / model_rate:.0f}% of model only)", flush=True
            )

            # -- latency at half the end-to-end rate -------------------------------------------
            rate = e2e_rate / 2
            count = int(rate * args.latency_seconds)
            angry_ids: set[str] = set()
            events = []
            calm_conversations = [Conversation() for _ in range(64)]
            for i in range(count):
                if i % 5 == 0:
                    conversation = Conversation()
                    angry_ids.add(conversation.conversation_id)
                    events.append(conversation.customer(ANGRY))
                else:
                    events.append(calm_conversations[i % 64].customer(pool[i % len(pool)]))
            print(f"latency: {count} messages at {rate:.0f}/s, {len(angry_ids)} to route ...", flush=True)
            published = publish_paced(bootstrap, topic, events, rate)
            wait_for(
                lambda: angry_ids <= routing.received.keys(), 120, 0.2, "every angry conversation routed"
            )
            latencies = [routing.received[c] - published[c] for c in angry_ids]
            rss, peak = rss_mb(pid)
            breakdown = {
                name: _mean(worker, f"cctriage_triage_{name}")
                for name in (
                    "event_to_flag_seconds",
                    "event_to_route_seconds",
                    "inference_duration_seconds",
                    "routing_call_duration_seconds",
                    "inference_batch_size_messages",
                )
            }
            results.update(
                worker_means_whole_run=breakdown,
                end_to_end_messages_per_s=round(e2e_rate, 1),
                end_to_end_share_of_model=round(e2e_rate / model_rate, 3),
                latency_rate_messages_per_s=round(rate, 1),
                latency_route_calls=len(latencies),
                event_to_route_call_ms={
                    "p50": round(1000 * statistics.median(latencies), 1),
                    "p99": round(1000 * percentile(latencies, 0.99), 1),
                    "max": round(1000 * max(latencies), 1),
                },
                worker_rss_mb=round(rss, 1),
                worker_peak_rss_mb=round(peak, 1),
                model_version=_model_version(worker),
            )
        finally:
            factory.stop_all()

    print("model only again, after the worker stopped ...", flush=True)
    model_after = model_only(pool, args.batch_size, args.threads, args.model_seconds)
    model_rate = (model_rate + model_after) / 2
    results["model_only_messages_per_s_after"] = round(model_after, 1)
    results["model_only_messages_per_s_mean"] = round(model_rate, 1)
    results["end_to_end_share_of_model"] = round(results["end_to_end_messages_per_s"] / model_rate, 3)
    verdicts = {
        "end to end >= 70% of model only": results["end_to_end_share_of_model"] >= 0.7,
        "p99 event -> route call <= 100 ms at half max": results["event_to_route_call_ms"]["p99"] <= 100,
        "worker peak RSS <= 500 MB": results["worker_peak_rss_mb"] <= 500,
    }
    results["holds"] = verdicts
    return results


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    results = measure(args)
    verdicts = results["holds"]
    model_rate = results["model_only_messages_per_s_mean"]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    lat = results["event_to_route_call_ms"]
    print()
    print("| measure | value |")
    print("|---|---|")
    print(
        f"| model only (batch {args.batch_size}, {args.threads} threads), mean of before and after "
        f"| {model_rate:.0f} messages/s |"
    )
    print(
        f"| end to end through the broker | {results['end_to_end_messages_per_s']:.0f} messages/s "
        f"({100 * results['end_to_end_share_of_model']:.0f}% of model only) |"
    )
    print(
        f"| event published -> route call, at {results['latency_rate_messages_per_s']:.0f} messages/s "
        f"({results['latency_route_calls']} calls) "
        f"| p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms |"
    )
    print(f"| worker RSS | {results['worker_rss_mb']:.0f} MB (peak {results['worker_peak_rss_mb']:.0f} MB) |")
    for name, ok in verdicts.items():
        print(f"{'holds' if ok else 'FAILS'}: {name}")
    print(f"written to {RESULTS.relative_to(REPO)}")
    return 0 if all(verdicts.values()) else 1


def _mean(worker, name: str) -> float | None:
    total = worker.metric(f"{name}_sum")
    count = worker.metric(f"{name}_count")
    return round(total / count, 4) if count else None


def _model_version(worker) -> str:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(worker.get("/metrics")[1]):
        for sample in family.samples:
            if sample.name == "cctriage_triage_model_info":
                return sample.labels.get("version", "")
    return ""


if __name__ == "__main__":
    sys.exit(main())
