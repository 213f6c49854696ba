"""Fixed-rate latency probe for the triage worker: where time and CPU go at a given load.

    .venv/bin/python bench/pipeline_probe.py --rates 58,116 --seconds 15
    .venv/bin/python bench/pipeline_probe.py --rates 116 --env TRIAGE_MODEL_THREADS=1

The same parts as bench/pipeline_bench.py (embedded broker, a real routing server in this
process, one worker subprocess, 4 partitions, calm support messages with one angry one-message
conversation in five), but at fixed offered rates instead of fractions of a measured maximum,
so two worker configurations can be compared at the same load. For each rate: event -> route
call p50/p95/p99/max, the share of the latency over time (the slowest route calls and when they
came), and CPU milliseconds per message by process and thread. Prints JSON lines; writes
nothing else. Also per message: context switches by process (voluntary: a thread went to sleep and
was woken again; involuntary: it was preempted), and once, what one sleep and wake-up of a thread
costs this machine in CPU (``wake_cpu_us``; virtual machines differ several-fold).
Also the machine's busy share while publishing (``/proc/stat``). Each process's CPU total counts
threads that exited during the phase (the publisher client's), listed as "exited threads".
``--pyspy SECONDS`` also records a py-spy profile of the worker during the first rate (needs
``py-spy`` on PATH; not a project dependency).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import cpu_shares, cpu_ticks  # noqa: E402
from cctriage_common.broker import kafka_broker  # noqa: E402
from cctriage_common.topics import TopicSettings, ensure_topics  # noqa: E402
from pipeline_bench import (  # noqa: E402
    ROUTE_WAIT_S,
    TOKEN,
    RoutingProbe,
    WorkerFactory,
    _children,
    cpu_snapshot,
    cpu_used,
    latency_traffic,
    message_pool,
    percentile,
    publish_paced,
    route_latencies,
    wait_for,
)
from triage_support import Conversation  # noqa: E402

INFERENCE = ("duration_seconds_sum", "duration_seconds_count", "batch_size_messages_sum",
             "batch_size_messages_count")


def switches(pids: dict[str, int]) -> dict[str, list[int]]:
    """Context switches so far by role (this process, the broker, each worker): [voluntary,
    involuntary], summed over the process's threads."""
    roles = {"bench": os.getpid(), **pids}
    for pid, name in _children(os.getpid()).items():
        if name in ("tansu", "noida-db"):
            roles["broker"] = pid
    out: dict[str, list[int]] = {}
    for role, pid in roles.items():
        total = [0, 0]
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    total[0] += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    total[1] += int(line.split()[1])
        out[role] = total
    return out


