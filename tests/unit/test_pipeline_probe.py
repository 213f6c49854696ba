"""The pipeline probe's context-switch counter (bench/pipeline_probe.py): the figures it prints
per message are differences of these counts, so they must move with what the threads did."""

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
