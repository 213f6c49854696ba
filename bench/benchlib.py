"""Helpers shared by bench/run_all.py and bench/soak.py: the machine, process memory, percentiles.

Linux only (reads /proc), as are the benchmarks.
"""

from __future__ import annotations

import os
import platform
import threading
import time
from pathlib import Path

# How a process's command line says what it is (first match wins).
ROLES = (
    ("worker", ("cctriage_triage", "cctriage-triage")),
    ("router", ("cctriage_routing", "cctriage-routing")),
    ("broker", ("tansu", "noida")),
    ("agents", ("cctriage_sim agents",)),
)


def machine() -> dict:
    """CPU model, cores, RAM, Python and OS of this machine, and its load when asked."""
    cpu_model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        pass
    return {
        "cpu_model": cpu_model,
        "cores": os.cpu_count(),
        "ram_gb": ram_gb,
        "python": platform.python_version(),
        "os": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def cpu_ticks() -> list[int]:
    """The machine's CPU time so far, from /proc/stat's first line (user ... steal), in ticks."""
    try:
        return [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except OSError:
        return []


def cpu_shares(before: list[int], after: list[int]) -> dict[str, float]:
    """Busy, idle and steal shares of all CPU time between two ``cpu_ticks()``. Steal is time the
    hypervisor ran someone else while this VM had work: a run with much of it measured a smaller
    machine than it says (this one is a 2-vCPU VM on a shared host)."""
    if len(before) < 8 or len(after) < 8:
        return {}
    delta = [a - b for a, b in zip(after, before, strict=True)]
    user, nice, system, idle, iowait, irq, softirq, steal = delta
    total = max(1, user + nice + system + idle + iowait + irq + softirq + steal)
    return {
        "busy": round((user + nice + system + irq + softirq) / total, 3),
        "idle": round((idle + iowait) / total, 3),
        "steal": round(steal / total, 3),
    }


def describe(m: dict) -> str:
    return f"{m['cpu_model']}, {m['cores']} cores, {m['ram_gb']} GB RAM, Python {m['python']}, {m['os']}"


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def status_mb(pid: int | str, field: str = "VmRSS") -> float | None:
    """A /proc/<pid>/status memory field (VmRSS, VmHWM) in MB; None when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def cpu_seconds(pid: int | str) -> float | None:
    """User + system CPU seconds the process has used; None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        out.setdefault(ppid, []).append(int(entry.name))
    return out


def descendants(root: int | None = None) -> list[int]:
    """Every process below ``root`` (default: this one), however deep."""
    tree = _children()
    stack, found = [root or os.getpid()], []
    while stack:
        for child in tree.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def role_of(pid: int) -> str | None:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    for role, needles in ROLES:
        if any(n in cmdline for n in needles):
            return role
    return None


class MemoryWatcher:
    """Samples the RSS of every descendant process by role (worker, router, broker) in a thread.

    ``peak_mb`` keeps the highest RSS seen per role for any single process of that role: what
    one process of that kind needed during the run, not the sum over several workers.
    """

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.peak_mb: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-watcher", daemon=True)

    def sample(self) -> None:
        for pid in descendants():
            role = role_of(pid)
            rss = status_mb(pid) if role else None
            if role and rss is not None:
                self.peak_mb[role] = round(max(self.peak_mb.get(role, 0.0), rss), 1)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> MemoryWatcher:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def wait_until(condition, timeout_s: float, interval_s: float = 0.2, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)
