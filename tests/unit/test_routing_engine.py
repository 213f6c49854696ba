"""Matching rules of the routing engine, one test per rule, plus hypothesis properties."""

from __future__ import annotations

import pytest
from cctriage_routing.engine import (
    ACCEPTED,
    ASSIGNED,
    AVAILABLE,
    AWAY,
    BUSY,
    CLOSED,
    D_OFFERED,
    OFFERED,
    WAITING,
    WITHDRAWN,
    WRAP_UP,
    Engine,
    RouteRequest,
    RoutingConfig,
    RoutingError,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CHAT, VOICE = 1, 3


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(**config) -> tuple[Engine, Clock]:
    clock = Clock()
    return Engine(RoutingConfig(**config), clock=clock), clock


def login(
    e: Engine, agent_id: str, tier: int = 1, chat: int = 1, skills=(("billing", 5),), langs=("en",), **kw
):
    return e.login(agent_id, "t", tier, list(skills), list(langs), [(CHAT, chat)], **kw)


def route(e: Engine, conv_id: str, priority: int = 50, stressed: bool = False, skills=(), lang="en", **kw):
    fields = dict(
        conversation_id=conv_id,
        tenant_id="t",
        queue="q",
        channel=CHAT,
        priority=priority,
        stress=0.9 if stressed else 0.1,
        stressed=stressed,
        skills=tuple(skills),
        language=lang,
        idempotency_key=kw.pop("key", f"k-{conv_id}"),
    )
    fields.update(kw)
    return e.route(RouteRequest(**fields))


def offered_to(e: Engine, conv_id: str) -> str:
    conv = e.conversations[conv_id]
    return conv.agent_id if conv.status == OFFERED else ""


def accept(e: Engine, conv_id: str) -> None:
    conv = e.conversations[conv_id]
    e.accept(conv.agent_id, conv.offer_id)


# ---------------------------------------------------------------------------- rules


def test_stressed_conversation_goes_to_the_most_senior_agent_first():
    e, _ = make()
    login(e, "junior", tier=3)
    login(e, "senior", tier=1, chat=5)
    route(e, "c1", stressed=True)
    assert offered_to(e, "c1") == "senior"


def test_bullseye_widens_tier_by_tier_after_the_timeout():
    e, clock = make(bullseye_widen_seconds=10)
    login(e, "mid", tier=2)
    login(e, "junior", tier=3)
    route(e, "c1", stressed=True)
    assert e.conversations["c1"].status == WAITING  # no tier-1 agent: waits at first
    clock.advance(10)
    e.tick()
    assert offered_to(e, "c1") == "mid"  # tier 2 reached after one step, not tier 3
    assert "bullseye tier 2" in e.offers[e.conversations["c1"].offer_id].reason


def test_calm_conversation_prefers_junior_agents():
    e, _ = make()
    login(e, "senior", tier=1, chat=5)
    login(e, "junior", tier=3)
    route(e, "c1")
    assert offered_to(e, "c1") == "junior"


def test_skills_with_proficiency_and_language_must_match():
    e, _ = make()
    login(e, "weak", tier=1, skills=(("billing", 2),))
    login(e, "german", tier=1, skills=(("billing", 9),), langs=("de",))
    login(e, "right", tier=1, skills=(("billing", 7),))
    route(e, "c1", stressed=True, skills=(("billing", 5),))
    assert offered_to(e, "c1") == "right"
    route(e, "c2", stressed=True, skills=(("fraud", 1),))
    assert e.conversations["c2"].status == WAITING


def test_capacity_per_channel_is_never_exceeded():
    e, _ = make(reserve_share=0)
    login(e, "a", chat=2)
    for i in range(4):
        route(e, f"c{i}")
    assert sum(1 for c in e.conversations.values() if c.status == OFFERED) == 2
    assert e.agents["a"].load[CHAT] == 2
    e.check_invariants()


def test_last_agent_preference_beats_tier_order_and_idle_order():
    e, _ = make()
    login(e, "junior", tier=3, chat=3)  # calm customers normally go junior first
    login(e, "previous", tier=2)
    route(e, "c1", previous_agent_id="previous")
    assert offered_to(e, "c1") == "previous"
    assert "last agent" in e.offers[e.conversations["c1"].offer_id].reason


def test_last_agent_outside_the_bullseye_does_not_take_a_stressed_customer():
    e, _ = make()
    login(e, "senior", tier=1, chat=3)
    login(e, "previous", tier=3)
    route(e, "c1", stressed=True, previous_agent_id="previous")
    assert offered_to(e, "c1") == "senior"


def test_reserve_keeps_senior_capacity_for_stressed_customers():
    e, _ = make(reserve_share=0.5)
    login(e, "senior", tier=1, chat=4)  # 4 slots, 2 reserved
    for i in range(4):
        route(e, f"calm{i}")
    calm_offered = [c for c in e.conversations.values() if c.status == OFFERED]
    assert len(calm_offered) == 2  # calm ones stop at the reserve
    route(e, "angry", stressed=True)
    assert offered_to(e, "angry") == "senior"
    offer = e.offers[e.conversations["angry"].offer_id]
    assert offer.reason_code == "reserve" and offer.reason.endswith("reserve, least recently offered")


def test_fair_spread_offers_the_least_recently_offered_agent():
    e, _ = make(reserve_share=0)
    for name in ("a", "b", "c"):
        login(e, name, tier=2, chat=3)
    got = []
    for i in range(6):
        route(e, f"c{i}")
        got.append(offered_to(e, f"c{i}"))
    assert got == ["a", "b", "c", "a", "b", "c"]


def test_aging_lets_an_old_low_priority_conversation_beat_new_urgent_ones():
    e, clock = make(aging_per_second=1.0)
    route(e, "old", priority=10)
    clock.advance(100)  # effective 110 now
    route(e, "new", priority=100)
    login(e, "a", tier=3)
    assert offered_to(e, "old") == "a"
    assert e.conversations["new"].status == WAITING


def test_priority_orders_conversations_of_equal_wait():
    e, _ = make()
    route(e, "low", priority=10)
    route(e, "high", priority=90)
    login(e, "a", tier=3)
    assert offered_to(e, "high") == "a"


def test_offer_timeout_moves_the_offer_to_the_next_agent():
    e, clock = make(offer_timeout_seconds=5, reserve_share=0)
    login(e, "a", tier=2)
    route(e, "c1")
    login(e, "b", tier=2)
    assert offered_to(e, "c1") == "a"
    clock.advance(5)
    e.tick()
    assert offered_to(e, "c1") == "b"
    assert e.agents["a"].missed_offers == 1


def test_missed_offers_set_the_agent_away():
    e, clock = make(offer_timeout_seconds=5, max_missed_offers=2)
    login(e, "a", tier=3)
    for i in range(2):
        route(e, f"c{i}")
        clock.advance(5)
        e.tick()
    assert e.agents["a"].state == AWAY and e.agents["a"].state_reason == "missed offers"
    assert all(c.status == WAITING for c in e.conversations.values())


def test_decline_offers_the_conversation_to_someone_else():
    e, _ = make(reserve_share=0)
    login(e, "a", tier=2)
    login(e, "b", tier=2)
    route(e, "c1")
    first = offered_to(e, "c1")
    e.decline(first, e.conversations["c1"].offer_id)
    assert offered_to(e, "c1") not in ("", first)


def test_accept_assigns_and_complete_frees_capacity_with_wrap_up():
    e, clock = make(wrap_up_seconds=10, reserve_share=0)
    login(e, "a", tier=2)
    route(e, "c1")
    accept(e, "c1")
    assert e.conversations["c1"].status == ASSIGNED
    route(e, "c2")
    assert e.conversations["c2"].status == WAITING
    e.complete("a", "c1")
    assert e.agents["a"].state == WRAP_UP and e.conversations["c2"].status == WAITING
    clock.advance(10)
    e.tick()
    assert e.agents["a"].state == AVAILABLE and offered_to(e, "c2") == "a"


def test_transfer_to_a_named_colleague_and_back_to_the_queue():
    e, _ = make(reserve_share=0)
    login(e, "a", tier=2)
    route(e, "c1")
    accept(e, "c1")
    login(e, "b", tier=2)
    e.transfer("a", "c1", target_agent_id="b")
    assert offered_to(e, "c1") == "b"
    accept(e, "c1")
    e.transfer("b", "c1", skills=[("billing", 1)])
    assert offered_to(e, "c1") == "a"  # b is excluded for a while, a is free again


def test_idempotency_key_never_yields_two_assignments():
    e, _ = make()
    login(e, "a", tier=3, chat=5)
    first = route(e, "c1", key="same")
    again = route(e, "c1-other-id", key="same")
    assert again.duplicate and again.conversation_id == "c1"
    assert len(e.offers) == 1 and "c1-other-id" not in e.conversations
    assert first.agent_id == "a"


def test_stale_updates_and_withdrawals_are_no_ops():
    e, _ = make()
    route(e, "c1", sequence=5)
    assert e.update("c1", 4, 90, 0.9, True).stale
    assert e.conversations["c1"].priority == 50
    assert e.withdraw("c1", 5, CLOSED).stale
    assert e.conversations["c1"].status == WAITING
    assert e.withdraw("c1", 6, CLOSED).status == WITHDRAWN
    assert "c1" not in e.conversations


def test_update_to_stressed_goes_straight_to_a_senior():
    e, _ = make()
    login(e, "senior", tier=1, chat=1)
    route(e, "c1", sequence=1)  # calm: senior has 1 slot and the reserve keeps it
    assert e.conversations["c1"].status == WAITING
    e.update("c1", 2, 80, 0.95, True)
    assert offered_to(e, "c1") == "senior"


def test_withdraw_revokes_an_outstanding_offer():
    e, _ = make()
    login(e, "a", tier=3)
    route(e, "c1", sequence=1)
    e.drain()
    e.withdraw("c1", 2, CLOSED)
    _, events = e.drain()
    assert any(ev[0] == "revoke" for ev in events)
    assert e.agents["a"].load[CHAT] == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(tier=0), "tier must be 1..3"),
        (dict(tier=4), "tier must be 1..3"),
        (dict(capacities=[(CHAT, 0)]), "capacities[0].capacity must be positive"),
        (dict(capacities=[(CHAT, -1)]), "capacities[0].capacity must be positive"),
        (dict(agent_id=""), "agent_id is required"),
        (dict(languages=[]), "languages must name"),
    ],
)
def test_login_rejects_bad_profiles(kwargs, message):
    e, _ = make()
    args = dict(agent_id="a", tenant_id="t", tier=1, skills=[], languages=["en"], capacities=[(CHAT, 1)])
    args.update(kwargs)
    with pytest.raises(RoutingError) as err:
        e.login(**args)
    assert err.value.code == "INVALID_ARGUMENT" and message in err.value.message


