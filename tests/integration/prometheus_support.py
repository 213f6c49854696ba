"""A real Prometheus (Debian's `prometheus` binary) for tests and the dashboard render step.

    with running_prometheus(tmp_path, {"cctriage-routing": ["127.0.0.1:9461"]}) as prom:
        prom.wait_for('up{job="cctriage-routing"} == 1')
        prom.query('sum(grpc_server_handled_total)')

Scrapes and evaluates the project's alert rules every second, listens on a free loopback
port, keeps its TSDB in a temporary folder, and is stopped (SIGTERM, then SIGKILL) on exit.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "deploy" / "prometheus" / "rules"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Prometheus:
    def __init__(self, url: str, process: subprocess.Popen, log_path: Path) -> None:
        self.url = url
        self.process = process
        self.log_path = log_path

    def _get(self, path: str, **params: str) -> dict:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=5) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> list[dict]:
        """Instant query through /api/v1/query: the result vector."""
        data = self._get("/api/v1/query", query=promql)
        assert data["resultType"] == "vector", data
        return data["result"]

    def value(self, promql: str) -> float | None:
        """The single value of an instant query, or None if it returned nothing."""
        result = self.query(promql)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[dict]:
        data = self._get("/api/v1/query_range", query=promql, start=str(start), end=str(end), step=str(step))
        return data["result"]

    def rules(self) -> list[dict]:
        return [rule for group in self._get("/api/v1/rules")["groups"] for rule in group["rules"]]

    def targets(self) -> list[dict]:
        return self._get("/api/v1/targets")["activeTargets"]

    def wait_for(self, promql: str, timeout_s: float = 30.0) -> list[dict]:
        """Poll an instant query until it returns a non-empty vector."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = self.query(promql)
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"Prometheus: no result for {promql!r} after {timeout_s}s\n"
                                     f"targets: {self.targets()}\n{self.tail()}")
            time.sleep(0.5)

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def config(jobs: dict[str, list[str]], rules_dir: Path) -> dict:
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules_dir / "*.yml")],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": targets}]} for job, targets in jobs.items()
        ],
    }


@contextlib.contextmanager
def running_prometheus(
    tmp_path: Path, jobs: dict[str, list[str]], timeout_s: float = 30.0
) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("prometheus is not installed: apt-get install prometheus (.ci/run does it)")
    work = Path(tmp_path) / "prometheus"
    work.mkdir(parents=True, exist_ok=True)
    config_path = work / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config(jobs, RULES_DIR)))
    port = free_port()
    log_path = work / "prometheus.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [binary, f"--config.file={config_path}", f"--storage.tsdb.path={work / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
             "--storage.tsdb.retention.time=1h"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    prom = Prometheus(f"http://127.0.0.1:{port}", process, log_path)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {process.returncode}:\n{prom.tail()}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                with urllib.request.urlopen(f"{prom.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        break
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus not ready after {timeout_s}s:\n{prom.tail()}")
            time.sleep(0.2)
        yield prom
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
