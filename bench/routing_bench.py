"""Routing benchmark: decision latency in-process, route calls/s over gRPC, memory.

    .venv/bin/python bench/routing_bench.py            # full size: 10,000 agents, 50,000 waiting
    .venv/bin/python bench/routing_bench.py --quick    # small, for a smoke run

Prints a table and writes bench/results/routing_bench.json. The same run measures a naive
baseline (a linear-scan matcher over the same world) so the figures compare like for like.
RouteStream is also driven by bench/grpc_load (Node, @grpc/grpc-js; ``npm ci`` on first use,
skipped with a note without node), against the real server and a do-nothing one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKILLS = ["billing", "tech", "sales", "cancel", "fraud", "loyalty"]
LANGS = ["en", "de", "fr"]
QUEUES = ["general", "retention", "vip", "support"]
CHAT, VOICE = 1, 3


def _rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


# ---------------------------------------------------------------------------------- world


def agent_profiles(n: int, rnd: random.Random) -> list[tuple]:
    out = []
    for i in range(n):
        skills = [(s, rnd.randint(1, 10)) for s in rnd.sample(SKILLS, rnd.randint(1, 3))]
        langs = rnd.sample(LANGS, rnd.randint(1, 2))
        queues = [] if rnd.random() < 0.5 else rnd.sample(QUEUES, 2)
        out.append(
            (f"a{i}", "acme", rnd.choice([1, 2, 2, 3, 3, 3]), skills, langs, [(CHAT, 3), (VOICE, 1)], queues)
        )
    return out


def conversation(i: int, rnd: random.Random):
    from cctriage_routing.engine import RouteRequest

    stressed = rnd.random() < 0.2
    return RouteRequest(
        conversation_id=f"c{i}",
        tenant_id="acme",
        queue=rnd.choice(QUEUES),
        channel=rnd.choice([CHAT, CHAT, CHAT, VOICE]),
        priority=rnd.randint(0, 100),
        stress=0.9 if stressed else 0.2,
        stressed=stressed,
        skills=((rnd.choice(SKILLS), rnd.randint(0, 6)),),
        language=rnd.choice(LANGS),
        idempotency_key=f"k{i}",
        sequence=1,
    )


class FixedClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def build_world(agents: int, waiting: int, seed: int = 7):
    """An engine with every agent full and ``waiting`` conversations in the queue."""
    from cctriage_routing.engine import Engine, RoutingConfig

    rnd = random.Random(seed)
    clock = FixedClock()
    engine = Engine(RoutingConfig(offer_timeout_seconds=10_000), clock=clock)
    for profile in agent_profiles(agents, rnd):
        engine.login(*profile)
    i = 0
    while engine.waiting_count < waiting:
        engine.route(conversation(i, rnd))
        i += 1
        if i % 1000 == 0:
            _settle(engine)
    _settle(engine)
    return engine, clock, rnd, i


def _settle(engine) -> None:
    for offer in list(engine.offers.values()):
        engine.accept(offer.agent_id, offer.offer_id)
    engine.drain()
    engine.dirty_agents.clear()
    engine.dirty_conversations.clear()
    engine.dirty_offers.clear()
    engine.new_idempotency_keys.clear()


# ---------------------------------------------------------------------------------- naive baseline


class NaiveMatcher:
    """The obvious implementation: scan every agent per route, every waiting one per free agent."""

    def __init__(self, engine) -> None:
        self.e = engine

    def route(self, req) -> str:
        e = self.e
        now = e.clock()
        best = None
        for agent in e.agents.values():
            if agent.state != 1 or agent.tenant_id != req.tenant_id or agent.free(req.channel) <= 0:
                continue
            if req.language not in agent.languages or (agent.queues and req.queue not in agent.queues):
                continue
            if not all(agent.skills.get(s, -1) >= lvl for s, lvl in req.skills):
                continue
            if req.stressed and agent.tier > 1:
                continue
            key = (agent.tier if req.stressed else -agent.tier, agent.indexed_at)
            if best is None or key < best[0]:
                best = (key, agent)
        del now
        return best[1].agent_id if best else ""

    def next_for(self, agent) -> str:
        now = self.e.clock()
        best = None
        for conv in self.e.conversations.values():
            if conv.status != 1 or conv.tenant_id != agent.tenant_id or agent.free(conv.channel) <= 0:
                continue
            if conv.language not in agent.languages or (agent.queues and conv.queue not in agent.queues):
                continue
            if not all(agent.skills.get(s, -1) >= lvl for s, lvl in conv.skills):
                continue
            eff = self.e.effective_priority(conv, now)
            if best is None or eff > best[0]:
                best = (eff, conv)
        return best[1].conversation_id if best else ""


# ---------------------------------------------------------------------------------- in-process


def bench_in_process(agents: int, waiting: int, routes: int) -> dict:
    started = time.perf_counter()
    rss_before = _rss_mb()
    engine, clock, rnd, n = build_world(agents, waiting)
    from cctriage_routing.server import tune_gc

    tune_gc()  # as the server does after recovering its journal
    build_seconds = time.perf_counter() - started
    rss_world = _rss_mb()
    route_lat, free_lat = [], []
    agent_ids = list(engine.agents)
    for j in range(routes):
        clock.now += 0.002
        req = conversation(n + j, rnd)
        t0 = time.perf_counter()
        engine.route(req)
        route_lat.append(time.perf_counter() - t0)
        if j % 2 == 0:
            # An agent completes a conversation: the freed slot pulls the most urgent match.
            agent = engine.agents[rnd.choice(agent_ids)]
            if agent.conversations:
                conv_id = next(iter(agent.conversations))
                t0 = time.perf_counter()
                engine.complete(agent.agent_id, conv_id)
                free_lat.append(time.perf_counter() - t0)
        _settle(engine)
    naive = NaiveMatcher(engine)
    naive_route, naive_free = [], []
    for j in range(200):
        req = conversation(10_000_000 + j, rnd)
        t0 = time.perf_counter()
        naive.route(req)
        naive_route.append(time.perf_counter() - t0)
        agent = engine.agents[rnd.choice(agent_ids)]
        t0 = time.perf_counter()
        naive.next_for(agent)
        naive_free.append(time.perf_counter() - t0)
    return {
        "agents": len(engine.agents),
        "waiting": engine.waiting_count,
        "build_seconds": round(build_seconds, 1),
        "route_decisions": len(route_lat),
        "route_p50_ms": pct(route_lat, 0.50) * 1e3,
        "route_p99_ms": pct(route_lat, 0.99) * 1e3,
        "route_max_ms": max(route_lat) * 1e3,
        "agent_free_decisions": len(free_lat),
        "agent_free_p50_ms": pct(free_lat, 0.50) * 1e3,
        "agent_free_p99_ms": pct(free_lat, 0.99) * 1e3,
        "naive_route_p50_ms": pct(naive_route, 0.50) * 1e3,
        "naive_route_p99_ms": pct(naive_route, 0.99) * 1e3,
        "naive_agent_free_p50_ms": pct(naive_free, 0.50) * 1e3,
        "naive_agent_free_p99_ms": pct(naive_free, 0.99) * 1e3,
        "engine_rss_mb": round(rss_world - rss_before, 1),
        "process_rss_mb": round(rss_world, 1),
    }


# ---------------------------------------------------------------------------------- gRPC


def client_main(args: argparse.Namespace) -> None:
    """One load-generating process: prints JSON {calls, routes, start, end, errors}.

    Modes: ``unary`` (sync stub, futures, ``window`` in flight), ``aio-unary`` (grpc.aio,
    ``window`` concurrent callers), ``stream`` (one RouteStream, ``window`` routes sent ahead
    of their acks), ``batch`` (RouteConversations of ``batch`` routes, ``window`` in flight).
    Every route has its own idempotency key; a route counts once its answer is back.
    """
    from cctriage.routing.v1 import routing_pb2 as pb

    rnd = random.Random(args.client_id)

    def request(i: int) -> pb.RouteConversationRequest:
        stressed = rnd.random() < 0.2
        return pb.RouteConversationRequest(
            idempotency_key=f"{args.prefix}-{args.client_id}-{i}",
            conversation_id=f"{args.prefix}-{args.client_id}-{i}",
            tenant_id="acme",
            queue=rnd.choice(QUEUES),
            channel=CHAT,
            priority=rnd.randint(0, 100),
            stress=0.9 if stressed else 0.2,
            stressed=stressed,
            language=rnd.choice(LANGS),
            required_skills=[
                pb.SkillRequirement(skill=rnd.choice(SKILLS), min_proficiency=rnd.randint(0, 6))
            ],
            sequence=1,
        )

    if args.mode in ("aio-unary", "stream"):
        import asyncio

        routes = [request(c) for c in range(args.calls)]
        result = asyncio.run(_aio_client(args, routes))
    else:
        result = _sync_client(args, request)
    print(json.dumps(result))


def _sync_client(args: argparse.Namespace, request) -> dict:
    import grpc
    from cctriage.routing.v1 import routing_pb2 as pb
    from cctriage.routing.v1 import routing_pb2_grpc as rpc

    channel = grpc.insecure_channel(args.address)
    stub = rpc.TriageRoutingStub(channel)
    if args.mode == "batch":
        calls = [
            pb.RouteConversationsRequest(requests=[request(c * args.batch + k) for k in range(args.batch)])
            for c in range(args.calls)
        ]
        method = stub.RouteConversations
    else:
        calls = [request(c) for c in range(args.calls)]
        method = stub.RouteConversation
    grpc.channel_ready_future(channel).result(timeout=30)
    window = threading.Semaphore(args.window)
    done = threading.Event()
    lock = threading.Lock()
    state = {"n": 0, "errors": 0}

    def finished(future) -> None:
        window.release()
        with lock:
            state["n"] += 1
            if future.exception() is not None:
                state["errors"] += 1
            if state["n"] == len(calls):
                done.set()

    start = time.time()
    for call in calls:
        window.acquire()
        method.future(call, timeout=60).add_done_callback(finished)
    done.wait()
    end = time.time()
    per_call = args.batch if args.mode == "batch" else 1
    return {
        "calls": len(calls),
        "routes": len(calls) * per_call,
        "start": start,
        "end": end,
        "errors": state["errors"],
    }


async def _aio_client(args: argparse.Namespace, routes: list) -> dict:
    import asyncio

    import grpc
    from cctriage.routing.v1 import routing_pb2_grpc as rpc

    errors = 0
    async with grpc.aio.insecure_channel(args.address) as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
        stub = rpc.TriageRoutingStub(channel)
        start = time.time()
        if args.mode == "aio-unary":
            todo = iter(routes)

            async def caller() -> int:
                failed = 0
                for route in todo:
                    try:
                        await stub.RouteConversation(route, timeout=60)
                    except grpc.aio.AioRpcError:
                        failed += 1
                return failed

            errors = sum(await asyncio.gather(*(caller() for _ in range(args.window))))
        else:
            call = stub.RouteStream(timeout=600)
            window = asyncio.Semaphore(args.window)

            async def send() -> None:
                for route in routes:
                    await window.acquire()
                    await call.write(route)
                await call.done_writing()

            sender = asyncio.ensure_future(send())
            acked = 0
            async for ack in call:
                window.release()
                # Acks come back in request order, one per route.
                if ack.idempotency_key != routes[acked].idempotency_key or ack.error_code:
                    errors += 1
                acked += 1
            await sender
            errors += len(routes) - acked
        end = time.time()
    return {"calls": len(routes), "routes": len(routes), "start": start, "end": end, "errors": errors}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run_clients(
    address: str,
    clients: int,
    calls: int,
    window: int,
    prefix: str,
    mode: str = "unary",
    batch: int = 1,
    server_pid: int | None = None,
) -> dict:
    cpu_before = _cpu_seconds(server_pid) if server_pid else 0.0
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--client",
                "--mode",
                mode,
                "--address",
                address,
                "--client-id",
                str(k),
                "--calls",
                str(calls),
                "--batch",
                str(batch),
                "--window",
                str(window),
                "--prefix",
                prefix,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(clients)
    ]
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        results.append(json.loads(out.strip().splitlines()[-1]))
    server_cpu = _cpu_seconds(server_pid) - cpu_before if server_pid else None
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (children.ru_utime + children.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    start = min(r["start"] for r in results)
    end = max(r["end"] for r in results)
    calls_total = sum(r["calls"] for r in results)
    routes_total = sum(r["routes"] for r in results)
    return {
        "mode": mode,
        "clients": clients,
        "window": window,
        "batch": batch,
        "calls": calls_total,
        "routes": routes_total,
        "seconds": round(end - start, 2),
        "calls_per_second": round(calls_total / (end - start)),
        "routes_per_second": round(routes_total / (end - start)),
        "errors": sum(r["errors"] for r in results),
        # CPU per route: where the two cores go (server process; all client processes).
        "server_cpu_us_per_route": round(server_cpu / routes_total * 1e6) if server_cpu is not None else None,
        "client_cpu_us_per_route": round(client_cpu / routes_total * 1e6),
    }


NODE_LOAD = ROOT / "bench" / "grpc_load"
# The Node load: 2 RouteStreams in one process, 500 routes ahead of their acks each.
NODE_STREAMS, NODE_WINDOW = 2, 500


def node_load_ready() -> str | None:
    """Install bench/grpc_load's packages if needed (``npm ci``); None, or why it cannot run."""
    import shutil

    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node/npm not found (install Node.js >= 18 for the Node load generator)"
    if not (NODE_LOAD / "node_modules" / "@grpc" / "grpc-js").is_dir():
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_LOAD,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            return f"npm ci failed in bench/grpc_load: {done.stderr.strip()[-500:]}"
    return None


