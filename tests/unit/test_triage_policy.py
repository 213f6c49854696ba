"""The triage stress policy and conversation state: examples and properties."""

from __future__ import annotations

import pytest
from cctriage_common.settings import SettingsError, load
from cctriage_triage import policy
from cctriage_triage.policy import Action, PolicyConfig, Tier, Turn
from cctriage_triage.state import CloseKind, ConversationState, Severity
from hypothesis import given, settings
from hypothesis import strategies as st

CONFIG = PolicyConfig()


def turn(stress: float, negative: float | None = None, at: float = 0.0, anger: float = 0.0, eid: str = "e"):
    negative = stress if negative is None else negative
    return Turn(eid, stress, negative, {"anger": anger, "joy": 1 - stress}, at)


def feed(state: ConversationState, turns, cues=frozenset()):
    return [state.customer_message(t, cues, CONFIG) for t in turns]


# -- cues ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("This is the third time I'm writing about this!", "repeat_contact"),
        ("I have already called you twice", "repeat_contact"),
        ("I want to cancel my subscription", "cancel_threat"),
        ("I'll be cancelling today", "cancel_threat"),
        ("I will file a complaint with the ombudsman", "complaint_threat"),
        ("I'm going to do a chargeback", "chargeback"),
        ("I'll dispute the charge with my card", "chargeback"),
        ("My lawyer will hear about this", "legal"),
        ("I will sue you", "legal"),
    ],
)
def test_cues_are_detected(text, code):
    assert code in policy.detect_cues(text)


@pytest.mark.parametrize(
    "text",
    ["Thanks, that fixed it!", "Where is my parcel?", "The suit I ordered is the wrong size",
     "Could you explain the courtesy credit?", "first time ordering here"],
)
def test_ordinary_messages_have_no_cues(text):
    assert policy.detect_cues(text) == frozenset()


# -- settings ----------------------------------------------------------------------------------


def test_release_must_be_below_raise():
    with pytest.raises(SettingsError, match="TRIAGE_POLICY_RELEASE_STRESS"):
        load(PolicyConfig, {"TRIAGE_POLICY_RELEASE_STRESS": "0.7", "TRIAGE_POLICY_RAISE_STRESS": "0.6"})


def test_settings_come_from_the_environment():
    config = load(PolicyConfig, {"TRIAGE_POLICY_RAISE_STRESS": "0.8"})
    assert config.raise_stress == 0.8


# -- stress and priority -----------------------------------------------------------------------


def test_stress_weights_recent_turns_more():
    calm_then_angry = policy.weighted_stress([0.1, 0.1, 0.9], CONFIG)
    angry_then_calm = policy.weighted_stress([0.9, 0.1, 0.1], CONFIG)
    assert calm_then_angry > angry_then_calm + 0.15


def test_priority_grows_with_tier_and_waiting():
    standard = policy.priority_for(0.7, Tier.STANDARD, 0, CONFIG)
    vip = policy.priority_for(0.7, Tier.VIP, 0, CONFIG)
    vip_waiting = policy.priority_for(0.7, Tier.VIP, 300, CONFIG)
    assert standard < vip < vip_waiting <= 100
    assert policy.priority_for(1.0, Tier.VIP, 10_000, CONFIG) == 100


# -- conversations -----------------------------------------------------------------------------


def test_escalating_conversation_is_raised_once_with_reasons():
    state = ConversationState("c1", tier=Tier.PREMIUM)
    outcomes = feed(state, [turn(0.2, at=0), turn(0.5, at=30), turn(0.8, at=60, anger=0.91)])
    outcomes += feed(state, [turn(0.9, at=90, anger=0.95)], frozenset({"cancel_threat"}))
    raised = [o for o in outcomes if o and o.action is Action.RAISED]
    assert len(raised) == 1
    flag = raised[0]
    assert flag.stressed and flag.sequence == 1
    details = {r.detail for r in flag.reasons}
    assert "negative 2 turns in a row" in details
    assert "anger 0.91" in details
    assert "premium customer" in details
    assert flag.alert is Severity.WARNING


def test_calm_conversation_is_never_flagged():
    state = ConversationState("c1")
    assert feed(state, [turn(0.1, at=i) for i in range(20)]) == [None] * 20
    assert state.close(CloseKind.CLOSED) is None


