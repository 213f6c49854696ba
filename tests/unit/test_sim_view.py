"""The demo's live state: what a supervisor reads off it after flags and routing decisions."""

from __future__ import annotations

import io

from cctriage.routing.v1 import routing_pb2
from cctriage.triage.v1 import triage_pb2
from cctriage_sim.view import LiveState, PlainView, band

T0 = 1_800_000_000.0


STRESS_REASONS = (
    routing_pb2.Reason(code="anger", detail="anger 0.91"),
    routing_pb2.Reason(code="cancel_threat", detail="mentions cancelling"),
)


def flag(
    conversation_id: str, action: int, at: float, priority: int = 80, reasons=STRESS_REASONS
) -> triage_pb2.ConversationFlag:
    message = triage_pb2.ConversationFlag(
        conversation_id=conversation_id,
        action=action,
        priority=priority,
        stress=0.9,
        stressed=True,
        channel=1,
        customer_tier=2,
        reasons=list(reasons),
    )
    message.flagged_at.FromNanoseconds(int(at * 1e9))
    return message


def decision(kind: int, conversation_id: str, agent_id: str, tier: int, at: float, **kwargs):
    message = routing_pb2.RoutingDecision(
        kind=kind, conversation_id=conversation_id, agent_id=agent_id, tier=tier, **kwargs
    )
    message.decided_at.FromNanoseconds(int(at * 1e9))
    return message


def test_a_flagged_conversation_routed_to_a_senior_shows_who_why_and_how_fast():
    state = LiveState(traffic_started=T0, persona_of=lambda cid: "escalating")
    state.on_flag(flag("run-c000007", triage_pb2.FLAG_ACTION_RAISED, T0 + 20))
    assert state.conversations["run-c000007"].status == "flagged"
    state.on_decision(decision(routing_pb2.DECISION_KIND_OFFERED, "run-c000007", "agent-02", 1, T0 + 20.5))
    assert state.conversations["run-c000007"].status == "offered"
    routed = state.on_decision(
        decision(
            routing_pb2.DECISION_KIND_ACCEPTED,
            "run-c000007",
            "agent-02",
            1,
            T0 + 22.0,
            priority=80,
            waited_seconds=2.0,
            reason="tier 1, skill billing 9, waited 2 s, reserve",
        )
    )
    assert routed == 2.0
    conv = state.conversations["run-c000007"]
    assert (conv.status, conv.agent_id, conv.agent_tier) == ("with agent", "agent-02", 1)
    assert conv.reasons == "anger 0.91; mentions cancelling"
    lines = list(state.lines)
    assert lines[0].startswith("FLAG      c000007 raised") and "mentions cancelling" in lines[0]
    assert lines[0].endswith("[simulated: escalating]"), "the demo shows what the customer really did"
    assert lines[-1] == (
        "ROUTED    c000007 -> agent-02 (tier 1): tier 1, skill billing 9, waited 2 s, reserve"
        " (flag -> agent 2.0 s)"
    )
    summary = state.summary()
    assert summary["flag_to_senior_s"] == {"count": 1, "p50": 2.0, "max": 2.0}
    assert summary["first_senior_route_after_traffic_s"] == 22.0
    assert summary["accepted_by_tier"] == {"1": 1}
    assert state.wait_by_band["urgent"] == [2.0]


def test_a_second_acceptance_after_a_transfer_is_not_counted_twice():
    state = LiveState(traffic_started=T0)
    state.on_flag(flag("c1", triage_pb2.FLAG_ACTION_RAISED, T0 + 5))
    state.on_decision(decision(routing_pb2.DECISION_KIND_ACCEPTED, "c1", "agent-05", 2, T0 + 30))
    again = state.on_decision(decision(routing_pb2.DECISION_KIND_ACCEPTED, "c1", "agent-01", 1, T0 + 60))
    assert again is None
    assert state.summary()["flag_to_senior_s"]["count"] == 0, "it reached tier 2 first"
    assert state.summary()["flagged_accepted_by_tier"] == {"2": 1}
    assert state.summary()["accepted_by_tier"] == {"1": 1, "2": 1}