def test_duplicate_login_and_unknown_ids_are_refused():
    e, _ = make()
    login(e, "a")
    with pytest.raises(RoutingError) as err:
        login(e, "a")
    assert err.value.code == "ALREADY_EXISTS"
    with pytest.raises(RoutingError) as err:
        e.set_state("ghost", BUSY)
    assert err.value.code == "NOT_FOUND" and "unknown agent ghost" in err.value.message
    with pytest.raises(RoutingError) as err:
        e.update("nope", 1, 10, 0.1, False)
    assert err.value.code == "NOT_FOUND" and "unknown conversation nope" in err.value.message
    with pytest.raises(RoutingError) as err:
        e.accept("a", "o-nope")
    assert err.value.code == "NOT_FOUND"


def test_an_agent_cannot_accept_another_agents_offer():
    e, _ = make()
    login(e, "a", tier=3)
    login(e, "b", tier=1)
    route(e, "c1")
    with pytest.raises(RoutingError) as err:
        e.accept("b", e.conversations["c1"].offer_id)
    assert err.value.code == "PERMISSION_DENIED"


def test_every_offer_explains_itself():
    e, clock = make()
    login(e, "a", tier=1, chat=3, skills=(("billing", 5),))
    route(e, "c1", stressed=True, skills=(("billing", 3),), flagged_at=clock.now - 12)
    decisions, _ = e.drain()
    offered = [d for d in decisions if d.kind == D_OFFERED]
    assert offered[0].reason.startswith("tier 1, skill billing 5, language en, waited 12 s")