def _run_node(address: str, calls: int, prefix: str, server_pid: int) -> dict:
    """RouteStream load from bench/grpc_load/load.js (Node, @grpc/grpc-js): a client that
    costs ~60 us of CPU per route instead of Python's ~200-300, so the server gets the cores.
    ``calls`` routes per stream; figures as ``_run_clients``."""
    cpu_before = _cpu_seconds(server_pid)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_average = os.getloadavg()[0]
    out = subprocess.run(
        [
            "node",
            str(NODE_LOAD / "load.js"),
            "--address",
            address,
            "--mode",
            "stream",
            "--streams",
            str(NODE_STREAMS),
            "--calls",
            str(calls),
            "--window",
            str(NODE_WINDOW),
            "--prefix",
            prefix,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    r = json.loads(out.strip().splitlines()[-1])
    server_cpu = _cpu_seconds(server_pid) - cpu_before
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (children.ru_utime + children.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    seconds = r["end"] - r["start"]
    return {
        "mode": "stream",
        "client": "node",
        "streams": NODE_STREAMS,
        "window": NODE_WINDOW,
        "calls": r["calls"],
        "routes": r["routes"],
        "seconds": round(seconds, 2),
        "routes_per_second": round(r["routes"] / seconds),
        "errors": r["errors"],
        "server_cpu_us_per_route": round(server_cpu / r["routes"] * 1e6),
        "client_cpu_us_per_route": round(client_cpu / r["routes"] * 1e6),
        "load_average_before": round(load_average, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
    }


def _populate(address: str, agents: int, waiting: int) -> None:
    """Fill a running server to size over gRPC: agents (all full) and a waiting queue."""
    import grpc
    from cctriage.routing.v1 import routing_pb2 as pb
    from cctriage.routing.v1 import routing_pb2_grpc as rpc

    rnd = random.Random(3)
    with grpc.insecure_channel(address) as ch:
        desk = rpc.AgentDesktopStub(ch)
        triage = rpc.TriageRoutingStub(ch)
        sup = rpc.SupervisorStub(ch)
        futures = []
        for agent_id, tenant, tier, skills, langs, caps, queues in agent_profiles(agents, rnd):
            futures.append(
                desk.Login.future(
                    pb.LoginRequest(
                        agent_id=agent_id,
                        tenant_id=tenant,
                        tier=tier,
                        skills=[pb.AgentSkill(skill=s, proficiency=p) for s, p in skills],
                        languages=langs,
                        capacities=[pb.ChannelCapacity(channel=c, capacity=n) for c, n in caps],
                        queues=queues,
                    )
                )
            )
            if len(futures) >= 200:
                [f.result() for f in futures]
                futures = []
        [f.result() for f in futures]
        i = 0
        # Route in batches until the queue holds `waiting` (offers stay outstanding: agents full).
        while True:
            snap = sup.GetQueueSnapshot(pb.QueueSnapshotRequest(limit=1))
            missing = waiting - snap.waiting
            if missing <= 0:
                break
            for _ in range(max(1, min(missing, 20_000) // 500)):
                batch = []
                for _ in range(500):
                    r = conversation(i, rnd)
                    batch.append(
                        pb.RouteConversationRequest(
                            idempotency_key=f"fill-{i}",
                            conversation_id=f"fill-{i}",
                            tenant_id=r.tenant_id,
                            queue=r.queue,
                            channel=r.channel,
                            priority=r.priority,
                            stress=r.stress,
                            stressed=r.stressed,
                            language=r.language,
                            sequence=1,
                            required_skills=[
                                pb.SkillRequirement(skill=s, min_proficiency=m) for s, m in r.skills
                            ],
                        )
                    )
                    i += 1
                triage.RouteConversations(pb.RouteConversationsRequest(requests=batch), timeout=120)


def echo_main(args: argparse.Namespace) -> None:
    """The floor: a TriageRouting server that answers at once (no engine, no journal).

    ``--server-kind sync`` uses grpc.server with a thread pool (what the routing server
    uses), ``aio`` uses grpc.aio.server; both answer RouteConversation and RouteStream.
    """
    import grpc
    from cctriage.routing.v1 import routing_pb2 as pb
    from cctriage.routing.v1 import routing_pb2_grpc as rpc

    def answer(request):
        return pb.RouteConversationResponse(conversation_id=request.conversation_id, status=1)

    if args.server_kind == "sync":
        from concurrent import futures

        class Echo(rpc.TriageRoutingServicer):
            def RouteConversation(self, request, context):  # noqa: N802
                return answer(request)

            def RouteStream(self, request_iterator, context):  # noqa: N802
                for request in request_iterator:
                    yield pb.RouteAck(idempotency_key=request.idempotency_key, response=answer(request))

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
        rpc.add_TriageRoutingServicer_to_server(Echo(), server)
        server.add_insecure_port(args.address)
        server.start()
        server.wait_for_termination()
        return

    import asyncio

    class AioEcho(rpc.TriageRoutingServicer):
        async def RouteConversation(self, request, context):  # noqa: N802
            return answer(request)

        async def RouteStream(self, request_iterator, context):  # noqa: N802
            async for request in request_iterator:
                yield pb.RouteAck(idempotency_key=request.idempotency_key, response=answer(request))

    async def serve() -> None:
        server = grpc.aio.server()
        rpc.add_TriageRoutingServicer_to_server(AioEcho(), server)
        server.add_insecure_port(args.address)
        await server.start()
        await server.wait_for_termination()

    asyncio.run(serve())


def aio_routing_main(args: argparse.Namespace) -> None:
    """The routing engine and journal behind a grpc.aio server (RouteConversation only).

    The same ``RoutingServer`` state, recovery and journal as production (settings from the
    environment), with an async unary handler that awaits the group commit through the
    journal's commit callback instead of blocking a worker thread: what a grpc.aio front
    end for TriageRouting would cost per call. Bench-only; the service runs the sync server.
    """
    import asyncio

    import grpc
    from cctriage.routing.v1 import routing_pb2 as pb
    from cctriage.routing.v1 import routing_pb2_grpc as rpc
    from cctriage_common.settings import load
    from cctriage_routing.server import RoutingServer, _route_request
    from cctriage_routing.settings import RoutingSettings
    from grpc_health.v1 import health_pb2_grpc

    core = RoutingServer(load(RoutingSettings, dict(os.environ)))
    core.recover()

    class AioRouting(rpc.TriageRoutingServicer):
        async def RouteConversation(self, request, context):  # noqa: N802
            loop = asyncio.get_running_loop()
            committed = loop.create_future()
            r, ticket = core.apply_nowait(
                core.engine.route,
                _route_request(request),
                on_commit=lambda: loop.call_soon_threadsafe(committed.set_result, None),
            )
            if ticket is not None:
                await committed
            return pb.RouteConversationResponse(
                conversation_id=r.conversation_id, status=r.status, duplicate=r.duplicate, agent_id=r.agent_id
            )

        async def RouteStream(self, request_iterator, context):  # noqa: N802
            # One event-loop thread reads, applies and writes; each route's commit resolves
            # its future; acks go out in request order.
            loop = asyncio.get_running_loop()
            pending: asyncio.Queue = asyncio.Queue(maxsize=STREAM_WINDOW)

            async def read() -> None:
                async for request in request_iterator:
                    committed = loop.create_future()
                    r, ticket = core.apply_nowait(
                        core.engine.route,
                        _route_request(request),
                        on_commit=lambda f=committed: loop.call_soon_threadsafe(f.set_result, None),
                    )
                    response = pb.RouteConversationResponse(
                        conversation_id=r.conversation_id,
                        status=r.status,
                        duplicate=r.duplicate,
                        agent_id=r.agent_id,
                    )
                    ack = pb.RouteAck(idempotency_key=request.idempotency_key, response=response)
                    await pending.put((committed if ticket is not None else None, ack))
                await pending.put(None)

            reader = asyncio.ensure_future(read())
            while (item := await pending.get()) is not None:
                committed, ack = item
                if committed is not None:
                    await committed
                yield ack
            await reader

    async def serve() -> None:
        server = grpc.aio.server()
        rpc.add_TriageRoutingServicer_to_server(AioRouting(), server)
        health_pb2_grpc.add_HealthServicer_to_server(core.health, server)
        server.add_insecure_port(args.address)
        await server.start()
        from grpc_health.v1 import health_pb2

        core.health.set("", health_pb2.HealthCheckResponse.SERVING)
        await server.wait_for_termination()

    asyncio.run(serve())


def _start_bench_server(argv: list[str], address: str, env: dict | None = None) -> subprocess.Popen:
    import grpc

    proc = subprocess.Popen([sys.executable, __file__, *argv, "--address", address], env=env)
    with grpc.insecure_channel(address) as ch:
        grpc.channel_ready_future(ch).result(timeout=120)
    return proc


def bench_floors(calls: int) -> dict:
    """Do-nothing servers, sync and aio, with the same clients as the real paths."""
    sys.path.insert(0, str(ROOT / "services"))
    from cctriage_routing.testing import free_port

    out = {}
    node = node_load_ready()
    for kind in ("sync", "aio"):
        address = f"127.0.0.1:{free_port()}"
        proc = _start_bench_server(["--echo", "--server-kind", kind], address)
        try:
            unary_mode = "unary" if kind == "sync" else "aio-unary"
            out[f"{kind}_unary"] = _run_clients(
                address, 2, calls, 64, f"e{kind}", unary_mode, server_pid=proc.pid
            )
            out[f"{kind}_stream"] = _run_clients(
                address, 2, calls * 2, STREAM_WINDOW, f"s{kind}", "stream", server_pid=proc.pid
            )
            if kind == "sync" and node is None:
                out["sync_stream_node"] = _run_node(address, calls * 2, "ns", proc.pid)
        finally:
            proc.terminate()
            proc.wait(10)
    return out


STREAM_WINDOW = 500


def bench_grpc(agents: int, waiting: int, calls: int, synchronous: str) -> dict:
    """Every route path against the real server at size, journal fsync as configured."""
    sys.path.insert(0, str(ROOT / "services"))
    from cctriage_routing.testing import free_port, server_environment, server_process

    out: dict = {"journal_synchronous": synchronous}
    with tempfile.TemporaryDirectory() as tmp:
        environ = server_environment(
            Path(tmp),
            ROUTING_METRICS_PORT="-1",
            ROUTING_JOURNAL_SYNCHRONOUS=synchronous,
            ROUTING_OFFER_TIMEOUT_SECONDS="3600",
            LOG_LEVEL="WARNING",
            ROUTING_THREADS="32",
        )
        with server_process(environ) as (address, proc):
            t0 = time.perf_counter()
            _populate(address, agents, waiting)
            out["populate_seconds"] = round(time.perf_counter() - t0, 1)
            out["server_rss_mb_at_size"] = round(_rss_mb(proc.pid), 1)
            pid = proc.pid
            node = node_load_ready()
            if node is None:
                out["stream_node"] = _run_node(address, calls * 2, "n", pid)
            else:
                out["stream_node"] = {"skipped": node}
            out["unary"] = _run_clients(address, 2, calls, 64, "u", "unary", server_pid=pid)
            out["stream"] = _run_clients(address, 2, calls * 2, STREAM_WINDOW, "s", "stream", server_pid=pid)
            out["batch_100"] = _run_clients(
                address, 1, max(20, calls // 20), 4, "b", "batch", batch=100, server_pid=pid
            )
            out["server_rss_mb_after"] = round(_rss_mb(proc.pid), 1)
            t0 = time.perf_counter()
        out["sigterm_to_exit_seconds"] = round(time.perf_counter() - t0, 1)
        out["journal_mb"] = round(Path(environ["ROUTING_JOURNAL_PATH"]).stat().st_size / 2**20, 1)
        # Restart on the same journal: process start, recovery at this size, SERVING.
        t0 = time.perf_counter()
        with server_process(environ) as (address, proc):
            out["restart_to_serving_seconds"] = round(time.perf_counter() - t0, 1)
        # The same state behind a grpc.aio server (bench harness), recovered from this journal.
        address = f"127.0.0.1:{free_port()}"
        proc = _start_bench_server(["--aio-routing"], address, env={**os.environ, **environ})
        try:
            pid = proc.pid
            out["aio_unary"] = _run_clients(address, 2, calls, 64, "a", "aio-unary", server_pid=pid)
            out["aio_stream"] = _run_clients(
                address, 2, calls * 2, STREAM_WINDOW, "as", "stream", server_pid=pid
            )
            out["aio_server_rss_mb_after"] = round(_rss_mb(proc.pid), 1)
        finally:
            proc.terminate()
            proc.wait(30)
    return out


def run(
    quick: bool = False,
    skip_grpc: bool = False,
    skip_normal: bool = False,
    calls: int | None = None,
    floors: bool = True,
) -> dict:
    """Measure and return what ``main`` prints and writes (bench/run_all.py calls this).

    ``quick``: 1,000 agents / 5,000 waiting; ``calls``: gRPC calls per client and path (default
    2,000 quick, 10,000 full); ``floors``: also the do-nothing servers (the baselines).
    """
    agents, waiting = (1_000, 5_000) if quick else (10_000, 50_000)
    calls = calls or (2_000 if quick else 10_000)
    results: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_at_start": os.getloadavg(),
        },
        "size": {"agents": agents, "waiting": waiting},
    }
    results["in_process"] = bench_in_process(agents, waiting, routes=2_000 if quick else 20_000)
    if not skip_grpc:
        if floors:
            results["grpc_floors"] = bench_floors(calls)
        for mode in ("FULL",) if skip_normal else ("FULL", "NORMAL"):
            results[f"grpc_{mode.lower()}"] = bench_grpc(agents, waiting, calls, mode)
    results["max_rss_mb_bench_process"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    results["machine"]["load_average_at_end"] = os.getloadavg()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--echo", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--aio-routing", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--server-kind", default="sync", choices=["sync", "aio"], help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="unary", choices=["unary", "aio-unary", "stream", "batch"])
    parser.add_argument("--address")
    parser.add_argument("--client-id", type=int, default=0)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--prefix", default="x")
    parser.add_argument("--skip-grpc", action="store_true")
    parser.add_argument("--skip-normal", action="store_true", help="measure journal FULL only")
    args = parser.parse_args()
    if args.client:
        client_main(args)
        return
    if args.echo:
        echo_main(args)
        return
    if args.aio_routing:
        aio_routing_main(args)
        return
    results = run(args.quick, args.skip_grpc, args.skip_normal)
    agents = results["size"]["agents"]
    ip = results["in_process"]
    rows = [
        (
            "in-process route decision p50 / p99 (ms)",
            f"{ip['route_p50_ms']:.3f} / {ip['route_p99_ms']:.3f}",
            f"{ip['naive_route_p50_ms']:.3f} / {ip['naive_route_p99_ms']:.3f} (naive scan)",
        ),
        (
            "in-process agent-freed decision p50 / p99 (ms)",
            f"{ip['agent_free_p50_ms']:.3f} / {ip['agent_free_p99_ms']:.3f}",
            f"{ip['naive_agent_free_p50_ms']:.3f} / {ip['naive_agent_free_p99_ms']:.3f} (naive scan)",
        ),
        ("engine memory at size (MB RSS growth)", f"{ip['engine_rss_mb']}", ""),
    ]
    floors = results.get("grpc_floors", {})
    paths = (
        ("unary, sync server (the service)", "unary", "sync_unary"),
        ("unary, grpc.aio server (bench harness)", "aio_unary", "aio_unary"),
        ("RouteStream, 1 route + 1 ack per message", "stream", "sync_stream"),
        ("RouteStream, grpc.aio server (bench harness)", "aio_stream", "aio_stream"),
        ("RouteConversations, 100 routes per call", "batch_100", None),
    )
    for mode in ("full", "normal"):
        g = results.get(f"grpc_{mode}")
        if not g:
            continue
        node = g.get("stream_node", {})
        if "skipped" in node:
            rows.append((f"RouteStream with the Node load generator, journal {mode.upper()}", "skipped", ""))
            print(f"Node load generator skipped: {node['skipped']}")
        elif node:
            floor = floors.get("sync_stream_node")
            verdict = "holds" if node["routes_per_second"] >= 5000 else "fails"
            rows.append(
                (
                    f"routes/s over gRPC, RouteStream, 1 route per message, Node load, journal {mode.upper()}"
                    f" (target >= 5,000: {verdict})",
                    f"{node['routes_per_second']}"
                    + (f" ({node['errors']} errors)" if node["errors"] else ""),
                    f"{floor['routes_per_second']} (do-nothing)" if floor else "",
                )
            )
            rows.append(
                (
                    "  server / client CPU per route (us), RouteStream, Node load",
                    f"{node['server_cpu_us_per_route']} / {node['client_cpu_us_per_route']}",
                    f"{floor['server_cpu_us_per_route']} / {floor['client_cpu_us_per_route']}"
                    if floor
                    else "",
                )
            )
        for name, key, floor in paths:
            rows.append(
                (
                    f"routes/s over gRPC, {name}, journal {mode.upper()}",
                    f"{g[key]['routes_per_second']}"
                    + (f" ({g[key]['errors']} errors)" if g[key]["errors"] else ""),
                    f"{floors[floor]['routes_per_second']} (do-nothing)" if floor and floor in floors else "",
                )
            )
            rows.append(
                (
                    f"  server / client CPU per route (us), {name}",
                    f"{g[key]['server_cpu_us_per_route']} / {g[key]['client_cpu_us_per_route']}",
                    f"{floors[floor]['server_cpu_us_per_route']} / {floors[floor]['client_cpu_us_per_route']}"
                    if floor and floor in floors
                    else "",
                )
            )
        rows.append(
            (
                f"server RSS at size / after load (MB, {mode.upper()})",
                f"{g['server_rss_mb_at_size']} / {g['server_rss_mb_after']}",
                "",
            )
        )
        rows.append(
            (
                f"restart to SERVING on the journal (s, {mode.upper()})",
                f"{g['restart_to_serving_seconds']}",
                "",
            )
        )
    width = max(len(r[0]) for r in rows)
    print(f"\nrouting bench: {agents} agents, {ip['waiting']} waiting, {os.cpu_count()} CPUs")
    print(f"{'measure'.ljust(width)}  {'routing server':>18}  {'baseline, same run':>28}")
    for name, ours, base in rows:
        print(f"{name.ljust(width)}  {ours:>18}  {base:>28}")
    out = ROOT / "bench" / "results" / ("routing_bench_quick.json" if args.quick else "routing_bench.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
