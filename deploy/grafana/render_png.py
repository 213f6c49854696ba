"""Draw the Grafana dashboards as PNG from a live run, for the README and docs (a docs step).

    .venv/bin/pip install -e ".[dev,docs]"     # matplotlib
    .venv/bin/python deploy/grafana/render_png.py --seconds 240 --out docs/img

Runs ``cctriage-demo`` (embedded broker, routing service, triage workers, simulated agents and
traffic), points a real Prometheus (Debian's ``prometheus``) at the metrics endpoints the demo
prints, lets it scrape for ``--seconds``, then evaluates every panel's PromQL over the run with
/api/v1/query_range and draws the panels where the dashboard JSON puts them. It draws with
matplotlib, not Grafana (Grafana is not installable here), so colours and fonts differ; the
queries, layout, units and titles are the dashboard's own. Every process is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from prometheus_support import Prometheus, running_prometheus  # noqa: E402

BG, PANEL, TEXT, GRID = "#111217", "#181b1f", "#ccccdc", "#2c3235"
PALETTE = ["#73bf69", "#f2cc0c", "#5794f2", "#ff9830", "#f2495c", "#b877d9", "#8ab8ff", "#ffcb7d", "#96d98d"]


def _promql(expr: str, rate_window: str) -> str:
    return re.sub(r"\$__(rate_interval|interval)", rate_window, expr).replace("$__range", "1h")


def _legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template).strip() or "value"


def _format(value: float, unit: str) -> str:
    if value is None or math.isnan(value):
        return "no data"
    if unit == "percentunit":
        return f"{value * 100:.1f}%"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"
    if unit == "bytes":
        return f"{value / 2**20:.0f} MiB"
    if unit in ("ops", "reqps"):
        return f"{value:.2f}/s"
    return f"{value:.3g}"


def start_demo(args: argparse.Namespace, log_path: Path) -> tuple[subprocess.Popen, dict[str, list[str]]]:
    """Start cctriage-demo; return it and the Prometheus jobs for the metrics URLs it prints."""
    command = [sys.executable, "-m", "cctriage_sim", "--plain", "--duration", str(args.seconds + 120),
               "--rate", str(args.rate), "--agents", str(args.agents), "--workers", str(args.workers),
               "--seed", str(args.seed)]
    log = open(log_path, "w")  # noqa: SIM115 - the child owns it
    demo = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT,
                            start_new_session=True)
    deadline = time.monotonic() + 180
    for line in demo.stdout:
        log.write(line)
        if "metrics:" in line:
            jobs: dict[str, list[str]] = {}
            for name, url in re.findall(r"(\S+) http://([\d.]+:\d+)/metrics", line):
                # Job names as in deploy/prometheus; the simulator is not part of the product.
                job = {"routing": "cctriage-routing", "simulator": "simulator"}.get(name, "cctriage-triage")
                jobs.setdefault(job, []).append(url)
            return demo, jobs
        if time.monotonic() > deadline:
            break
    stop(demo)
    raise RuntimeError(f"cctriage-demo printed no metrics line; see {log_path}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)  # the demo stops its children on Ctrl+C
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def draw(dashboard: dict, prom: Prometheus, start: float, end: float, out: Path, rate_window: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = dashboard["panels"]
    header = 2  # grid units above the first row for the title
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels) + header
    unit_px = 0.32  # inches per grid unit
    fig = plt.figure(figsize=(24 * unit_px * 1.9, rows * unit_px), facecolor=BG)
    fig.text(0.005, 1 - 1.2 / rows,
             f"{dashboard['title']}  ·  {round((end - start) / 60)} min of a cctriage-demo run, "
             "scraped by Prometheus, drawn from the dashboard JSON",
             color=TEXT, fontsize=15)
    step = max(2.0, (end - start) / 200)
    for panel in panels:
        grid = panel["gridPos"]
        left, width = grid["x"] / 24, grid["w"] / 24
        bottom, height = 1 - (header + grid["y"] + grid["h"]) / rows, grid["h"] / rows
        if panel["type"] == "row":
            fig.text(left + 0.003, bottom + height * 0.2, panel["title"], color=TEXT, fontsize=12,
                     weight="bold")
            continue
        pad = 0.6 / rows  # room for the panel title and the x axis labels
        ax = fig.add_axes((left + 0.035, bottom + pad, width - 0.04, height - 2 * pad), facecolor=PANEL)
        ax.set_title(panel["title"], color=TEXT, fontsize=9, loc="left")
        for spine in ax.spines.values():
            spine.set_color(GRID)
        ax.tick_params(colors=TEXT, labelsize=7)
        unit = panel["fieldConfig"]["defaults"].get("unit", "short")
        series = []
        for target in panel["targets"]:
            for result in prom.query_range(_promql(target["expr"], rate_window), start, end, step):
                points = [(float(t), float(v)) for t, v in result["values"]
                          if v not in ("NaN", "+Inf", "-Inf")]
                if points:
                    series.append((_legend(target.get("legendFormat", ""), result["metric"]), points))
        if panel["type"] == "timeseries":
            _timeseries(ax, series, panel, unit, start)
        else:
            _single_values(ax, series, panel, unit)
    fig.savefig(out, dpi=90, facecolor=BG)
    plt.close(fig)


def _timeseries(ax, series, panel: dict, unit: str, start: float) -> None:
    ax.grid(color=GRID, linewidth=0.5)
    if not series:
        ax.text(0.5, 0.5, "no data", color=TEXT, ha="center", va="center", transform=ax.transAxes)
        return
    stacked = panel["fieldConfig"]["defaults"].get("custom", {}).get("stacking", {}).get("mode") == "normal"
    base: dict[float, float] = {}
    for i, (name, points) in enumerate(sorted(series)[:9]):
        xs = [(t - start) / 60 for t, _ in points]
        ys = [v for _, v in points]
        color = PALETTE[i % len(PALETTE)]
        if stacked:
            lows = [base.get(t, 0.0) for t, _ in points]
            highs = [lo + v for lo, v in zip(lows, ys, strict=True)]
            ax.fill_between(xs, lows, highs, color=color, alpha=0.35, linewidth=0)
            ax.plot(xs, highs, color=color, linewidth=1, label=name)
            base.update({t: h for (t, _), h in zip(points, highs, strict=True)})
        else:
            ax.plot(xs, ys, color=color, linewidth=1.2, label=name)
    for step in panel["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]:
        ax.axhline(step["value"], color="#f2495c", linestyle="--", linewidth=0.8)
    ax.yaxis.set_major_formatter(lambda v, _pos: _format(v, unit))
    ax.set_xlabel("minutes", color=TEXT, fontsize=7)
    ax.legend(fontsize=6, loc="upper left", facecolor=PANEL, edgecolor=GRID, labelcolor=TEXT, ncol=2)


def _single_values(ax, series, panel: dict, unit: str) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    last = [(name, points[-1][1]) for name, points in series]
    if panel["type"] == "bargauge" and last:
        def bound(name: str) -> float:
            return float("inf") if name == "+Inf" else float(name)

        ordered = sorted(last, key=lambda item: bound(item[0]))
        # Cumulative buckets -> messages per stress band.
        bands, previous = [], 0.0
        for name, value in ordered:
            bands.append((f"≤ {name}", value - previous))
            previous = value
        ax.barh(range(len(bands)), [v for _, v in bands], color=PALETTE[0])
        ax.set_yticks(range(len(bands)), [n for n, _ in bands], color=TEXT, fontsize=6)
        ax.invert_yaxis()
        ax.tick_params(colors=TEXT, labelsize=6)
        return
    if not last:
        ax.text(0.5, 0.5, "no data", color=TEXT, ha="center", va="center", transform=ax.transAxes)
        return
    for i, (name, value) in enumerate(last[:4]):
        y = 1 - (i + 1) / (len(last[:4]) + 1)
        color = PALETTE[0]
        for step in panel["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]:
            if value >= step["value"]:
                color = {"orange": "#ff9830", "red": "#f2495c"}.get(step["color"], step["color"])
        ax.text(0.5, y + 0.06, _format(value, unit), color=color, ha="center", va="center", fontsize=16,
                transform=ax.transAxes, weight="bold")
        ax.text(0.5, y - 0.08, name, color=TEXT, ha="center", va="center", fontsize=7, transform=ax.transAxes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=240, help="how long Prometheus scrapes the demo")
    parser.add_argument("--rate", type=float, default=8.0)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rate-window", default="1m",
                        help="value of $__rate_interval (scrapes are 1 s apart)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--dashboard", action="append", help="file name in deploy/grafana/dashboards (all)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    names = args.dashboard or sorted(p.name for p in DASHBOARDS.glob("*.json"))
    with tempfile.TemporaryDirectory(prefix="cctriage-render-") as tmp:
        demo, jobs = start_demo(args, Path(tmp) / "demo.log")
        try:
            with running_prometheus(Path(tmp), jobs) as prom:
                start = time.time()
                print(f"scraping {jobs} for {args.seconds} s", flush=True)
                time.sleep(args.seconds)
                end = time.time()
                for name in names:
                    dashboard = json.loads((DASHBOARDS / name).read_text())
                    out = args.out / f"dashboard-{name.removeprefix('cctriage-').removesuffix('.json')}.png"
                    draw(dashboard, prom, start, end, out, args.rate_window)
                    print(f"wrote {out}", flush=True)
        finally:
            stop(demo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
