"""cctriage-demo: the whole pipeline on this machine, shown live.

    cctriage-demo                                   # until Ctrl+C
    cctriage-demo --rate 10 --agents 20 --workers 2 --seed 7
    cctriage-demo --duration 90 --plain --summary out.json   # non-interactive (tests, CI)

It starts the embedded Kafka-protocol broker (or uses KAFKA_BOOTSTRAP_SERVERS), creates the
topics, starts the routing service and the triage workers as child processes and waits until
each reports ready, logs a simulated agent pool in over gRPC, and starts customer traffic. Then
it shows which conversations are stressed and why, who was routed to whom and why, the queue
by priority and the agents' occupancy by tier. Ctrl+C (SIGINT) or SIGTERM stops everything in
reverse order, each step bounded; no process is left behind.

The pieces also run alone (docker compose's demo profile uses these)::

    python -m cctriage_sim traffic --rate 10        # publish to KAFKA_BOOTSTRAP_SERVERS
    python -m cctriage_sim agents --routing host:50051 --agents 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import random
import secrets
import signal
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from cctriage.routing.v1 import routing_pb2, routing_pb2_grpc
from cctriage.triage.v1 import triage_pb2
from cctriage_common import topics
from cctriage_common.broker import BrokerError, BrokerSettings, EmbeddedBroker, free_port
from cctriage_common.settings import SettingsError, env_field, load
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc

from . import metrics
from .agents import AgentPool, PoolEvent, build_roster
from .processes import ChildError, ChildProcess
from .traffic import TrafficGenerator
from .view import LiveState, PlainView

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    tenant_id: str = env_field(
        "CCTRIAGE_DEMO_TENANT", "acme-telecom", "Tenant of the simulated contact centre."
    )
    work_dir: str = env_field(
        "CCTRIAGE_DEMO_DIR", "", "Where child logs and state go; empty = a new temporary directory (kept)."
    )
    start_timeout_s: float = env_field(
        "CCTRIAGE_DEMO_START_TIMEOUT_S", 180.0, "Longest wait for one service to report ready, in seconds."
    )
    stop_timeout_s: float = env_field(
        "CCTRIAGE_DEMO_STOP_TIMEOUT_S",
        20.0,
        "Longest wait for a service to exit after SIGTERM before it is killed, in seconds.",
    )
    routing_port: int = env_field(
        "CCTRIAGE_DEMO_ROUTING_PORT", 0, "gRPC port of the routing service; 0 = free."
    )
    metrics_port: int = env_field(
        "CCTRIAGE_DEMO_METRICS_PORT", 0, "Port of the simulator's own /metrics; 0 = a free port."
    )
    pace: float = env_field(
        "CCTRIAGE_DEMO_PACE",
        1.0,
        "Scales every simulated duration (turn gaps, handling, wrap-up); 2 = slower.",
    )

    def validate(self) -> None:
        if self.pace <= 0:
            raise SettingsError(f"CCTRIAGE_DEMO_PACE={self.pace} must be positive")
        if self.start_timeout_s <= 0 or self.stop_timeout_s <= 0:
            raise SettingsError(
                "CCTRIAGE_DEMO_START_TIMEOUT_S and CCTRIAGE_DEMO_STOP_TIMEOUT_S must be positive"
            )


@dataclasses.dataclass(frozen=True)
class Tokens:
    """Bearer tokens for one run: the triage workers, the demo's supervisor view, each agent."""

    triage: str
    supervisor: str
    agents: dict[str, str]

    @classmethod
    def fresh(cls, agent_ids: list[str]) -> Tokens:
        return cls(
            secrets.token_urlsafe(18),
            secrets.token_urlsafe(18),
            {agent_id: secrets.token_urlsafe(18) for agent_id in agent_ids},
        )

    def routing_setting(self) -> str:
        """The ROUTING_AUTH_TOKENS value: token=principal,..."""
        pairs = [f"{self.triage}=triage", f"{self.supervisor}=supervisor"]
        pairs += [f"{token}=agent:{agent_id}" for agent_id, token in self.agents.items()]
        return ",".join(pairs)

    def agent_metadata(self, agent_id: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.agents[agent_id]}"),)

    def supervisor_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.supervisor}"),)


