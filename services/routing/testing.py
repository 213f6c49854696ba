"""Start a real routing server for tests (used by other services' tests too).

    from cctriage_routing.testing import running_server

    with running_server(tmp_path) as address:          # "127.0.0.1:<port>", SERVING
        channel = grpc.insecure_channel(address)
        stub = routing_pb2_grpc.TriageRoutingStub(channel)

    with running_server(tmp_path, subprocess=True, ROUTING_AUTH_ENABLED="1",
                        ROUTING_AUTH_TOKENS="s3cret=triage") as address: ...

In-process by default (fast); ``subprocess=True`` runs ``python -m cctriage_routing`` with
the settings as environment variables (for kill -9 tests) and yields the address the same
way. Auth is off unless the settings turn it on. Keyword settings use the environment
variable names of RoutingSettings (see services/routing/README.md).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess as sp
import sys
from collections.abc import Iterator
from pathlib import Path

from cctriage_common.settings import load
from cctriage_routing.server import RoutingServer, wait_ready
from cctriage_routing.settings import RoutingSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_environment(tmp_path: Path, **env: str) -> dict[str, str]:
    """Environment for a test server: journal under tmp_path, any port, auth off, no Kafka."""
    base = {
        "ROUTING_JOURNAL_PATH": str(Path(tmp_path) / "routing-journal.sqlite3"),
        "ROUTING_LISTEN": "127.0.0.1:0",
        "ROUTING_METRICS_PORT": "0",
        "ROUTING_AUTH_ENABLED": "0",
        "ROUTING_GRACE_SECONDS": "2",
        "ROUTING_THREADS": "32",
        "KAFKA_BOOTSTRAP_SERVERS": "",
    }
    base.update({k: str(v) for k, v in env.items()})
    return base


@contextlib.contextmanager
def running_server(tmp_path: Path, subprocess: bool = False, **env: str) -> Iterator[str]:
    """A SERVING routing server; yields "127.0.0.1:<port>". Stopped (gracefully) on exit."""
    environ = server_environment(tmp_path, **env)
    if subprocess:
        with server_process(environ) as (address, _proc):
            yield address
        return
    server = RoutingServer(load(RoutingSettings, environ))
    server.start()
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        server.stop(grace=1.0)


@contextlib.contextmanager
def in_process_server(tmp_path: Path, **env: str) -> Iterator[RoutingServer]:
    """Like running_server but yields the RoutingServer itself (port, metrics_port, engine)."""
    server = RoutingServer(load(RoutingSettings, server_environment(tmp_path, **env)))
    server.start()
    try:
        yield server
    finally:
        server.stop(grace=1.0)


def start_process(environ: dict[str, str], port: int | None = None) -> tuple[str, sp.Popen]:
    """Start ``python -m cctriage_routing`` with ``environ``; returns (address, process) once SERVING."""
    port = port or free_port()
    env = {**os.environ, **environ, "ROUTING_LISTEN": f"127.0.0.1:{port}"}
    log_path = Path(environ["ROUTING_JOURNAL_PATH"]).with_suffix(".log")
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child
    proc = sp.Popen([sys.executable, "-m", "cctriage_routing"], env=env, stdout=log, stderr=sp.STDOUT)
    log.close()
    address = f"127.0.0.1:{port}"
    try:
        wait_ready(address, timeout=60)
    except TimeoutError:
        proc.kill()
        proc.wait(10)
        raise RuntimeError(f"routing server did not start; log:\n{log_path.read_text()[-3000:]}") from None
    return address, proc


@contextlib.contextmanager
def server_process(environ: dict[str, str], port: int | None = None) -> Iterator[tuple[str, sp.Popen]]:
    address, proc = start_process(environ, port)
    try:
        yield address, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except sp.TimeoutExpired:
                proc.kill()
                proc.wait(10)


__all__ = [
    "running_server",
    "in_process_server",
    "server_process",
    "start_process",
    "free_port",
    "RoutingSettings",
]