def test_legal_threat_alerts_critical_and_is_explained():
    state = ConversationState("c1")
    (outcome,) = feed(state, [turn(0.55, at=0)], frozenset({"legal"}))
    assert outcome.action is Action.RAISED
    assert outcome.alert is Severity.CRITICAL
    assert "mentions legal action" in {r.detail for r in outcome.reasons}


def test_a_new_threat_after_the_raise_updates_routing_and_alerts_critical():
    # Already flagged at full stress, so the priority cannot rise: the legal threat must still
    # reach routing (as reasons) and supervisors (as a critical alert).
    state = ConversationState("c1")
    (raised,) = feed(state, [turn(1.0, at=0, anger=0.9)])
    assert raised.action is Action.RAISED and raised.alert is Severity.WARNING
    assert feed(state, [turn(1.0, at=1, anger=0.9)]) == [None], "nothing new, nothing sent"
    (update,) = feed(state, [turn(1.0, at=2, anger=0.9)], frozenset({"legal"}))
    assert update.action is Action.UPDATED and update.priority == raised.priority
    assert "mentions legal action" in {r.detail for r in update.reasons}
    assert update.alert is Severity.CRITICAL


def test_repeat_contact_from_the_opening_counts():
    state = ConversationState("c1")
    state.open(["billing"], "", prior_contacts=2)
    (outcome,) = feed(state, [turn(0.55)])
    assert outcome is not None and "repeat_contact" in {r.code for r in outcome.reasons}


def test_calming_lowers_priority_then_clears_and_closing_withdraws():
    state = ConversationState("c1")
    outcomes = [o for o in feed(state, [turn(0.95, at=i) for i in range(3)]) if o]
    outcomes += [o for o in feed(state, [turn(0.45, 0.1, at=10 + i) for i in range(2)]) if o]
    outcomes += [o for o in feed(state, [turn(0.0, 0.0, at=20 + i) for i in range(4)]) if o]
    actions = [o.action for o in outcomes]
    assert actions[0] is Action.RAISED
    assert Action.UPDATED in actions
    assert actions[-1] is Action.CLEARED
    updated = [o for o in outcomes if o.action is Action.UPDATED]
    assert all(u.priority < outcomes[0].priority for u in updated)
    withdrawn = state.close(CloseKind.CLOSED)
    assert withdrawn.action is Action.WITHDRAWN
    assert [o.sequence for o in [*outcomes, withdrawn]] == list(range(1, len(outcomes) + 2))


def test_an_agent_reply_stops_the_waiting_clock():
    state = ConversationState("c1")
    feed(state, [turn(0.9, at=0), turn(0.9, at=100), turn(0.9, at=400)])
    before = state.priority
    outcome = state.agent_message(401, CONFIG)
    assert outcome is not None and outcome.action is Action.UPDATED and outcome.priority < before
    assert state.waiting_s(500) == 0


def test_state_survives_json_round_trip():
    state = ConversationState("c1", tier=3)
    feed(state, [turn(0.9, at=1), turn(0.8, at=2)], frozenset({"legal"}))
    state.remember("e1")
    import json

    again = ConversationState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert again == state
    assert again.seen_before("e1")


# -- properties --------------------------------------------------------------------------------

unit = st.floats(0.0, 1.0, allow_nan=False)
turns_st = st.lists(st.tuples(unit, unit, unit), min_size=1, max_size=12)
cues_st = st.frozensets(st.sampled_from([c.code for c in policy.CUES]))


def _turns(values):
    return [Turn(f"e{i}", s, n, {"anger": a}, float(i)) for i, (s, n, a) in enumerate(values)]


@settings(max_examples=300, deadline=None)
@given(turns_st, st.data(), cues_st)
def test_more_negative_never_lowers_stress(values, data, cues):
    index = data.draw(st.integers(0, len(values) - 1))
    s, n, a = values[index]
    worse = (data.draw(st.floats(s, 1.0)), data.draw(st.floats(n, 1.0)), data.draw(st.floats(a, 1.0)))
    more = [*values[:index], worse, *values[index + 1 :]]
    before = policy.assess(_turns(values), None, cues, Tier.STANDARD, 0, CONFIG)
    after = policy.assess(_turns(more), None, cues, Tier.STANDARD, 0, CONFIG)
    assert after.stress >= before.stress - 1e-12
    assert after.priority >= before.priority


