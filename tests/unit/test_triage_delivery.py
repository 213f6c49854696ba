"""Flags become the right routing calls, with the flag id as the idempotency key."""

from __future__ import annotations

import pytest
from cctriage.routing.v1 import routing_pb2
from cctriage.triage.v1 import triage_pb2
from cctriage_triage.delivery import routing_request
from cctriage_triage.policy import Action, Reason
from cctriage_triage.processor import alert_summary, flag_id
from cctriage_triage.state import FlagOutcome


def _flag(action: int, **extra) -> triage_pb2.ConversationFlag:
    return triage_pb2.ConversationFlag(
        flag_id=flag_id("c-1", 3), conversation_id="c-1", tenant_id="acme", queue="billing", action=action,
        sequence=3, priority=81, stress=0.9, stressed=True, language="en",
        reasons=[routing_pb2.Reason(code="anger", detail="anger 0.91", value=0.91)],
        required_skills=[routing_pb2.SkillRequirement(skill="billing")], previous_agent_id="a-9", **extra,
    )


def test_raised_routes_with_everything_matching_needs():
    rpc, request = routing_request(_flag(triage_pb2.FLAG_ACTION_RAISED, customer_tier=3))
    assert rpc == "RouteConversation"
    assert request.idempotency_key == "c-1/3" and request.sequence == 3
    assert request.priority == 81 and request.stressed and request.customer_tier == 3
    assert [s.skill for s in request.required_skills] == ["billing"]
    assert request.previous_agent_id == "a-9" and request.language == "en"
    assert request.reasons[0].detail == "anger 0.91"


@pytest.mark.parametrize("action", [triage_pb2.FLAG_ACTION_UPDATED, triage_pb2.FLAG_ACTION_CLEARED])
def test_updates_and_clears_update(action):
    rpc, request = routing_request(_flag(action))
    assert rpc == "UpdateConversation"
    assert (request.idempotency_key, request.sequence, request.priority) == ("c-1/3", 3, 81)


def test_withdrawn_withdraws_with_its_reason():
    rpc, request = routing_request(
        _flag(triage_pb2.FLAG_ACTION_WITHDRAWN, withdraw_reason=routing_pb2.WITHDRAW_REASON_ABANDONED)
    )
    assert rpc == "WithdrawConversation"
    assert request.reason == routing_pb2.WITHDRAW_REASON_ABANDONED and request.sequence == 3


def test_unknown_action_is_refused_by_name():
    with pytest.raises(ValueError, match="action"):
        routing_request(_flag(triage_pb2.FLAG_ACTION_UNSPECIFIED))


def test_alert_summary_has_figures_and_cues_only():
    outcome = FlagOutcome(
        Action.RAISED, 1, 88, True, 0.93,
        (Reason("stress", "stress 0.93", 0.93), Reason("legal", "mentions legal action", 1.0)),
    )
    assert alert_summary(outcome, 240) == "mentions legal action, stress 0.93, priority 88, waiting 4 min"
