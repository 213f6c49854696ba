"""The simulator's entrypoints.

    python -m cctriage_sim [demo options]         # the whole pipeline, live (= cctriage-demo)
    python -m cctriage_sim traffic --rate 10      # customer traffic to KAFKA_BOOTSTRAP_SERVERS
    python -m cctriage_sim agents --routing routing:50051 --agents 30

``traffic`` publishes simulated conversations until SIGTERM and lets agents join the
conversations the routing service assigned (it reads the routing-decisions topic for that).
``agents`` logs a simulated agent pool into the routing service until SIGTERM. Agent tokens,
when the routing service requires them, come from CCTRIAGE_SIM_AGENT_TOKENS
("agent-01=token,agent-02=token,..."); without them no authorization header is sent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import signal
import sys

from cctriage_common.logs import configure
from cctriage_common.settings import SettingsError, env_field, load

from . import demo


@dataclasses.dataclass(frozen=True)
class SimSettings:
    bootstrap_servers: str = env_field("KAFKA_BOOTSTRAP_SERVERS", "", "Kafka to publish traffic to.")
    topic_prefix: str = env_field("CCTRIAGE_TOPIC_PREFIX", "", "Prepended to every topic name.")
    tenant_id: str = env_field(
        "CCTRIAGE_DEMO_TENANT", "acme-telecom", "Tenant of the simulated contact centre."
    )
    agent_tokens: str = env_field(
        "CCTRIAGE_SIM_AGENT_TOKENS", "", "agent_id=token,... for the routing service's bearer auth."
    )
    metrics_port: int = env_field(
        "CCTRIAGE_SIM_METRICS_PORT", 9470, "Port of the simulator's /metrics; -1 = off."
    )
    pace: float = env_field("CCTRIAGE_DEMO_PACE", 1.0, "Scales every simulated duration; 2 = slower.")

    def agent_token_map(self) -> dict[str, str]:
        out = {}
        for item in (p.strip() for p in self.agent_tokens.split(",") if p.strip()):
            agent_id, sep, token = item.partition("=")
            if not sep or not agent_id or not token:
                raise SettingsError("CCTRIAGE_SIM_AGENT_TOKENS items must look like agent_id=token")
            out[agent_id] = token
        return out


def _serve_metrics(settings: SimSettings) -> None:
    if settings.metrics_port >= 0:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr="0.0.0.0")  # noqa: S104 - scraped in containers


async def _until_signal(run) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await run(stop)


def traffic_main(argv: list[str]) -> int:
    """python -m cctriage_sim traffic [--rate R] [--seed N]"""
    from cctriage_common import topics
    from cctriage_publish.client import SupportEventPublisher

    from .traffic import TrafficGenerator

    parser = argparse.ArgumentParser(prog="python -m cctriage_sim traffic", description=traffic_main.__doc__)
    parser.add_argument("--rate", type=float, default=8.0, help="support events per second")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    configure("simulator-traffic")
    settings = load(SimSettings)
    if not settings.bootstrap_servers:
        raise SettingsError("KAFKA_BOOTSTRAP_SERVERS is required")
    _serve_metrics(settings)
    generator = TrafficGenerator(
        seed=args.seed,
        rate=args.rate,
        run_id=demo._run_id(args.seed),
        pace=settings.pace,
        tenant_id=settings.tenant_id,
    )
    publisher = SupportEventPublisher(
        settings.bootstrap_servers,
        topics.SUPPORT_EVENTS.full_name(settings.topic_prefix),
        client_id="cctriage-sim-traffic",
    )
    traffic = demo.TrafficPublisher(generator, publisher)

    def on_decision(value: bytes) -> None:
        from cctriage.routing.v1 import routing_pb2

        decision = routing_pb2.RoutingDecision.FromString(value)
        if decision.kind == routing_pb2.DECISION_KIND_ACCEPTED:
            traffic.on_accepted(decision.conversation_id, decision.agent_id)

    async def run(stop: asyncio.Event) -> None:
        watcher = asyncio.ensure_future(
            demo.watch_topics(
                settings.bootstrap_servers,
                {topics.ROUTING_DECISIONS.full_name(settings.topic_prefix): on_decision},
                stop,
            )
        )
        try:
            await traffic.run(stop)
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(watcher, 10)

    try:
        asyncio.run(_until_signal(run))
    finally:
        publisher.close(10)
    return 0


def agents_main(argv: list[str]) -> int:
    """python -m cctriage_sim agents --routing host:port [--agents N] [--seed N]"""
    from .agents import AgentPool, build_roster

    parser = argparse.ArgumentParser(prog="python -m cctriage_sim agents", description=agents_main.__doc__)
    parser.add_argument("--routing", required=True, help="host:port of the routing service")
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    configure("simulator-agents")
    settings = load(SimSettings)
    tokens = settings.agent_token_map()
    _serve_metrics(settings)
    log = logging.getLogger("cctriage_sim.agents")

    def notify(event) -> None:
        from . import metrics

        if event.kind in metrics.REACTIONS:
            metrics.AGENT_REACTIONS.labels(event.kind).inc()
        log.info(
            "agent %s",
            event.kind,
            extra={
                "agent_id": event.agent_id,
                "conversation_id": event.conversation_id,
                "detail": event.detail,
            },
        )

    def metadata_for(agent_id: str) -> tuple[tuple[str, str], ...]:
        token = tokens.get(agent_id)
        return (("authorization", f"Bearer {token}"),) if token else ()

    pool = AgentPool(
        args.routing,
        build_roster(args.agents, args.seed),
        notify,
        seed=args.seed,
        tenant_id=settings.tenant_id,
        pace=settings.pace,
        metadata_for=metadata_for,
    )
    asyncio.run(_until_signal(pool.run))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["traffic"]:
            return traffic_main(argv[1:])
        if argv[:1] == ["agents"]:
            return agents_main(argv[1:])
        if argv[:1] == ["demo"]:
            argv = argv[1:]
    except SettingsError as exc:
        print(json.dumps({"level": "error", "msg": str(exc)}))
        return 2
    return demo.main(argv)


if __name__ == "__main__":
    sys.exit(main())
