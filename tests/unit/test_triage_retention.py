"""When conversations leave the triage worker's table (retention.py): closed ones after the grace,
idle ones after the TTL, both on the partition's stream time; late events of unknown ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from cctriage_common.settings import SettingsError
from cctriage_triage import metrics
from cctriage_triage.policy import Action
from cctriage_triage.retention import CLOSED, IDLE, Retention
from cctriage_triage.settings import load_settings
from cctriage_triage.state import CloseKind, ConversationState
from prometheus_client.metrics import MetricWrapperBase

README = Path(__file__).resolve().parents[2] / "services" / "triage" / "README.md"
T0 = 1_790_000_000.0  # an event time, seconds


def retention(grace_s: float = 60.0, idle_ttl_s: float = 3600.0) -> Retention:
    return Retention(grace_s=grace_s, idle_ttl_s=idle_ttl_s)


def test_a_closed_conversation_leaves_once_its_partitions_stream_time_passes_the_grace():
    rule = retention()
    rule.advance(0, T0)
    rule.track(0, "c1", closed=True, last_event_at=T0)
    rule.advance(1, T0 + 3600)  # another partition's time says nothing about this one
    assert rule.due(0) == []
    rule.advance(0, T0 + 59.9)
    assert rule.due(0) == []
    assert rule.reason(0, closed=True, last_event_at=T0) is None
    rule.advance(0, T0 + 60)
    assert rule.reason(0, closed=True, last_event_at=T0) == CLOSED
    assert rule.due(0) == ["c1"]
    assert rule.due(0) == [], "taken out of the index"
    assert rule.tracked() == 0


def test_an_event_after_the_close_restarts_the_grace():
    rule = retention()
    rule.advance(0, T0)
    rule.track(0, "c1", closed=True, last_event_at=T0)
    rule.advance(0, T0 + 50)
    rule.track(0, "c1", closed=True, last_event_at=T0 + 50)  # a late message, after the close
    rule.advance(0, T0 + 100)
    assert rule.due(0) == []
    rule.advance(0, T0 + 110)
    assert rule.due(0) == ["c1"]


def test_an_open_conversation_expires_after_the_idle_ttl_and_never_when_the_ttl_is_off():
    rule = retention(idle_ttl_s=3600)
    rule.advance(0, T0)
    rule.track(0, "open", closed=False, last_event_at=T0)
    rule.advance(0, T0 + 3599)
    assert rule.due(0) == []
    rule.advance(0, T0 + 3600)
    assert rule.reason(0, closed=False, last_event_at=T0) == IDLE
    assert rule.due(0) == ["open"]

    never = retention(idle_ttl_s=0)
    never.advance(0, T0)
    never.track(0, "open", closed=False, last_event_at=T0)
    never.advance(0, T0 + 10 * 86400)
    assert never.due(0) == [] and never.tracked() == 0
    assert never.reason(0, closed=False, last_event_at=T0) is None
    never.track(0, "open", closed=True, last_event_at=T0 + 10 * 86400)  # closing still evicts
    never.advance(0, T0 + 10 * 86400 + 60)
    assert never.due(0) == ["open"]


def test_closing_moves_a_conversation_from_the_idle_clock_to_the_grace():
    rule = retention(grace_s=60, idle_ttl_s=3600)
    rule.advance(0, T0)
    rule.track(0, "c1", closed=False, last_event_at=T0)
    rule.track(0, "c1", closed=True, last_event_at=T0 + 10)
    assert rule.tracked() == 1, "one entry per conversation"
    rule.advance(0, T0 + 70)
    assert rule.due(0) == ["c1"]
    rule.advance(0, T0 + 7200)
    assert rule.due(0) == [], "no idle entry left behind"


def test_a_conversation_stuck_in_front_delays_the_next_ones_but_none_leaves_early():
    rule = retention(grace_s=60)
    rule.advance(0, T0 + 30)
    # Touched in this order; "ahead" carries a newer event time (a source clock ahead).
    rule.track(0, "ahead", closed=True, last_event_at=T0 + 30)
    rule.track(0, "behind", closed=True, last_event_at=T0)
    rule.advance(0, T0 + 60)
    assert rule.due(0) == [], "behind is due, but waits for the one in front"
    rule.advance(0, T0 + 90)
    assert rule.due(0) == ["ahead", "behind"]


def test_an_unknown_conversations_event_older_than_the_grace_is_late():
    rule = retention(grace_s=60)
    assert not rule.is_late(0, T0 - 10**6), "a partition without stream time has no late events"
    rule.advance(0, T0)
    assert not rule.is_late(0, T0 - 60)
    assert rule.is_late(0, T0 - 60.5)
    assert not rule.is_late(1, T0 - 3600), "judged on its own partition's stream time"


def test_recovery_brings_back_stream_time_and_what_is_due_and_tombstones_forget():
    rule = retention(grace_s=60, idle_ttl_s=3600)
    rule.recovered(2, "closed-1", {"closed": True, "last_event_at": T0})
    rule.recovered(2, "closed-2", {"closed": True, "last_event_at": T0 + 5})
    rule.recovered(2, "closed-2", None)  # its tombstone
    rule.recovered(2, "open-1", {"closed": False, "last_event_at": T0 + 20})
    assert rule.stream_time(2) == T0 + 20, "the newest event time in the changelog"
    assert rule.is_late(2, T0 - 41)
    assert rule.tracked() == 2
    rule.advance(2, T0 + 60)
    assert rule.due(2) == ["closed-1"]
    rule.advance(2, T0 + 3620)
    assert rule.due(2) == ["open-1"]


def test_a_revoked_partition_is_forgotten():
    rule = retention()
    rule.recovered(0, "a", {"closed": True, "last_event_at": T0})
    rule.recovered(3, "b", {"closed": True, "last_event_at": T0})
    rule.keep([3])
    assert rule.stream_time(0) == 0.0 and rule.due(0) == []
    assert rule.tracked() == 1


def test_rule_arguments_are_checked():
    with pytest.raises(ValueError, match="grace_s"):
        Retention(grace_s=0)
    with pytest.raises(ValueError, match="idle_ttl_s"):
        Retention(idle_ttl_s=-1)


# -- the state of an expired conversation --------------------------------------------------------


def routed_state() -> ConversationState:
    state = ConversationState("conv-1", tenant_id="acme", routed=True, stressed=True, priority=80,
                              sequence=41, stress=0.8, last_event_at=T0)
    return state


def test_an_idle_routed_conversation_is_withdrawn_as_abandoned_with_the_next_sequence():
    state = routed_state()
    outcome = state.expire(86400)
    assert outcome is not None
    assert outcome.action is Action.WITHDRAWN and outcome.close is CloseKind.ABANDONED
    assert outcome.sequence == 42, "after every flag sent so far"
    assert [(r.code, r.detail) for r in outcome.reasons] == [("expired", "no event for 24 h")]
    assert state.closed and not state.stressed
    again = routed_state().expire(86400)
    assert again == outcome, "the same state always expires with the same flag"
    assert state.expire(86400) is None, "only once"


def test_an_idle_conversation_never_routed_expires_without_a_flag():
    state = ConversationState("conv-2", last_event_at=T0)
    assert state.expire(1800) is None
    assert state.closed


# -- settings and docs ----------------------------------------------------------------------------


def test_the_grace_and_the_idle_ttl_come_from_the_environment_and_are_checked():
    settings = load_settings({"TRIAGE_CLOSED_GRACE_S": "120", "TRIAGE_IDLE_TTL_S": "0"})
    assert (settings.closed_grace_s, settings.idle_ttl_s) == (120.0, 0.0)
    defaults = load_settings({})
    assert 60 <= defaults.closed_grace_s <= 3600 < defaults.idle_ttl_s
    with pytest.raises(SettingsError, match="TRIAGE_CLOSED_GRACE_S"):
        load_settings({"TRIAGE_CLOSED_GRACE_S": "0"})
    with pytest.raises(SettingsError, match="TRIAGE_IDLE_TTL_S"):
        load_settings({"TRIAGE_CLOSED_GRACE_S": "600", "TRIAGE_IDLE_TTL_S": "300"})


def test_the_readme_lists_every_triage_metric_and_the_retention_settings():
    text = README.read_text()
    declared = [m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)]
    names = {m._name + ("_total" if m._type == "counter" else "") for m in declared}
    assert {"cctriage_triage_table_conversations", "cctriage_triage_evicted_conversations_total"} <= names
    for name in names:
        assert f"| `{name}` |" in text, f"{name} missing from the README metrics table"
    for variable in ("TRIAGE_CLOSED_GRACE_S", "TRIAGE_IDLE_TTL_S"):
        assert f"| `{variable}` |" in text, f"{variable} missing from the README settings table"
