"""Child processes of the demo: started in their own process group, stopped with bounds.

Every child runs in a new session (its own process group), so a stop signal reaches the child
and anything it started, and a Ctrl+C in the terminal reaches only the demo, which then stops
its children in order. On Linux each child also gets PR_SET_PDEATHSIG: if the demo itself is
killed with SIGKILL, the kernel sends the child SIGTERM, so nothing is left running.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
# Loaded once here: calling dlopen between fork and exec in a threaded process can deadlock.
try:
    _LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
except OSError:
    _LIBC = None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


class ChildError(RuntimeError):
    """A child process exited or did not become ready; the message says which and where its log is."""


class ChildProcess:
    def __init__(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path | None = None
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.cwd = cwd
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> ChildProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if _LIBC is not None else None,
        )
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - 64_000))
                last = collections.deque(handle.read().decode("utf-8", "replace").splitlines(), maxlen=lines)
        except OSError:
            return ""
        return "\n".join(last)

    async def wait_ready(self, check: Callable[[], Awaitable[bool]], timeout_s: float) -> float:
        """Poll ``check`` until it is true; seconds it took. ChildError if the child dies or time runs out."""
        started = time.monotonic()
        while True:
            if not self.running():
                code = self.process.returncode if self.process else None
                raise ChildError(
                    f"{self.name} exited with code {code} before it was ready; "
                    f"log {self.log_path}:\n{self.tail()}"
                )
            try:
                if await check():
                    return time.monotonic() - started
            except Exception:  # noqa: BLE001 - not ready yet (connection refused, 503, ...)
                pass
            if time.monotonic() - started > timeout_s:
                raise ChildError(
                    f"{self.name} was not ready after {timeout_s:.0f} s; log {self.log_path}:\n{self.tail()}"
                )
            await asyncio.sleep(0.2)

    def signal_group(self, signum: int) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM to the process group, wait up to ``timeout_s``, then SIGKILL the group."""
        process = self.process
        code = None
        if process is not None:
            if process.poll() is None:
                self.signal_group(signal.SIGTERM)
                try:
                    code = process.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    log.warning("%s ignored SIGTERM for %.0f s; killing it", self.name, timeout_s)
                    code = None
            else:
                code = process.returncode
            # Whatever the child left in its group goes too.
            self.signal_group(signal.SIGKILL)
            if code is None:
                code = process.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code