# -- traffic ----------------------------------------------------------------------------------


class TrafficPublisher:
    """Publishes the generator's events in real time and lets routed agents join conversations."""

    def __init__(self, generator: TrafficGenerator, publisher: Any, state: LiveState | None = None) -> None:
        self.generator = generator
        self.publisher = publisher
        self.state = state
        self._t0: float | None = None
        self.opened_at: dict[str, float] = {}  # conversation id -> simulation seconds

    def now(self) -> float:
        return time.monotonic() - self._t0 if self._t0 is not None else 0.0

    def on_accepted(self, conversation_id: str, agent_id: str) -> None:
        """An agent accepted a conversation: it joins and writes in the customer's conversation."""
        if self._t0 is not None:
            self.generator.agent_joined(conversation_id, agent_id, self.now())

    async def run(self, stop: asyncio.Event) -> None:
        self._t0 = time.monotonic()
        self.generator.start = dt.datetime.now(dt.UTC)
        pending: list[tuple[int, Any]] = []
        while not stop.is_set():
            for _, event in self.generator.pop_due(self.now()):
                if event.WhichOneof("payload") == "conversation_opened":
                    plan = self.generator.plans[event.conversation_id]
                    self.opened_at[event.conversation_id] = self.now()
                    metrics.CONVERSATIONS_STARTED.labels(plan.persona).inc()
                    if self.state is not None:
                        self.state.conversations_started += 1
                        self.state.stressed_started += plan.stressed
                pending.append((event.channel, self.publisher.send(event)))
            pending = self._settle(pending)
            wait = min(max(self.generator.next_due() - self.now(), 0.0), 0.25)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)
        await asyncio.to_thread(self.publisher.flush, 10)
        self._settle(pending, final=True)

    def flagged_by_persona(self, flagged: set[str], settle_s: float = 60.0) -> dict[str, dict[str, int]]:
        """{persona: {started, flagged}} over conversations opened at least ``settle_s`` ago.

        Younger conversations may not have reached the turn that would flag them yet.
        """
        out: dict[str, dict[str, int]] = {}
        for conversation_id, opened in self.opened_at.items():
            if opened > self.now() - settle_s:
                continue
            row = out.setdefault(self.generator.plans[conversation_id].persona, {"started": 0, "flagged": 0})
            row["started"] += 1
            row["flagged"] += conversation_id in flagged
        return dict(sorted(out.items()))

    def _settle(self, pending: list[tuple[int, Any]], final: bool = False) -> list[tuple[int, Any]]:
        from .view import channel_name

        left = []
        for channel, item in pending:
            if not final and not item.done():
                left.append((channel, item))
                continue
            result = item.result(timeout=0)
            outcome = result.status if result.status in ("published", "invalid") else "failed"
            metrics.EVENTS_PUBLISHED.labels(channel_name(channel), outcome).inc()
            if self.state is not None:
                if outcome == "published":
                    self.state.events_published += 1
                else:
                    self.state.events_failed += 1
                    self.state.note(f"PUBLISH   {result.event_id} {outcome}: {result.reason}")
        return left


# -- watching the pipeline ------------------------------------------------------------------