# ---------------------------------------------------------------------------- properties

ops = st.lists(
    st.one_of(
        st.tuples(st.just("route"), st.integers(0, 100), st.booleans(), st.sampled_from(["en", "de"])),
        st.tuples(st.just("login"), st.integers(1, 3), st.integers(1, 3), st.sampled_from(["en", "de"])),
        st.tuples(st.just("accept"), st.integers(0, 50)),
        st.tuples(st.just("decline"), st.integers(0, 50)),
        st.tuples(st.just("complete"), st.integers(0, 50)),
        st.tuples(st.just("state"), st.integers(0, 50), st.sampled_from([AVAILABLE, BUSY, AWAY])),
        st.tuples(st.just("time"), st.floats(0, 40)),
        st.tuples(st.just("withdraw"), st.integers(0, 50)),
    ),
    max_size=60,
)


def _run(e: Engine, clock: Clock, program) -> None:
    n = 0
    for op in program:
        kind = op[0]
        agents = sorted(e.agents)
        try:
            if kind == "route":
                n += 1
                route(e, f"c{n}", priority=op[1], stressed=op[2], lang=op[3], sequence=1)
            elif kind == "login":
                e.login(f"a{len(e.agents)}", "t", op[1], [], [op[3]], [(CHAT, op[2])])
            elif kind in ("accept", "decline") and e.offers:
                offer = sorted(e.offers.values(), key=lambda o: o.offer_id)[op[1] % len(e.offers)]
                getattr(e, kind)(offer.agent_id, offer.offer_id)
            elif kind == "complete" and agents:
                agent = e.agents[agents[op[1] % len(agents)]]
                if agent.conversations:
                    e.complete(agent.agent_id, next(iter(agent.conversations)))
            elif kind == "state" and agents:
                e.set_state(agents[op[1] % len(agents)], op[2])
            elif kind == "time":
                clock.advance(op[1])
                e.tick()
            elif kind == "withdraw" and e.conversations:
                conv = sorted(e.conversations)[op[1] % len(e.conversations)]
                e.withdraw(conv, 2, CLOSED)
        except RoutingError:
            pass
        e.check_invariants()
        for offer in e.offers.values():
            # Offers go only to available agents; going busy/away/offline takes them back
            # (an agent in wrap-up keeps an offer made just before it).
            assert e.agents[offer.agent_id].state in (AVAILABLE, WRAP_UP)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=ops)
