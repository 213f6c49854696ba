"""The one benchmark command: every figure of the issues' targets, one table, one JSON.

    make bench                                   # the full run (about 10-15 minutes on 2 cores)
    .venv/bin/python bench/run_all.py --quick    # a smoke run with small sizes (about a minute)

Runs, in this order and in this process, the benchmarks next to it through their ``run()``:

1. ``model_bench``: the ONNX model alone, the ceiling on this machine (batch 32, 2 threads),
   p99 at batch 1, peak memory of a process that loads it; VADER in the same run.
2. ``pipeline_bench``: one triage worker end to end through the embedded broker, with a real
   routing server: throughput, its share of the model-only rate measured in the same run,
   and event-to-route latency percentiles at several offered rates.
3. ``routing_bench``: one routing decision in-process at 10,000 agents / 50,000 waiting, route
   calls per second over gRPC to the real server at that size (unary, stream, batch), and
   the server's memory.
4. ``publish_bench``: validation and ``cctriage-publish`` against bare kafka-python.

A watcher samples the memory of every process the benchmarks start (worker, router, broker).
Each figure is printed beside the issue target it answers, with holds / FAILS. Writes
bench/results/bench-<UTC time>.json and bench/results/latest.json (``--quick``:
bench-quick-<UTC time>.json and latest-quick.json). Exit code 0 when every figure was
measured, whether or not it meets its target (the table says which do not); 2 when a
benchmark could not run.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from benchlib import MemoryWatcher, cpu_shares, cpu_ticks, describe, machine  # noqa: E402

RESULTS = BENCH / "results"


class Figures:
    """The rows of the table: name, value, unit, target and whether it holds."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(
        self,
        section: str,
        name: str,
        value: float | None,
        unit: str,
        target: str = "",
        holds: bool | None = None,
        issue: int | None = None,
        note: str = "",
    ) -> None:
        self.rows.append(
            {
                "section": section,
                "name": name,
                "value": None if value is None else round(float(value), 3),
                "unit": unit,
                "target": target,
                "issue": issue,
                "holds": holds,
                "note": note,
            }
        )


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "not measured"
    if unit == "ratio":
        return f"{100 * value:.0f}%"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 1:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".strip()


# -- the benchmarks ----------------------------------------------------------------------------


def _call(fn, **kwargs):
    """``fn(**kwargs)`` with only the keyword arguments ``fn`` takes (the benches' options differ)."""
    accepted = inspect.signature(fn).parameters
    return fn(**{k: v for k, v in kwargs.items() if k in accepted})


def model(figures: Figures, quick: bool) -> dict:
    import model_bench

    if quick:
        result = model_bench.run(seconds=0.3, batch_sizes=(1, 32), threads_counts=(2,))
    else:
        result = model_bench.run(seconds=4.0)
    rows = {(r["engine"], r["threads"], r["batch"]): r for r in result["throughput"]}
    ceiling = rows[("onnx-int8", 2, 32)]
    figures.add(
        "model",
        "model only: batch 32, 2 threads (issue 3 configuration)",
        ceiling["messages_per_second"],
        "msg/s",
        ">= 400 msg/s",
        ceiling["messages_per_second"] >= 400,
        3,
    )
    one = rows.get(("onnx-int8", 1, 1)) or rows[("onnx-int8", 2, 1)]
    figures.add(
        "model",
        f"model p99 at batch 1, {one['threads']} thread(s)",
        one["p99_ms"],
        "ms",
        "<= 10 ms",
        one["p99_ms"] <= 10,
        3,
    )
    vader = rows[("vader", 1, 1)]
    figures.add("model", "VADER (baseline, same run)", vader["messages_per_second"], "msg/s")
    rss = result["peak_rss_mb"]["onnx-int8"]
    figures.add("model", "model peak RSS (fresh process)", rss, "MB", "<= 300 MB", rss <= 300, 3)
    return result