def wake_cpu_us(gap_s: float = 0.005, times: int = 300) -> float:
    """CPU microseconds this process spends per sleep of ``gap_s`` and wake-up (timer, idle exit,
    scheduling): the fixed price of every thread that waits for the next message."""
    cpu = time.process_time()
    for _ in range(times):
        time.sleep(gap_s)
    return round(1e6 * (time.process_time() - cpu) / times, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="58,116", help="offered messages/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the worker")
    parser.add_argument("--pyspy", type=float, default=0.0, help="seconds of py-spy during the first rate")
    parser.add_argument("--pyspy-out", default="/tmp/worker-profile.txt")
    parser.add_argument("--series", default="",
                        help="write (rate, s after start, latency ms, conversation, published at) rows here")
    args = parser.parse_args(argv)
    extra = dict(item.split("=", 1) for item in args.env)
    wake = wake_cpu_us()
    pool = message_pool()
    tmp = Path(tempfile.mkdtemp(prefix="pipeline-probe-"))
    prefix = f"probe-{uuid.uuid4().hex[:8]}."
    with kafka_broker() as bootstrap, RoutingProbe(tmp) as routing:
        ensure_topics(bootstrap, prefix=prefix, settings=TopicSettings(prefix=prefix, partitions=4))
        factory = WorkerFactory(
            bootstrap, prefix, tmp, routing.target, partitions=4,
            # The worker's own defaults unless --env overrides them.
            extra_env={"TRIAGE_ROUTING_TOKEN": TOKEN, "TRIAGE_LOG_LEVEL": "warning", **extra},
        )
        topic = factory.topic("support-events")
        try:
            worker = factory.start()
            worker.wait_ready(180)
            pids = {"worker": worker.process.pid}

            def scored() -> float:
                return worker.metric("cctriage_triage_events_total", {"outcome": "scored"})

            warm = [Conversation().customer(t) for t in pool[:64]]
            publish_paced(bootstrap, topic, warm, 0)
            wait_for(lambda: scored() >= len(warm), 180, 0.25, "warm-up processed")
            for number, rate in enumerate(float(r) for r in args.rates.split(",")):
                count = int(rate * args.seconds)
                events, angry = latency_traffic(count, pool)
                spy = None
                if number == 0 and args.pyspy and shutil.which("py-spy"):
                    spy = subprocess.Popen(
                        ["py-spy", "record", "--pid", str(worker.process.pid), "--duration",
                         str(int(args.pyspy)), "--format", "raw", "--threads", "--rate", "200",
                         "--nonblocking", "-o", args.pyspy_out],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    )
                runs_before = {n: worker.metric(f"cctriage_triage_inference_{n}") for n in INFERENCE}
                load_before = os.getloadavg()[0]
                before = cpu_snapshot(pids)
                switched = switches(pids)
                start = time.time()
                ticks = cpu_ticks()
                published = publish_paced(bootstrap, topic, events, rate)
                machine = cpu_shares(ticks, cpu_ticks())  # the whole machine, while publishing
                values, unrouted = route_latencies(routing, published, angry, ROUTE_WAIT_S)
                if unrouted:
                    # What the worker says it did with the flags, and its last log lines.
                    _, body = worker.get("/metrics")
                    wanted = ("routing", "flags_total", "handoff", "events_total", "lag")
                    print("\n".join(line for line in body.splitlines()
                                    if not line.startswith("#") and any(w in line for w in wanted)),
                          file=sys.stderr)
                    print(worker.tail(30), file=sys.stderr)
                used = cpu_used(before, cpu_snapshot(pids))
                switched = {
                    role: [round((now - was) / count, 2)
                           for now, was in zip(counts, switched.get(role, (0, 0)), strict=True)]
                    for role, counts in switches(pids).items()
                }
                runs = {n: worker.metric(f"cctriage_triage_inference_{n}") - runs_before[n]
                        for n in INFERENCE}
                if spy is not None:
                    spy.wait(60)
                ordered = sorted(values.values())
                if args.series:
                    with open(args.series, "a") as out:
                        for c in sorted(values, key=published.get):
                            out.write(f"{rate} {published[c] - start:.3f} {1000 * values[c]:.1f} "
                                      f"{c} {published[c]:.4f}\n")
                slowest = sorted(values, key=values.get)[-5:]
                onnx_runs = runs["duration_seconds_count"]
                per_message = {role: {name: round(1000 * v / count, 2) for name, v in threads.items()}
                               for role, threads in used.items()}
                print(json.dumps({
                    "rate": rate, "messages": count, "route_calls": len(values) - unrouted,
                    "unrouted": unrouted, "env": extra,
                    "machine_while_publishing": machine,
                    "load_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                    **{f"p{q}_ms": round(1000 * percentile(ordered, q / 100), 1) for q in (50, 95, 99)},
                    "max_ms": round(1000 * ordered[-1], 1),
                    "onnx_runs": int(onnx_runs),
                    "messages_per_run": round(runs["batch_size_messages_sum"] / max(1, onnx_runs), 2),
                    "ms_per_run": round(1000 * runs["duration_seconds_sum"] / max(1, onnx_runs), 2),
                    "slowest": [(round(published[c] - start, 2), round(1000 * values[c], 1))
                                for c in slowest],
                    "cpu_ms_per_message": per_message,
                    "switches_per_message": {role: {"voluntary": v, "involuntary": i}
                                             for role, (v, i) in switched.items()},
                    "wake_cpu_us": wake,
                }), flush=True)
        finally:
            factory.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