def test_property_never_over_capacity_and_never_an_unavailable_agent(program):
    e, clock = make(offer_timeout_seconds=10, reoffer_cooldown_seconds=5)
    decisions_seen = []
    _run(e, clock, program)
    decisions_seen.extend(e.drain()[0])
    for d in decisions_seen:
        if d.kind == D_OFFERED:
            assert d.agent_id in e.agents


@settings(max_examples=100, deadline=None)
@given(
    program=st.lists(st.tuples(st.integers(0, 100), st.booleans()), min_size=1, max_size=40),
    capacity=st.integers(1, 10),
    share=st.sampled_from([0.1, 0.2, 0.5]),
)
def test_property_the_reserve_holds(program, capacity, share):
    """Calm conversations never take the reserved share of senior capacity."""
    import math

    e, _ = make(reserve_share=share, tiers=1, senior_tiers=1)
    e.login("s", "t", 1, [], ["en"], [(CHAT, capacity)])
    for i, (priority, stressed) in enumerate(program):
        route(e, f"c{i}", priority=priority, stressed=stressed)
        calm_on_senior = sum(
            1 for c in e.conversations.values() if c.status in (OFFERED, ASSIGNED) and not c.stressed
        )
        assert calm_on_senior <= capacity - math.ceil(share * capacity)
        e.check_invariants()


@settings(max_examples=60, deadline=None)
@given(
    old_priority=st.integers(0, 100),
    arrivals=st.lists(st.integers(0, 100), min_size=1, max_size=30),
    gap=st.floats(0.5, 5),
)
def test_property_aging_prevents_starvation(old_priority, arrivals, gap):
    """A waiting conversation is served within (100 - priority) / aging seconds of its peers' arrival."""
    e, clock = make(aging_per_second=1.0, reserve_share=0)
    route(e, "old", priority=old_priority)
    clock.advance(101)  # effective priority > 100: beats any newcomer
    for i, p in enumerate(arrivals):
        route(e, f"new{i}", priority=p)
        clock.advance(gap)
    login(e, "a", tier=3)
    assert offered_to(e, "old") == "a"
    decisions, _ = e.drain()
    assert [d.conversation_id for d in decisions if d.kind == D_OFFERED] == ["old"]
    assert ACCEPTED not in {d.kind for d in decisions}


def test_oldest_wait_by_band_counts_only_customers_not_yet_accepted():
    e, clock = make()
    route(e, "urgent-waiting", priority=90, stressed=True)  # nobody logged in: it waits
    clock.advance(30)
    route(e, "low-waiting", priority=10)
    clock.advance(45)
    assert e.oldest_wait_by_band() == [45.0, 0.0, 0.0, 75.0]
    login(e, "senior", tier=1, chat=5)
    accept(e, "urgent-waiting")
    assert e.oldest_wait_by_band()[3] == 0.0, "an accepted customer no longer waits"