def test_calming_down_and_closing_are_shown_and_unflagged_decisions_are_still_counted():
    state = LiveState(traffic_started=T0)
    state.on_flag(flag("c2", triage_pb2.FLAG_ACTION_RAISED, T0 + 5))
    state.on_flag(flag("c2", triage_pb2.FLAG_ACTION_CLEARED, T0 + 9, priority=10))
    assert state.conversations["c2"].status == "calmed down"
    closed = [routing_pb2.Reason(code="closed", detail="conversation closed")]
    state.on_flag(flag("c2", triage_pb2.FLAG_ACTION_WITHDRAWN, T0 + 12, priority=0, reasons=closed))
    conv = state.conversations["c2"]
    assert conv.status == "closed"
    # The table keeps why it was stressed; the line says why it ended.
    assert (conv.reasons, conv.priority) == ("anger 0.91; mentions cancelling", 10)
    assert (
        state.lines[-1].startswith("FLAG      c2 withdrawn")
        and "reasons: conversation closed" in state.lines[-1]
    )
    state.on_flag(flag("never-raised", triage_pb2.FLAG_ACTION_WITHDRAWN, T0 + 12))
    assert "never-raised" not in state.conversations
    state.on_decision(decision(routing_pb2.DECISION_KIND_ACCEPTED, "calm-one", "agent-09", 3, T0 + 13))
    assert (
        state.summary()["accepted_by_tier"] == {"3": 1} and state.summary()["flagged_accepted_by_tier"] == {}
    )
    assert state.flags == {"raised": 1, "cleared": 1, "withdrawn": 2}


def test_queue_by_priority_band_and_occupancy_by_tier_from_snapshots():
    state = LiveState(traffic_started=T0)
    state.queue = routing_pb2.QueueSnapshot(
        conversations=[
            routing_pb2.WaitingConversation(
                conversation_id="a", priority=85, effective_priority=90, waited_seconds=4
            ),
            routing_pb2.WaitingConversation(
                conversation_id="b", priority=70, effective_priority=95, waited_seconds=25
            ),
            routing_pb2.WaitingConversation(
                conversation_id="c", priority=20, effective_priority=31, waited_seconds=11
            ),
        ]
    )
    load = routing_pb2.ChannelLoad
    state.agents = routing_pb2.AgentSnapshot(
        agents=[
            routing_pb2.AgentStatus(
                agent_id="a1",
                tier=1,
                state=1,
                load=[load(channel=1, active=1, capacity=2)],
                conversation_ids=["x"],
            ),
            routing_pb2.AgentStatus(
                agent_id="a2", tier=1, state=4, load=[load(channel=1, active=0, capacity=2)]
            ),
            routing_pb2.AgentStatus(
                agent_id="a3", tier=3, state=3, load=[load(channel=1, active=0, capacity=3)]
            ),
            routing_pb2.AgentStatus(agent_id="a4", tier=3, state=5),
        ]
    )
    # Bands follow the effective priority (with aging), as the matcher sees it.
    assert state.queue_by_band() == {"urgent": (2, 25), "high": (0, 0.0), "normal": (1, 11), "low": (0, 0.0)}
    tiers = state.occupancy_by_tier()
    assert tiers[1]["logged_in"] == 2 and tiers[1]["wrap-up"] == 1 and tiers[1]["with_conversations"] == 1
    assert tiers[1]["active"] / tiers[1]["capacity"] == 0.25
    assert tiers[3]["logged_in"] == 1 and tiers[3]["away"] == 1, "offline agents are not counted"
    line = state.status_line()
    assert "urgent 2 (oldest 25 s)" in line and "t1 1/2 busy 25%" in line


def test_plain_view_prints_each_line_once_with_the_time_since_traffic_started():
    state = LiveState(traffic_started=T0)
    out = io.StringIO()
    view = PlainView(state, out, status_every_s=3600)
    state.note("FLAG      first")
    view.refresh()
    state.note("ROUTED    second")
    view.refresh()
    view.refresh()
    printed = [line for line in out.getvalue().splitlines() if "STATUS" not in line]
    assert [line.split("] ", 1)[1] for line in printed] == ["FLAG      first", "ROUTED    second"]
    assert all(line.startswith("[") for line in printed)


def test_priority_bands():
    assert [band(p) for p in (100, 80, 79.9, 60, 59, 30, 29, 0)] == [
        "urgent",
        "urgent",
        "high",
        "high",
        "normal",
        "normal",
        "low",
        "low",
    ]
