"""Model-only benchmark: the shipped ONNX model against VADER, in the same run.

Run: ``make bench-model`` or ``.venv/bin/python bench/model_bench.py [--seconds 4]``.

Measures messages per second and per-batch latency (p50/p99) at batch 1, 8 and 32 with 1 and
2 onnxruntime threads, on ~20-word support messages, and the peak RSS of a fresh process that
loads the model and scores messages. VADER (the classic lexicon baseline, single-threaded,
one message at a time) runs on the same messages in the same run. Prints a table and writes
``bench/results/model_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "model_bench.json"
BATCH_SIZES = (1, 8, 32)
THREADS = (1, 2)

_OPENERS = ["Hi,", "Hello team,", "Hey,", "Good morning,", "so um", "Excuse me,", "Dear support,", ""]
_PROBLEMS = [
    "my order 4471 still has not arrived after two weeks and",
    "I was charged twice for the same subscription this month and",
    "the app keeps logging me out every time I open it and",
    "I need to change the delivery address for tomorrow's parcel and",
    "our internet has been down since Monday morning and",
    "I would like to upgrade my plan to the family bundle and",
    "my card was declined at checkout even though the balance is fine and",
    "the refund you promised last Friday never reached my account and",
]
_ENDINGS = [
    "could you please tell me what happens next?",
    "I am honestly thinking about cancelling everything now.",
    "this is the third time I have had to contact you.",
    "thanks a lot for your help with this.",
    "I really need this sorted before my flight tonight.",
    "is there anything I should do on my side?",
    "nobody has answered my emails, this is ridiculous.",
    "no rush, whenever you get a moment is fine.",
]


def messages(count: int, seed: int = 7) -> list[str]:
    """Support messages of about 20 words (mean and range are printed with the results)."""
    rng = random.Random(seed)
    return [
        " ".join(p for p in (rng.choice(_OPENERS), rng.choice(_PROBLEMS), rng.choice(_ENDINGS)) if p)
        for _ in range(count)
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_timed(fn, batches: list, seconds: float, warmup: int = 5) -> list[float]:
    for batch in batches[:warmup]:
        fn(batch)
    latencies = []
    started = time.perf_counter()
    i = 0
    while time.perf_counter() - started < seconds or len(latencies) < 20:
        batch = batches[i % len(batches)]
        t0 = time.perf_counter()
        fn(batch)
        latencies.append(time.perf_counter() - t0)
        i += 1
    return latencies


def summarise(engine: str, threads: int, batch: int, latencies: list[float]) -> dict:
    return {
        "engine": engine,
        "threads": threads,
        "batch": batch,
        "batches": len(latencies),
        "messages_per_second": round(batch * len(latencies) / sum(latencies), 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 3),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 3),
    }


_RSS_PROBE = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {bench!r})
    from model_bench import messages
    texts = messages(512)
    if {engine!r} == "onnx":
        from cctriage_common.sentiment import SentimentModel
        model = SentimentModel.load(intra_op_threads={threads})
        for i in range(0, len(texts), 32):
            model.score(texts[i:i + 32])
        model.score(["word " * 5000])
    else:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        analyzer = SentimentIntensityAnalyzer()
        for text in texts:
            analyzer.polarity_scores(text)
    # VmHWM is this process's own peak: ru_maxrss would carry the parent's peak over the fork.
    status = open("/proc/self/status").read()
    print(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
    """
)


def peak_rss_mb(engine: str, threads: int = 2) -> float:
    """Peak resident memory of a fresh interpreter that loads the engine and scores 512
    messages (and, for the model, one 5,000-word email)."""
    code = _RSS_PROBE.format(bench=str(Path(__file__).resolve().parent), engine=engine, threads=threads)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    return round(int(out.stdout.strip().splitlines()[-1]) / 1024, 1)


def run(
    seconds: float = 4.0,
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
    threads_counts: tuple[int, ...] = THREADS,
) -> dict:
    """Measure each configuration for ``seconds``; the result ``main`` prints and writes
    (bench/run_all.py calls this, with fewer configurations in its quick mode)."""
    # Imported here so that the VADER memory probe, which imports this module for its
    # messages, does not load onnxruntime.
    from cctriage_common.sentiment import SentimentModel

    texts = messages(2048)
    words = [len(t.split()) for t in texts]
    rows = []
    model_version = None
    for threads in threads_counts:
        model = SentimentModel.load(intra_op_threads=threads)
        model_version = model.version
        for batch in batch_sizes:
            batches = [texts[i : i + batch] for i in range(0, len(texts) - batch + 1, batch)]
            rows.append(summarise("onnx-int8", threads, batch, run_timed(model.score, batches, seconds)))
        del model

    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    vader_batches = [[t] for t in texts]
    rows.append(
        summarise(
            "vader", 1, 1, run_timed(lambda b: analyzer.polarity_scores(b[0]), vader_batches, seconds)
        )
    )

    memory = {"onnx-int8": peak_rss_mb("onnx", 2), "vader": peak_rss_mb("vader")}
    result = {
        "model": model_version,
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "load_average_at_start": os.getloadavg(),
        },
        "message_words": {"mean": round(statistics.mean(words), 1), "min": min(words), "max": max(words)},
        "seconds_per_configuration": seconds,
        "throughput": rows,
        "peak_rss_mb": memory,
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="measuring time per configuration")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    result = run(args.seconds)
    rows, memory, model_version = result["throughput"], result["peak_rss_mb"], result["model"]
    words = result["message_words"]
    print(
        f"model {model_version}; messages of {words['mean']} words on average "
        f"({words['min']}-{words['max']}); {os.cpu_count()} CPUs"
    )
    print(f"{'engine':<10} {'threads':>7} {'batch':>5} {'msg/s':>9} {'p50 ms':>9} {'p99 ms':>9}")
    for r in rows:
        print(
            f"{r['engine']:<10} {r['threads']:>7} {r['batch']:>5} {r['messages_per_second']:>9.1f} "
            f"{r['p50_ms']:>9.2f} {r['p99_ms']:>9.2f}"
        )
    print("peak RSS (fresh process): " + ", ".join(f"{k} {v:.0f} MB" for k, v in memory.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
