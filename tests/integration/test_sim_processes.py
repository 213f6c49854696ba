"""The demo's child processes: a stop takes the whole process group, a killed demo takes its children."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cctriage_sim.processes import ChildError, ChildProcess


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return members


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_stop_ends_the_child_and_everything_it_started(tmp_path):
    # A service that ignores SIGTERM and has a grandchild: the bound and the group kill still hold.
    script = "trap '' TERM; sleep 60 & sleep 60 & wait"
    child = ChildProcess("stubborn", ["sh", "-c", script], os.environ, tmp_path / "stubborn.log").start()
    assert wait_until(lambda: len(group_members(child.pid)) == 3)
    started = time.monotonic()
    child.stop(timeout_s=0.5)
    assert time.monotonic() - started < 5
    assert wait_until(lambda: group_members(child.pid) == [])


def test_a_child_outlives_nothing_when_the_demo_is_killed(tmp_path):
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys, time; from pathlib import Path; from cctriage_sim.processes import ChildProcess;"
            "c = ChildProcess('sleeper', ['sleep', '60'], os.environ, Path(sys.argv[1])).start();"
            "print(c.pid, flush=True); time.sleep(60)",
            str(tmp_path / "sleeper.log"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        pid = int(parent.stdout.readline())
        assert alive(pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(5)
        assert wait_until(lambda: not alive(pid)), "PR_SET_PDEATHSIG should have ended the child"
    finally:
        parent.kill()
        parent.wait(5)


def test_a_child_that_dies_before_it_is_ready_is_reported_with_its_log(tmp_path):
    child = ChildProcess(
        "broken",
        ["sh", "-c", "echo 'cannot load the model' >&2; exit 3"],
        os.environ,
        tmp_path / "broken.log",
    ).start()

    async def never_ready() -> bool:
        return False

    with pytest.raises(ChildError, match=r"broken exited with code 3(.|\n)*cannot load the model"):
        asyncio.run(child.wait_ready(never_ready, timeout_s=10))
    child.stop()


def test_a_child_that_never_gets_ready_times_out(tmp_path):
    child = ChildProcess("slow", ["sleep", "30"], os.environ, tmp_path / "slow.log").start()

    async def never_ready() -> bool:
        return False

    try:
        with pytest.raises(ChildError, match="slow was not ready after 1 s"):
            asyncio.run(child.wait_ready(never_ready, timeout_s=1))
    finally:
        child.stop(timeout_s=2)
    assert not alive(child.pid)