def pipeline(figures: Figures, quick: bool) -> dict:
    import pipeline_bench

    # results_path=None: the pipeline bench's own JSON stays that of its own last run.
    small = {"messages": 400, "latency_seconds": 3.0, "rounds": 1} if quick else {}
    result = _call(pipeline_bench.run, quick=quick, results_path=None, **small)
    model_rate = result["model_only_messages_per_s_mean"]
    e2e = result["end_to_end_messages_per_s"]
    share = result["end_to_end_share_of_model"]
    figures.add(
        "pipeline",
        "model ceiling, same run (best configuration, mean of before and after)",
        model_rate,
        "msg/s",
    )
    figures.add("pipeline", "pipeline end to end, 1 worker", e2e, "msg/s")
    figures.add("pipeline", "pipeline / model ceiling ratio", share, "ratio", ">= 70%", share >= 0.7, 5)
    for point in pipeline_rates(result):
        half = abs(point["share_of_max"] - 0.5) < 1e-6
        of_max = f"{100 * point['share_of_max']:.0f}% of max"
        label = f"event -> route at {point['offered_per_s']:.0f} msg/s ({of_max})"
        figures.add("pipeline", f"{label} p50", point["p50"], "ms")
        figures.add(
            "pipeline",
            f"{label} p99",
            point["p99"],
            "ms",
            "<= 100 ms at half max" if half else "",
            point["p99"] <= 100 if half else None,
            5 if half else None,
            note=f"{point['routed']} routes"
            + (f"; {point['unrouted']} not routed in time (lower bound)" if point.get("unrouted") else ""),
        )
    capacity = result.get("latency_target_capacity")
    if capacity is not None:
        missed = capacity["lowest_share_missed"]
        figures.add(
            "pipeline",
            f"highest paced rate found with p99 <= {capacity['p99_target_ms']:.0f} ms",
            capacity["messages_per_s"],
            "msg/s",
            note=f"{100 * capacity['share_of_max']:.0f}% of max"
            + (f"; missed at {100 * missed:.0f}%" if missed is not None else "")
            + f"; {len(capacity['phases'])} search phases",
        )
    return result


def pipeline_rates(result: dict) -> list[dict]:
    """The latency points as [{offered_per_s, share_of_max, p50, p99, routed}]."""
    if "latency_by_rate" in result:
        return [
            {
                "offered_per_s": p["offered_messages_per_s"],
                "share_of_max": p["share_of_max"],
                "p50": p["event_to_route_call_ms"]["p50"],
                "p99": p["event_to_route_call_ms"]["p99"],
                "routed": p["route_calls"],
                "unrouted": p.get("unrouted", 0),
                **(
                    {"achieved_per_s": p["achieved_messages_per_s"]} if "achieved_messages_per_s" in p else {}
                ),
            }
            for p in result["latency_by_rate"]
        ]
    lat = result["event_to_route_call_ms"]
    return [
        {
            "offered_per_s": result["latency_rate_messages_per_s"],
            "share_of_max": 0.5,
            "p50": lat["p50"],
            "p99": lat["p99"],
            "routed": result["latency_route_calls"],
        }
    ]


def routing(figures: Figures, quick: bool) -> dict:
    import routing_bench

    # Journal FULL only (fsync per group commit, the safe setting); the routing bench itself
    # also measures NORMAL. Quick: small world, few calls, no do-nothing baselines.
    if quick:
        result = routing_bench.run(quick=True, skip_normal=True, calls=300, floors=False)
    else:
        result = routing_bench.run(skip_normal=True)
    ip = result["in_process"]
    size = f"{ip['agents']:,} agents / {ip['waiting']:,} waiting"
    p99 = ip["route_p99_ms"]
    figures.add("routing", f"routing decision p99, in-process, {size}", p99, "ms", "<= 1 ms", p99 <= 1, 4)
    figures.add("routing", "naive linear scan p99 (baseline, same run)", ip["naive_route_p99_ms"], "ms")
    grpc_full = result.get("grpc_full", {})
    floors = result.get("grpc_floors", {})
    paths = (
        ("unary", "RouteConversation, unary (the service)", "sync_unary"),
        ("stream", "RouteStream, 1 route + 1 ack per message", "sync_stream"),
        # The same stream driven by a Node client (bench/grpc_load), whose CPU per message is a
        # third of a Python client's; skipped (no figure) on a machine without node.
        ("stream_node", "RouteStream, 1 route per message, Node load", "sync_stream_node"),
        ("batch_100", "RouteConversations, 100 routes per call", None),
    )
    for key, name, floor in paths:
        if "routes_per_second" not in grpc_full.get(key, {}):
            continue
        rate = grpc_full[key]["routes_per_second"]
        errors = grpc_full[key].get("errors")
        figures.add(
            "routing",
            f"routes/s over gRPC at size: {name}",
            rate,
            "routes/s",
            ">= 5,000/s",
            rate >= 5000,
            4,
            note=f"{errors} errors" if errors else "",
        )
        if floor in floors:
            figures.add(
                "routing",
                "  do-nothing gRPC server, same path (baseline)",
                floors[floor]["routes_per_second"],
                "routes/s",
            )
    return result


def publish(figures: Figures, quick: bool) -> dict:
    import publish_bench

    result = publish_bench.run(events_count=300 if quick else 5000, repeats=1 if quick else 5)
    p = result["publishing"]
    figures.add(
        "publish", "cctriage-publish CLI (validation, report)", p["cctriage_publish_cli_per_s"], "events/s"
    )
    figures.add(
        "publish", "bare kafka-python producer (baseline)", p["bare_kafka_python_producer_per_s"], "events/s"
    )
    return result