@settings(max_examples=300, deadline=None)
@given(turns_st, st.tuples(unit, unit, unit), st.tuples(unit, unit, unit), cues_st)
def test_a_more_negative_next_turn_never_gives_lower_stress(values, calm, other, cues):
    worse = tuple(max(x, y) for x, y in zip(calm, other, strict=True))
    base = policy.assess(_turns([*values, calm]), None, cues, Tier.STANDARD, 0, CONFIG)
    more = policy.assess(_turns([*values, worse]), None, cues, Tier.STANDARD, 0, CONFIG)
    assert more.stress >= base.stress - 1e-12


@settings(max_examples=500, deadline=None)
@given(st.tuples(unit, unit, unit), st.tuples(unit, unit, unit), st.integers(2, 40), cues_st, st.booleans())
def test_hysteresis_never_flaps_on_alternating_input(a, b, length, cues, start_with_b):
    """Two messages taking turns, for as long as you like: raised at most once, cleared at most once."""
    first, second = (b, a) if start_with_b else (a, b)
    state = ConversationState("c1")
    actions = []
    for i in range(length):
        s, n, anger = first if i % 2 == 0 else second
        outcome = state.customer_message(Turn(f"e{i}", s, n, {"anger": anger}, float(i)), cues, CONFIG)
        if outcome and outcome.action in (Action.RAISED, Action.CLEARED):
            actions.append(outcome.action)
        if outcome and outcome.action is Action.UPDATED and outcome.stressed and not actions:
            actions.append(Action.RAISED)
    assert actions.count(Action.RAISED) <= 1, actions
    assert actions.count(Action.CLEARED) <= 1, actions


@given(st.lists(unit, min_size=1, max_size=40))
def test_hysteresis_band_holds_for_any_stress_sequence(stresses):
    """A change of state happens only across the band: never raised below X, never cleared above Y."""
    stressed = False
    for value in stresses:
        now = policy.stays_stressed(stressed, value, CONFIG)
        if now and not stressed:
            assert value >= CONFIG.raise_stress
        if stressed and not now:
            assert value < CONFIG.release_stress
        stressed = now


def test_replay_gives_identical_flags():
    """Determinism: the same events give the same sequence numbers, priorities and reasons."""

    def run():
        state = ConversationState("c1", tier=Tier.VIP)
        return feed(state, [turn(0.3 + 0.1 * i, at=20.0 * i) for i in range(7)], frozenset({"cancel_threat"}))

    assert run() == run()


def test_flag_sequences_follow_event_positions_so_replays_never_collide():
    """A replay that decides differently (other scores) still cannot reuse a later flag's sequence."""
    original = ConversationState("c1")
    first = original.customer_message(turn(0.9, at=1), frozenset(), CONFIG, sequence=11)
    second = original.customer_message(turn(0.2, 0.1, at=2), frozenset(), CONFIG, sequence=12)
    assert (first.sequence, first.action) == (11, Action.RAISED)
    assert second is not None and second.sequence == 12

    replayed = ConversationState("c1")
    again = replayed.customer_message(turn(0.9, at=1), frozenset(), CONFIG, sequence=11)
    assert again.sequence == 11
    assert replayed.customer_message(turn(0.85, 0.1, at=2), frozenset(), CONFIG, sequence=12) is None
    withdrawn = replayed.close(CloseKind.CLOSED, sequence=13)
    assert withdrawn.sequence == 13 > second.sequence


def test_state_read_back_never_changes_the_stored_value():
    """The stored dict may be a queued changelog record: changing the state must not touch it."""
    state = ConversationState("c1")
    feed(state, [turn(0.9, at=1)], frozenset({"legal"}))
    state.remember("e1")
    stored = state.to_dict()
    again = ConversationState.from_dict(stored)
    again.remember("e2")
    again.customer_message(turn(0.1, at=2), frozenset({"cancel_threat"}), CONFIG)
    assert stored["seen"] == ["e1"] and stored["cues"] == ["legal"] and len(stored["turns"]) == 1
