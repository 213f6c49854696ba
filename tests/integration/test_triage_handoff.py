"""The worker's in-process handoff: a flag's routing call made once the flag is written, with a
real routing server, and the route_flags agent's read of that flag making no second call.

What must hold (services/triage/delivery.py): the call waits for the write; reading the flag
back finds the outcome; while routing is down every flag is left to the agent, which delivers
them in topic order, and handing off resumes only once it has caught up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from cctriage.events.v1 import events_pb2
from cctriage.routing.v1 import routing_pb2
from cctriage.triage.v1 import triage_pb2
from cctriage_routing.testing import free_port, in_process_server
from cctriage_triage import metrics
from cctriage_triage.delivery import RoutingDelivery
from cctriage_triage.processor import flag_id


def _flag(conversation: str, sequence: int, action: int = triage_pb2.FLAG_ACTION_RAISED) -> tuple:
    flag = triage_pb2.ConversationFlag(
        flag_id=flag_id(conversation, sequence), conversation_id=conversation, tenant_id="acme",
        queue="billing", action=action, sequence=sequence, priority=80, stress=0.9, stressed=True,
        channel=events_pb2.CHANNEL_CHAT, language="en",
        reasons=[routing_pb2.Reason(code="anger", detail="anger 0.91", value=0.91)],
    )
    return flag.flag_id, flag.SerializeToString(), []


def _recording(server) -> list[tuple[str, str, int]]:
    """(call, conversation, sequence) for every call that reaches the engine, in order."""
    calls: list[tuple[str, str, int]] = []
    for name in ("route", "update", "withdraw"):
        original = getattr(server.engine, name)

        def recorded(*args, _original=original, _name=name):
            # route(request); update/withdraw(conversation_id, sequence, ...)
            if _name == "route":
                calls.append((_name, args[0].conversation_id, args[0].sequence))
            else:
                calls.append((_name, args[0], args[1]))
            return _original(*args)

        setattr(server.engine, name, recorded)
    return calls


def _handoffs(result: str) -> float:
    return metrics.ROUTING_HANDOFFS.labels(result)._value.get()


def _hand_off(delivery: RoutingDelivery, flags: list) -> asyncio.Future:
    """Hand ``flags`` off as the scoring side does before writing; returns the write's future."""
    written = asyncio.get_running_loop().create_future()
    delivery.hand_off(flags, written)
    return written


def _against_a_routing_server(tmp_path, scenario) -> None:
    """Run ``scenario(address, calls)`` against a real routing server recording its calls."""
    with in_process_server(tmp_path) as server:
        calls = _recording(server)
        asyncio.run(scenario(f"127.0.0.1:{server.port}", calls))


async def _until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def test_a_handed_off_flag_is_called_once_written_and_not_again_when_read(tmp_path):
    async def scenario(address: str, calls: list) -> None:
        delivery = RoutingDelivery(address, 5.0, 0.05, 0.2)
        await delivery.start()
        called_before = _handoffs("called")
        fid, value, headers = _flag("c-1", 1)
        written = _hand_off(delivery, [(fid, value, headers)])
        await asyncio.sleep(0.3)
        assert calls == [], "the call must wait until the flag is written"
        written.set_result(None)
        await _until(lambda: calls)
        assert await delivery.deliver_read(value, headers, lambda: True) == "ok"
        assert calls == [("route", "c-1", 1)], "reading the flag back must not call again"
        assert _handoffs("called") == called_before + 1
        await delivery.stop()

    _against_a_routing_server(tmp_path, scenario)


def test_a_flag_whose_write_failed_is_called_only_when_read(tmp_path):
    async def scenario(address: str, calls: list) -> None:
        delivery = RoutingDelivery(address, 5.0, 0.05, 0.2)
        await delivery.start()
        fid, value, headers = _flag("c-1", 1)
        written = _hand_off(delivery, [(fid, value, headers)])
        written.set_exception(RuntimeError("broker gone"))
        await asyncio.sleep(0.3)
        assert calls == []
        assert await delivery.deliver_read(value, headers, lambda: True) == "ok"
        assert calls == [("route", "c-1", 1)]
        await delivery.stop()

    _against_a_routing_server(tmp_path, scenario)


def test_with_handoff_off_only_the_agent_calls(tmp_path):
    async def scenario(address: str, calls: list) -> None:
        delivery = RoutingDelivery(address, 5.0, 0.05, 0.2, handoff=False)
        await delivery.start()
        fid, value, headers = _flag("c-1", 1)
        written = _hand_off(delivery, [(fid, value, headers)])
        written.set_result(None)
        await asyncio.sleep(0.3)
        assert calls == []
        assert await delivery.deliver_read(value, headers, lambda: True) == "ok"
        assert calls == [("route", "c-1", 1)]
        await delivery.stop()

    _against_a_routing_server(tmp_path, scenario)


def test_routing_down_leaves_flags_to_the_agent_in_order_and_handoff_resumes_after(tmp_path):
    port = free_port()
    first = [_flag("c-1", 1), _flag("c-1", 5, triage_pb2.FLAG_ACTION_UPDATED)]
    during = _flag("c-2", 2)
    mid = _flag("c-1", 9, triage_pb2.FLAG_ACTION_UPDATED)
    after = _flag("c-2", 7, triage_pb2.FLAG_ACTION_UPDATED)
    state: dict = {}

    async def scenario() -> None:
        delivery = RoutingDelivery(f"127.0.0.1:{port}", 2.0, 0.05, 0.2)
        await delivery.start()
        left_before = _handoffs("left_to_agent")
        # Routing is down: the first handed-off call fails, so both flags are left to the agent.
        written = _hand_off(delivery, first)
        written.set_result(None)
        await _until(lambda: _handoffs("left_to_agent") == left_before + 2)
        # Routing comes back; a new flag is still left to the agent, which has not caught up.
        state["server"] = await asyncio.to_thread(
            servers.enter_context, in_process_server(tmp_path, ROUTING_LISTEN=f"127.0.0.1:{port}")
        )
        state["calls"] = _recording(state["server"])
        await asyncio.wait_for(delivery.channel.channel_ready(), 10)  # a call now would succeed
        written = _hand_off(delivery, [during])
        written.set_result(None)
        await _until(lambda: _handoffs("left_to_agent") == left_before + 3)
        assert state["calls"] == []
        # The agent reads the flags in topic order and delivers each (retrying until routing
        # answers). A flag written while it has not caught up is left to it as well, even though
        # routing answers again: called now, it would overtake the update still unread.
        assert await delivery.deliver_read(first[0][1], first[0][2], lambda: True) == "ok"
        written = _hand_off(delivery, [mid])
        written.set_result(None)
        await _until(lambda: _handoffs("left_to_agent") == left_before + 4)
        assert state["calls"] == [("route", "c-1", 1)]
        for _, value, headers in [first[1], during, mid]:
            assert await delivery.deliver_read(value, headers, lambda: True) == "ok"
        # Caught up: the next flag is called in process again, before the agent reads it.
        written = _hand_off(delivery, [after])
        written.set_result(None)
        await _until(lambda: len(state["calls"]) == 5)
        assert await delivery.deliver_read(after[1], after[2], lambda: True) == "ok"
        await delivery.stop()

    with contextlib.ExitStack() as servers:
        asyncio.run(scenario())
        assert state["calls"] == [
            ("route", "c-1", 1), ("update", "c-1", 5), ("route", "c-2", 2), ("update", "c-1", 9),
            ("update", "c-2", 7),
        ]

