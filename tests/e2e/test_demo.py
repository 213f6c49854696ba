"""The README's run command as a user runs it: stressed customers reach seniors, Ctrl+C cleans up.

Runs ``cctriage-demo`` as a subprocess (embedded broker, routing service, a triage worker with
the real model, simulated agents and traffic), waits for the first stressed conversation that a
tier-1 agent accepts, lets it run a little longer, then presses Ctrl+C (SIGINT to the demo's
process group, as a terminal does) and checks that every process the demo started is gone.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

DEMO = Path(sys.executable).with_name("cctriage-demo")
STARTUP_BOUND_S = 150  # broker + routing + triage worker (model load, partition assignment)
SENIOR_BOUND_S = 60  # the promise: stressed conversations reach seniors within a minute
AFTER_FIRST_S = 15
SENIOR_ROUTE = re.compile(r"ROUTED\s+\S+ -> (agent-\d+) \(tier 1\): .*\(flag -> agent ([\d.]+) s\)")


def _processes() -> dict[int, tuple[int, int]]:
    """{pid: (ppid, pgid)} of every live process, from /proc."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            continue
        out[int(entry)] = (int(fields[1]), int(fields[2]))
    return out


def _descendants(root: int) -> dict[int, int]:
    """{pid: pgid} of every process below ``root``."""
    table = _processes()
    found: dict[int, int] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, pgid) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = pgid
                frontier.append(pid)
    return found


class Output:
    """The demo's stdout, line by line, with the time each line arrived."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[tuple[float, str] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream) -> None:
        for line in stream:
            self._queue.put((time.monotonic(), line.rstrip("\n")))
        self._queue.put(None)

    def wait_for(self, pattern: re.Pattern | str, timeout: float) -> tuple[float, re.Match] | None:
        pattern = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                item = self._queue.get(timeout=max(0.0, min(1.0, deadline - time.monotonic())))
            except queue.Empty:
                continue
            if item is None:
                return None
            at, line = item
            self.lines.append(line)
            match = pattern.search(line)
            if match:
                return at, match
        return None

    def drain(self, timeout: float) -> None:
        self.wait_for(re.compile(r"(?!)"), timeout)

    def text(self) -> str:
        return "\n".join(self.lines[-80:])


@pytest.mark.slow
def test_demo_routes_stressed_customers_to_seniors_and_ctrl_c_leaves_nothing(tmp_path):
    summary_path = tmp_path / "summary.json"
    run = uuid.uuid4().hex[:8]
    env = dict(
        os.environ,
        CCTRIAGE_DEMO_DIR=str(tmp_path / "demo"),
        # Private names in case KAFKA_BOOTSTRAP_SERVERS points at a shared Kafka.
        CCTRIAGE_TOPIC_PREFIX=f"e2e-{run}.",
        TRIAGE_APP_ID=f"cctriage-triage-e2e-{run}",
        CCTRIAGE_TOPIC_PARTITIONS="4",
    )
    demo = subprocess.Popen(
        [
            str(DEMO),
            "--plain",
            "--duration",
            "300",
            "--rate",
            "8",
            "--agents",
            "12",
            "--workers",
            "1",
            "--seed",
            "3",
            "--summary",
            str(summary_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    out = Output(demo.stdout)
    children: dict[int, int] = {}
    try:
        started = out.wait_for(r"^starting traffic", STARTUP_BOUND_S)
        assert started, f"the demo did not start its traffic within {STARTUP_BOUND_S} s:\n{out.text()}"
        children = _descendants(demo.pid)
        # Routing and a triage worker, plus the broker unless KAFKA_BOOTSTRAP_SERVERS names one.
        assert len(children) >= 2, f"expected the services below the demo: {children}"
        urls = re.findall(r"http://127\.0\.0\.1:\d+/metrics", "\n".join(out.lines))
        assert len(urls) >= 3, out.text()

        first = out.wait_for(SENIOR_ROUTE, SENIOR_BOUND_S)
        assert first, (
            f"no stressed conversation was accepted by a tier-1 agent within {SENIOR_BOUND_S} s "
            f"of traffic:\n{out.text()}"
        )
        assert first[0] - started[0] <= SENIOR_BOUND_S

        # Every service's /metrics answers with its own series while it runs.
        scraped = {}
        for url in urls:
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.status == 200, url
                scraped[url] = response.read().decode()
        everything = "\n".join(scraped.values())
        assert "routing_ready 1.0" in everything
        assert "cctriage_triage_events_total" in everything
        assert "cctriage_sim_events_published_total" in everything
        out.drain(AFTER_FIRST_S)
        children.update(_descendants(demo.pid))

        os.killpg(demo.pid, signal.SIGINT)  # Ctrl+C in the terminal
        code = demo.wait(timeout=60)
        out.drain(2)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait(10)
        for pgid in set(children.values()):
            try:
                os.killpg(pgid, signal.SIGKILL)  # leave nothing behind even when the test fails
            except (ProcessLookupError, PermissionError):
                pass

    assert code == 0, out.text()
    assert "stopped in" in out.text()
    time.sleep(0.5)
    alive = _processes()
    left = {pid for pid in children if pid in alive}
    left_in_groups = {pid for pid, (_, pgid) in alive.items() if pgid in set(children.values())}
    assert not left and not left_in_groups, f"processes left behind: {left | left_in_groups}"

    summary = json.loads(summary_path.read_text())
    assert summary["events_published"] > 100 and summary["events_failed"] == 0
    assert summary["flag_to_senior_s"]["count"] >= 1
    assert summary["flag_to_senior_s"]["max"] <= SENIOR_BOUND_S
    senior_routes = [float(m.group(2)) for m in map(SENIOR_ROUTE.search, out.lines) if m]
    assert senior_routes and max(senior_routes) <= SENIOR_BOUND_S
