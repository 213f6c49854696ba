"""The one benchmark command runs end to end: ``bench/run_all.py --quick`` as a user runs it.

A smoke run of every benchmark with small sizes (real model, real embedded broker, real triage
worker, real routing server over gRPC), then checks that the table and the JSON carry every
figure the issues ask for, measured (a value, not "not measured"), with its target and
verdict where it has one. Speed is not asserted: that is what the full run reports.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUN_ALL = REPO / "bench" / "run_all.py"
# A bound so a hung benchmark fails the test instead of the CI job; not a speed assertion.
BOUND_S = 900

# (section, words every such row's name contains, issue target it is judged against or None)
EXPECTED = [
    ("model", "model only: batch 32, 2 threads", 3),
    ("model", "model p99 at batch 1", 3),
    ("model", "model peak RSS", 3),
    ("model", "VADER", None),
    ("pipeline", "model ceiling, same run", None),
    ("pipeline", "pipeline end to end", None),
    ("pipeline", "pipeline / model ceiling ratio", 5),
    ("pipeline", "event -> route at", None),
    ("routing", "routing decision p99, in-process", 4),
    ("routing", "routes/s over gRPC at size", 4),
    ("publish", "cctriage-publish CLI", None),
    ("memory", "triage worker peak RSS", 5),
    ("memory", "routing server peak RSS", 4),
    ("memory", "embedded broker peak RSS", None),
]


@pytest.mark.slow
def test_quick_benchmark_reports_every_figure(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(RUN_ALL), "--quick", "--out-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=BOUND_S,
        cwd=REPO,
    )
    assert proc.returncode == 0, (
        f"run_all --quick exited {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )

    latest = json.loads((tmp_path / "latest-quick.json").read_text())
    stamped = list(tmp_path.glob("bench-quick-*.json"))
    assert len(stamped) == 1 and json.loads(stamped[0].read_text()) == latest
    assert latest["failed"] == {}
    assert latest["quick"] is True

    machine = latest["machine"]
    for field in ("cpu_model", "cores", "ram_gb", "python", "os"):
        assert machine[field], f"machine.{field} missing"
    assert machine["cpu_model"] in proc.stdout

    rows = latest["figures"]
    for section, words, issue in EXPECTED:
        matching = [r for r in rows if r["section"] == section and words in r["name"]]
        assert matching, f"no {section} figure '{words}' in {[r['name'] for r in rows]}"
        for row in matching:
            assert isinstance(row["value"], float | int), f"{row['name']} was not measured"
            if issue is not None:
                assert row["issue"] == issue and row["target"], f"{row['name']} has no target"
                assert row["holds"] in (True, False)
            # The printed table carries the row, its target and its verdict.
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(row["name"])), None)
            assert line is not None, f"{row['name']} not in the printed table"
            if row["target"]:
                assert row["target"] in line and ("holds" in line or "FAILS" in line)

    # Latency percentiles at each offered rate, and the p99 at half the maximum judged.
    p99s = [r for r in rows if r["section"] == "pipeline" and r["name"].endswith(" p99")]
    p50s = [r for r in rows if r["section"] == "pipeline" and r["name"].endswith(" p50")]
    assert p99s and len(p50s) == len(p99s)
    assert any(r["issue"] == 5 for r in p99s), "no p99 judged against the half-maximum target"
    assert set(latest["memory_per_process_mb"]) == {"worker", "router", "broker"}
    assert all(v for v in latest["memory_per_process_mb"].values())