async def watch_topics(
    bootstrap: str,
    handlers: dict[str, Callable[[bytes], None]],
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
) -> None:
    """Read topics from the start without a consumer group (a viewer commits nothing)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        *handlers,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        client_id="cctriage-demo-view",
    )
    await consumer.start()
    if ready is not None:
        ready.set()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=300)
            for partition, records in batches.items():
                handle = handlers[partition.topic]
                for record in records:
                    try:
                        handle(record.value)
                    except DecodeError:
                        log.warning(
                            "undecodable record", extra={"topic": partition.topic, "offset": record.offset}
                        )
    finally:
        await consumer.stop()


async def poll_snapshots(
    target: str,
    tenant_id: str,
    state: LiveState,
    stop: asyncio.Event,
    every_s: float = 1.5,
    metadata: tuple[tuple[str, str], ...] = (),
) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        supervisor = routing_pb2_grpc.SupervisorStub(channel)
        while not stop.is_set():
            try:
                state.queue = await supervisor.GetQueueSnapshot(
                    routing_pb2.QueueSnapshotRequest(tenant_id=tenant_id, limit=200),
                    timeout=2,
                    metadata=metadata,
                )
                state.agents = await supervisor.GetAgentSnapshot(
                    routing_pb2.AgentSnapshotRequest(tenant_id=tenant_id), timeout=2, metadata=metadata
                )
            except grpc.aio.AioRpcError as exc:
                log.debug("snapshot failed: %s", exc.code().name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every_s)


async def grpc_serving(target: str) -> bool:
    async with grpc.aio.insecure_channel(target) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        return response.status == health_pb2.HealthCheckResponse.SERVING


async def http_ok(url: str) -> bool:
    def get() -> bool:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our own 127.0.0.1 URL
            return response.status == 200

    return await asyncio.to_thread(get)


# -- the orchestrator ------------------------------------------------------------------------


class Demo:
    def __init__(self, args: argparse.Namespace, settings: DemoSettings, out=None) -> None:
        self.args = args
        self.settings = settings
        self.out = out or sys.stdout
        self.stop = asyncio.Event()
        self.state = LiveState()
        self.children: list[ChildProcess] = []
        self.broker: EmbeddedBroker | None = None
        self.tasks: list[asyncio.Task] = []
        self.urls: list[str] = []
        self.view: Any = None
        self.traffic: TrafficPublisher | None = None
        self.publisher: Any = None
        self.exit_code = 0

    def say(self, text: str, end: str = "\n") -> None:
        print(text, end=end, file=self.out, flush=True)

    async def step(self, label: str, action: Callable[[], Awaitable[Any]]) -> Any:
        """Print progress, run ``action`` unless stopping; None if Ctrl+C came first."""
        if self.stop.is_set():
            return None
        self.say(f"{label}... ", end="")
        started = time.monotonic()
        task = asyncio.ensure_future(action())
        stopper = asyncio.ensure_future(self.stop.wait())
        done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if task not in done:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            self.say("interrupted")
            return None
        result = task.result()
        detail = f" ({result})" if isinstance(result, str) and result else ""
        self.say(f"ready in {time.monotonic() - started:.1f} s{detail}")
        return result if result is not None else True

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_signal, signum)
        code = 0
        try:
            await self._start_and_show()
        except (ChildError, BrokerError, SettingsError, OSError, RuntimeError) as exc:
            self.say(f"\nfailed: {exc}")
            code = 1
        finally:
            await self._shutdown()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
        self._report()
        return code or self.exit_code

    def _on_signal(self, signum: int) -> None:
        if not self.stop.is_set():
            log.info("stopping on %s", signal.Signals(signum).name)
        self.stop.set()

    async def _start_and_show(self) -> None:
        args, settings = self.args, self.settings
        work = (
            Path(settings.work_dir) if settings.work_dir else Path(tempfile.mkdtemp(prefix="cctriage-demo-"))
        )
        work.mkdir(parents=True, exist_ok=True)
        self.say(
            f"cctriage demo: rate {args.rate} events/s, {args.agents} agents, {args.workers} triage "
            f"worker(s), seed {args.seed}; logs in {work}"
        )
        broker_settings = load(BrokerSettings)
        topic_settings = load(topics.TopicSettings)
        bootstrap = broker_settings.bootstrap_servers
        if bootstrap:
            self.say(f"using Kafka at {bootstrap} (KAFKA_BOOTSTRAP_SERVERS)")
        else:
            self.broker = EmbeddedBroker(
                broker_settings.embedded_broker,
                data_dir=work / "broker",
                start_timeout_s=broker_settings.start_timeout_s,
                stop_timeout_s=broker_settings.stop_timeout_s,
            )
            if not await self.step(
                f"starting broker ({broker_settings.embedded_broker})",
                lambda: asyncio.to_thread(self._start_broker),
            ):
                return
            bootstrap = self.broker.bootstrap
        if not await self.step(
            "creating topics",
            lambda: asyncio.to_thread(
                lambda: f"{len(topics.ensure_topics(bootstrap, settings=topic_settings))} topics"
            ),
        ):
            return

        env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=bootstrap, PYTHONUNBUFFERED="1")
        routing_port = settings.routing_port or free_port()
        routing_metrics = free_port()
        target = f"127.0.0.1:{routing_port}"
        # Every caller authenticates as itself, as in production: fresh tokens for this run.
        self.tokens = Tokens.fresh([a.agent_id for a in build_roster(args.agents, args.seed)])
        routing_env = dict(
            env,
            ROUTING_LISTEN=target,
            ROUTING_METRICS_PORT=str(routing_metrics),
            ROUTING_METRICS_HOST="127.0.0.1",
            ROUTING_JOURNAL_PATH=str(work / "routing-journal.sqlite3"),
            ROUTING_DECISIONS_TOPIC=topics.ROUTING_DECISIONS.full_name(topic_settings.prefix),
            ROUTING_AUTH_TOKENS=self.tokens.routing_setting(),
            ROUTING_THREADS=str(max(64, args.agents + 32)),
        )
        # A livelier demo than the production defaults; the environment still wins.
        routing_env.setdefault("ROUTING_OFFER_TIMEOUT_SECONDS", "10")
        routing = self._child("routing", [sys.executable, "-m", "cctriage_routing"], work, routing_env)
        if not await self.step(
            f"starting routing service on {target}",
            lambda: routing.wait_ready(lambda: grpc_serving(target), settings.start_timeout_s),
        ):
            return
        self.urls.append(f"routing http://127.0.0.1:{routing_metrics}/metrics")

        workers = []
        for n in range(1, args.workers + 1):
            port = free_port()
            worker_env = dict(
                env,
                TRIAGE_WEB_BIND="127.0.0.1",
                TRIAGE_WEB_PORT=str(port),
                TRIAGE_DATA_DIR=str(work / f"triage-{n}"),
                TRIAGE_ROUTING_TARGET=target,
                TRIAGE_CREATE_TOPICS="false",
                TRIAGE_MODEL_THREADS=os.environ.get("TRIAGE_MODEL_THREADS", "1"),
                TRIAGE_ROUTING_TOKEN=self.tokens.triage,
            )
            if broker_settings.embedded_broker == "tansu" and not broker_settings.bootstrap_servers:
                worker_env.setdefault("TRIAGE_PRODUCER_MAX_BATCH_SIZE", "1")  # see docs/broker.md
            workers.append(
                (
                    self._child(f"triage-{n}", [sys.executable, "-m", "cctriage_triage"], work, worker_env),
                    port,
                )
            )
        for child, port in workers:
            self.urls.append(f"{child.name} http://127.0.0.1:{port}/metrics")

        async def all_ready() -> str:
            await asyncio.gather(
                *(
                    child.wait_ready(
                        lambda p=port: http_ok(f"http://127.0.0.1:{p}/readyz"), settings.start_timeout_s
                    )
                    for child, port in workers
                )
            )
            return "model loaded, partitions assigned"

        if workers and not await self.step(f"starting {args.workers} triage worker(s)", all_ready):
            return
        if not workers:
            self.say("no triage workers (--workers 0): nothing will be flagged or routed")

        metrics_port = settings.metrics_port or free_port()
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1")
        self.urls.append(f"simulator http://127.0.0.1:{metrics_port}/metrics")

        # The live view reads what the pipeline decides from its topics.
        prefix = topic_settings.prefix
        generator = TrafficGenerator(
            seed=args.seed,
            rate=args.rate,
            run_id=_run_id(args.seed),
            agent_ids=[a.agent_id for a in build_roster(args.agents, args.seed)],
            pace=settings.pace,
            tenant_id=settings.tenant_id,
        )
        from cctriage_publish.client import SupportEventPublisher

        self.publisher = await asyncio.to_thread(
            SupportEventPublisher,
            bootstrap,
            topics.SUPPORT_EVENTS.full_name(prefix),
            client_id="cctriage-demo",
        )
        self.traffic = TrafficPublisher(generator, self.publisher, self.state)
        self.state.persona_of = lambda cid: generator.plans[cid].persona if cid in generator.plans else ""
        watching = asyncio.Event()
        self.tasks.append(
            asyncio.ensure_future(
                watch_topics(
                    bootstrap,
                    {
                        topics.CONVERSATION_FLAGS.full_name(prefix): self._on_flag,
                        topics.ROUTING_DECISIONS.full_name(prefix): self._on_decision,
                    },
                    self.stop,
                    watching,
                )
            )
        )
        if not await self.step("watching flags and routing decisions", watching.wait):
            return
        self.tasks.append(
            asyncio.ensure_future(
                poll_snapshots(
                    target,
                    settings.tenant_id,
                    self.state,
                    self.stop,
                    metadata=self.tokens.supervisor_metadata(),
                )
            )
        )

        roster = build_roster(args.agents, args.seed)
        logged_in = asyncio.Event()
        seen: set[str] = set()

        def on_pool(event: PoolEvent) -> None:
            self.state.on_pool(event)
            if event.kind in metrics.REACTIONS:
                metrics.AGENT_REACTIONS.labels(event.kind).inc()
            if event.kind == "logged_in":
                seen.add(event.agent_id)
                if len(seen) == len(roster):
                    logged_in.set()

        pool = AgentPool(
            target,
            roster,
            on_pool,
            seed=args.seed,
            tenant_id=settings.tenant_id,
            pace=settings.pace,
            metadata_for=self.tokens.agent_metadata,
        )
        self.tasks.append(asyncio.ensure_future(pool.run(self.stop)))
        tiers = {t: sum(a.tier == t for a in roster) for t in sorted({a.tier for a in roster})}
        if not await self.step(
            f"logging in {len(roster)} agents (" + ", ".join(f"{n} tier {t}" for t, n in tiers.items()) + ")",
            lambda: asyncio.wait_for(logged_in.wait(), 30),
        ):
            return

        pids = ", ".join(f"{c.name} {c.pid}" for c in self.children)
        broker_pid = f"broker {self.broker.process.pid}, " if self.broker and self.broker.process else ""
        self.say(f"processes: {broker_pid}{pids}")
        self.say("metrics: " + "  ".join(self.urls))
        self.say(
            f"starting traffic: {args.rate} events/s, seed {args.seed}"
            + (f", for {args.duration:.0f} s" if args.duration else ", until Ctrl+C")
        )
        self.state.traffic_started = time.time()
        self.state.started = self.state.traffic_started
        self.tasks.append(asyncio.ensure_future(self.traffic.run(self.stop)))
        self.view = self._make_view()
        self.tasks.append(asyncio.ensure_future(self._refresh()))
        self.tasks.append(asyncio.ensure_future(self._supervise()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), timeout=args.duration or None)

    def _start_broker(self) -> str:
        assert self.broker is not None
        self.broker.start()
        return self.broker.bootstrap

    def _child(self, name: str, argv: list[str], work: Path, env: dict[str, str]) -> ChildProcess:
        child = ChildProcess(name, argv, env, work / f"{name}.log").start()
        self.children.append(child)
        return child

    def _on_flag(self, value: bytes) -> None:
        self.state.on_flag(triage_pb2.ConversationFlag.FromString(value))

    def _on_decision(self, value: bytes) -> None:
        decision = routing_pb2.RoutingDecision.FromString(value)
        first_routed = self.state.on_decision(decision)
        if decision.kind == routing_pb2.DECISION_KIND_ACCEPTED and self.traffic is not None:
            self.traffic.on_accepted(decision.conversation_id, decision.agent_id)
        if first_routed is not None:
            metrics.FLAG_TO_AGENT.labels(str(decision.tier)).observe(first_routed)

    def _make_view(self):
        if not self.args.plain and sys.stdout.isatty():
            try:
                from .view import RichView

                return RichView(self.state, self.urls)
            except ImportError:
                pass
        return PlainView(self.state, self.out)

    async def _refresh(self) -> None:
        while not self.stop.is_set():
            self.view.refresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=0.5)

    async def _supervise(self) -> None:
        """A service that dies is reported and stops the demo (the view would only lie otherwise)."""
        while not self.stop.is_set():
            for child in self.children:
                if not child.running():
                    self.state.note(
                        f"EXITED    {child.name} with code {child.process.returncode}; log {child.log_path}"
                    )
                    self.view.refresh()
                    self.stop.set()
                    self.exit_code = 1
                    return
            for task in self.tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    self.state.note(f"FAILED    {task.get_coro().__qualname__}: {task.exception()!r}")
                    self.view.refresh()
                    self.stop.set()
                    return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=0.5)

    async def _shutdown(self) -> None:
        self.stop.set()
        started = time.monotonic()
        if self.tasks:
            _, pending = await asyncio.wait(self.tasks, timeout=10)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self.view is not None:
            self.view.close()
        if self.publisher is not None:
            await asyncio.to_thread(self.publisher.close, 5)
        timeout = self.settings.stop_timeout_s
        workers = [c for c in self.children if c.name.startswith("triage")]
        others = [c for c in reversed(self.children) if c not in workers]
        if workers:
            self.say("stopping triage workers... ", end="")
            await asyncio.gather(*(asyncio.to_thread(c.stop, timeout) for c in workers))
            self.say("done")
        for child in others:
            self.say(f"stopping {child.name}... ", end="")
            await asyncio.to_thread(child.stop, timeout)
            self.say("done")
        if self.broker is not None and self.broker.process is not None:
            self.say("stopping broker... ", end="")
            await asyncio.to_thread(self.broker.stop)
            self.say("done")
        self.say(f"stopped in {time.monotonic() - started:.1f} s")

    def _report(self) -> None:
        summary = self.state.summary()
        if self.traffic is not None:
            summary["flagged_by_persona"] = self.traffic.flagged_by_persona(set(self.state.conversations))
        if self.state.traffic_started:
            senior = summary["flag_to_senior_s"]
            by_tier = ", ".join(f"tier {t}: {n}" for t, n in summary["accepted_by_tier"].items()) or "none"
            lines = [
                f"summary: {summary['events_published']} events published "
                f"({summary['events_failed']} failed), "
                f"{summary['conversations_started']} conversations "
                f"({summary['stressed_conversations_started']} with a stressed customer), "
                f"{summary['conversations_flagged']} flagged by triage",
                f"         accepted by agents: {by_tier}",
            ]
            if senior["count"]:
                lines.append(
                    f"         {senior['count']} flagged conversations reached a tier-1 agent, "
                    f"flag -> agent p50 {senior['p50']} s, max {senior['max']} s; the first "
                    f"{summary['first_senior_route_after_traffic_s']} s after traffic started"
                )
            personas = summary.get("flagged_by_persona")
            if personas:
                rates = ", ".join(f"{p} {r['flagged']}/{r['started']}" for p, r in personas.items())
                lines.append(
                    "         flagged by triage, by what the simulated customer did (conversations "
                    f"older than 60 s): {rates}"
                )
            for line in lines:
                self.say(line)
        if self.args.summary:
            Path(self.args.summary).write_text(json.dumps(summary, indent=2) + "\n")


def _run_id(seed: int) -> str:
    # Unique per run so that a second run against the same Kafka is not taken for duplicates.
    return f"sim{seed}-{random.Random().getrandbits(24):06x}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cctriage-demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=_positive(float), default=8.0, help="support events per second (8)")
    parser.add_argument(
        "--duration", type=_non_negative, default=0.0, help="seconds of traffic, then stop (0 = until Ctrl+C)"
    )
    parser.add_argument("--agents", type=_positive(int), default=20, help="simulated agents (20)")
    parser.add_argument(
        "--workers",
        type=_non_negative_int,
        default=2,
        help="triage worker processes (2); 0 runs no triage, so nothing gets flagged or routed",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of traffic and agents (1)")
    parser.add_argument(
        "--plain",
        action="store_true",
        help="print plain lines instead of the live dashboard (default when not a terminal)",
    )
    parser.add_argument("--summary", metavar="PATH", help="write the run's figures as JSON at the end")
    return parser


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    """cctriage-demo [--rate R] [--duration S] [--agents N] [--workers W] [--seed N] [--plain]"""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load(DemoSettings)
    except SettingsError as exc:
        print(f"cctriage-demo: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(Demo(args, settings).run())


if __name__ == "__main__":
    sys.exit(main())