def memory(figures: Figures, watched: dict[str, float], raw: dict) -> dict:
    """Memory per process: the most any one process of each kind held while the benchmarks ran."""
    out = {}
    pipe = raw.get("pipeline") or {}
    worker = max(pipe.get("worker_peak_rss_mb") or 0, watched.get("worker", 0)) or None
    out["worker"] = worker
    figures.add(
        "memory",
        "triage worker peak RSS (pipeline run)",
        worker,
        "MB",
        "<= 500 MB",
        None if worker is None else worker <= 500,
        5,
    )
    grpc_full = (raw.get("routing") or {}).get("grpc_full", {})
    router = (
        max(
            [
                grpc_full.get("server_rss_mb_after") or 0,
                grpc_full.get("server_rss_mb_at_size") or 0,
                watched.get("router", 0),
            ]
        )
        or None
    )
    out["router"] = router
    figures.add(
        "memory",
        "routing server peak RSS (at size, after load)",
        router,
        "MB",
        "<= 1,000 MB",
        None if router is None else router <= 1000,
        4,
    )
    broker = watched.get("broker")
    out["broker"] = broker
    figures.add("memory", "embedded broker peak RSS (memory-only Tansu)", broker, "MB")
    return out


# -- the command --------------------------------------------------------------------------------


def table(figures: Figures) -> str:
    head = ("figure", "value", "target (issue)", "")
    lines = []
    rows = [
        (
            r["name"],
            _fmt(r["value"], r["unit"]),
            f"{r['target']} (#{r['issue']})" if r["target"] else "",
            {True: "holds", False: "FAILS", None: ""}[r["holds"]],
        )
        for r in figures.rows
    ]
    widths = [max(len(str(x[i])) for x in [head, *rows]) for i in range(4)]
    section = None
    for r, row in zip(figures.rows, rows, strict=True):
        if r["section"] != section:
            section = r["section"]
            lines.append(f"-- {section}")
        lines.append(
            f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}".rstrip()
        )
    return "\n".join([f"{head[0]:<{widths[0]}}  {head[1]:>{widths[1]}}  {head[2]:<{widths[2]}}", *lines])


def markdown(result: dict) -> str:
    """The figures of a result as a markdown table (for the README), with the machine they came from."""
    m = result["machine"]
    lines = [
        f"Measured {result['started_at'][:10]} on {describe(m)}; load average "
        f"{m['load_average'][0]} at the start, {m.get('load_average_at_end', ['?'])[0]} at the end.",
        "",
        "| figure | value | target (issue) | |",
        "|---|---|---|---|",
    ]
    for r in result["figures"]:
        target = f"{r['target']} (#{r['issue']})" if r["target"] else ""
        verdict = {True: "holds", False: "**fails**", None: ""}[r["holds"]]
        lines.append(f"| {r['name'].strip()} | {_fmt(r['value'], r['unit'])} | {target} | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small sizes and short runs: a smoke run")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument(
        "--only", nargs="+", choices=["model", "pipeline", "routing", "publish"], help="run only these"
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        metavar="RESULT_JSON",
        help="print a result's figures as markdown; run nothing",
    )
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())))
        return 0

    steps = {"model": model, "pipeline": pipeline, "routing": routing, "publish": publish}
    chosen = args.only or list(steps)
    here = machine()
    ticks = cpu_ticks()
    print(f"benchmarks on {describe(here)}; load average {here['load_average']}", flush=True)
    figures = Figures()
    raw: dict = {}
    failed: dict[str, str] = {}
    started = time.monotonic()
    began = datetime.now(UTC)
    with MemoryWatcher() as watcher:
        for name in chosen:
            print(f"\n== {name} ({'quick' if args.quick else 'full'}) ==", flush=True)
            t0 = time.monotonic()
            try:
                raw[name] = steps[name](figures, args.quick)
            except Exception as exc:  # noqa: BLE001 - the other benchmarks still run; reported below
                traceback.print_exc()
                failed[name] = f"{type(exc).__name__}: {exc}"
            print(f"== {name}: {time.monotonic() - t0:.0f} s", flush=True)
    memory_mb = memory(figures, watcher.peak_mb, raw)
    finished = machine()
    result = {
        "machine": {**here, "load_average_at_end": finished["load_average"],
                    "cpu_during_run": cpu_shares(ticks, cpu_ticks())},
        "started_at": began.isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 1),
        "quick": args.quick,
        "figures": figures.rows,
        "memory_per_process_mb": memory_mb,
        "failed": failed,
        "raw": raw,
    }
    print()
    print(table(figures))
    print(f"\nmachine: {describe(here)}; load average {here['load_average']} -> {finished['load_average']}; "
          f"CPU during the run {result['machine']['cpu_during_run']}")
    for name, why in failed.items():
        print(f"FAILED TO RUN: {name}: {why}")
    stamp = began.strftime("%Y%m%dT%H%MZ")
    kind = "bench-quick" if args.quick else "bench"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=1, default=str) + "\n"
    out = args.out_dir / f"{kind}-{stamp}.json"
    out.write_text(text)
    (args.out_dir / ("latest-quick.json" if args.quick else "latest.json")).write_text(text)
    print(f"wrote {out}")
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
