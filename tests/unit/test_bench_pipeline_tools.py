"""Pieces of the pipeline benchmarks: the probe's context-switch counter (bench/pipeline_probe.py;
the figures it prints per message are differences of these counts, so they must move with what
the threads did) and the search for the highest paced rate within the p99 target
(bench/pipeline_bench.py)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import pipeline_probe  # noqa: E402


def test_a_thread_that_sleeps_adds_voluntary_switches_to_its_process():
    before = pipeline_probe.switches({})["bench"]

    def nap() -> None:
        for _ in range(50):
            time.sleep(0.001)

    sleeper = threading.Thread(target=nap)
    sleeper.start()
    # Read while the thread still exists: a finished thread's counts leave /proc with it.
    time.sleep(0.03)
    during = pipeline_probe.switches({})["bench"]
    sleeper.join()
    assert during[0] - before[0] >= 10
    assert during[1] >= before[1]


def test_a_process_that_is_gone_is_left_out():
    assert "worker" not in pipeline_probe.switches({"worker": 2**22 + 12345})


def test_wake_cost_is_a_positive_cpu_figure():
    assert 0 < pipeline_probe.wake_cpu_us(0.001, 20) < 5000


# -- the latency-target capacity search (bench/pipeline_bench.py) -------------------------------

import pipeline_bench  # noqa: E402


def _row(p99_ms: float) -> dict:
    return {"p50_ms": p99_ms / 2, "p99_ms": p99_ms}


def test_capacity_search_bisects_between_the_last_fraction_that_held_and_the_first_that_missed():
    # A worker whose p99 crosses 100 ms at 160 messages/s (of a 400 maximum: 40%).
    offered = []

    def phase(rate: float) -> dict:
        offered.append(rate)
        return _row(50.0 if rate < 160 else 900.0)

    measured = {0.25: _row(40.0), 0.5: _row(968.0), 0.8: _row(6805.0)}
    found = pipeline_bench.capacity_at_target(measured, 400.0, 3, phase)
    assert offered == [150.0, 175.0, 162.5]  # 37.5%, 43.75%, 40.625% of 400
    assert found["messages_per_s"] == 150.0
    assert found["share_of_max"] == 0.375
    assert found["lowest_share_missed"] == 0.4062
    assert [p["share_of_max"] for p in found["phases"]] == [0.375, 0.4375, 0.4062]


def test_capacity_search_runs_nothing_when_every_fraction_met_the_target():
    def phase(rate: float) -> dict:
        raise AssertionError("no search phase when nothing missed")

    found = pipeline_bench.capacity_at_target({0.25: _row(30.0), 0.5: _row(80.0)}, 400.0, 3, phase)
    assert found["messages_per_s"] == 200.0
    assert found["lowest_share_missed"] is None
    assert found["phases"] == []


def test_capacity_search_starts_from_zero_when_even_the_lowest_fraction_missed():
    found = pipeline_bench.capacity_at_target({0.25: _row(150.0), 0.5: _row(900.0)}, 400.0, 2,
                                              lambda rate: _row(60.0 if rate <= 30 else 300.0))
    # 12.5% (50 msg/s) misses, 6.25% (25 msg/s) holds.
    assert found["messages_per_s"] == 25.0
    assert found["lowest_share_missed"] == 0.125


# -- CPU accounting per process (bench/pipeline_bench.py) -----------------------------------------


def test_cpu_of_a_thread_that_exits_within_the_window_is_still_counted():
    """A Kafka client's threads end when the phase closes it: the window's total must keep their
    work (the probe once reported the load generator at a third of its cost for this reason)."""
    before = pipeline_bench.cpu_snapshot({})

    def burn() -> None:
        end = time.thread_time() + 0.3
        while time.thread_time() < end:
            pass

    worker = threading.Thread(target=burn)
    worker.start()
    worker.join()
    used = pipeline_bench.cpu_used(before, pipeline_bench.cpu_snapshot({}))["bench"]
    assert used["total"] >= 0.25
    assert used[pipeline_bench.EXITED] >= 0.25


def test_cpu_used_splits_the_total_into_live_and_exited_threads():
    before = {"worker": {"python:1": 1.0, "onnx:2": 5.0, "gone:3": 2.0, pipeline_bench.EXITED: 0.5}}
    # gone:3 worked 0.4 s more and exited; new:4 started and worked 0.3 s and exited too.
    after = {"worker": {"python:1": 1.5, "onnx:2": 6.0, pipeline_bench.EXITED: 0.5 + 2.0 + 0.4 + 0.3}}
    used = pipeline_bench.cpu_used(before, after)["worker"]
    assert used["total"] == 2.2
    assert used["onnx:2"] == 1.0 and used["python:1"] == 0.5
    assert used[pipeline_bench.EXITED] == 0.7
