"""The soak's verdict (bench/soak.py ``judge``): trends count, not only the first and last minute."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import soak  # noqa: E402

ARGS = argparse.Namespace(max_slope=1.0, p99_factor=2.0, max_p99_rise=0.5, max_backlog_rise_s=2.0)
RATE = 30.0


def result(p99_at, backlog_at, seconds: float = 600.0) -> dict:
    """A soak's result with samples every 5 s; p99 (ms) and backlog (messages) as functions of t."""
    samples, latencies = [], []
    for i in range(1, int(seconds / 5) + 1):
        t = 5.0 * i
        p99 = p99_at(t)
        samples.append({"t": t, "rss_mb": {"worker": 220.0, "broker": 100 + t / 10},
                        "conversations_started": int(t), "backlog_messages": int(backlog_at(t)),
                        "latency": {"count": 10, "p50_ms": p99 / 3, "p99_ms": p99}})
        latencies += [{"t": t, "ms": p99 / 3}] * 9 + [{"t": t, "ms": p99}]
    totals = {"seconds": seconds, "rate_messages_per_s": RATE, "angry_published": 5, "angry_routed": 5}
    return {"soak": totals,
            "processes": ["worker", "broker"], "samples": samples, "latencies": latencies, "errors": {}}


def test_a_flat_run_is_stable():
    verdict = soak.judge(result(lambda t: 80 + 10 * ((t // 5) % 3), lambda t: 5 + (t // 5) % 4), ARGS)
    assert verdict["stable"], verdict["checks"]


def test_a_p99_climbing_within_the_end_factor_is_not_stable():
    # ~2.5 s -> ~3.8 s: the last minute is within 2x the first, but the climb is steady all the way.
    verdict = soak.judge(result(lambda t: 2000 + 3 * t, lambda t: 5), ARGS)
    ends = [k for k in verdict["checks"] if k.startswith("last-window p99")]
    trend = [k for k in verdict["checks"] if k.startswith("p99 trend")]
    assert verdict["checks"][ends[0]] and not verdict["checks"][trend[0]]
    assert not verdict["stable"]


def test_a_backlog_climbing_under_the_level_limit_is_not_stable():
    # Ends at 140 messages, under 5 s of traffic (150), but grew all the last two thirds.
    verdict = soak.judge(result(lambda t: 80, lambda t: max(0.0, (t - 200) * 0.35)), ARGS)
    keeps_up = [k for k in verdict["checks"] if k.startswith("keeps up")]
    trend = [k for k in verdict["checks"] if k.startswith("backlog trend")]
    assert verdict["checks"][keeps_up[0]] and not verdict["checks"][trend[0]]
    assert not verdict["stable"]


@pytest.mark.parametrize(
    "points, slope", [([(0, 1.0), (60, 2.0), (120, 3.0)], 1.0), ([(0, 5.0), (30, 5.0)], None)]
)
def test_slope_per_minute(points, slope):
    assert soak.slope_per_min(points) == (pytest.approx(slope) if slope is not None else None)


def test_soak_topics_cut_retention_and_zero_keeps_the_declared_days():
    # Every declared topic is delete-policy (faust's compacted changelog is not declared here).
    settings = soak.TopicSettings(prefix="s.", partitions=4)
    declared = {name: configs for name, _, configs in soak.soak_topics("s.", settings, 0)}
    cut = {name: configs for name, _, configs in soak.soak_topics("s.", settings, 120)}
    assert cut.keys() == declared.keys() and "s.support-events" in cut
    for name, configs in cut.items():
        assert configs["retention.ms"] == "120000", name
        assert int(declared[name]["retention.ms"]) >= 24 * 3600 * 1000, name
