"""The simulated agent pool's roster and behaviour (no server needed)."""

from __future__ import annotations

import collections
import random

import pytest
from cctriage.events.v1 import events_pb2
from cctriage.routing.v1 import routing_pb2
from cctriage_sim.agents import HANDLE_SECONDS, SKILLS, AgentBehaviour, build_roster


def test_roster_has_every_tier_and_seniors_cover_every_skill():
    roster = build_roster(20, seed=1)
    tiers = collections.Counter(agent.tier for agent in roster)
    assert tiers == {1: 6, 2: 7, 3: 7}
    seniors = [agent for agent in roster if agent.tier == 1]
    for skill in SKILLS:
        assert any(max(a.skills, key=a.skills.get) == skill for a in seniors), skill
    assert all(set(a.skills) == set(SKILLS) for a in roster if a.tier <= 2), "tiers 1 and 2 cover every skill"
    best = {t: sum(max(a.skills.values()) for a in roster if a.tier == t) / tiers[t] for t in tiers}
    assert best[1] > best[2] > best[3], "seniority comes with proficiency"
    assert all(a.capacities[events_pb2.CHANNEL_VOICE] == 1 for a in roster)
    assert all("en" in a.languages for a in roster)
    for tier in (1, 2, 3):
        spoken = {lang for a in roster if a.tier == tier for lang in a.languages}
        assert spoken == {"en", "de", "es"}, f"tier {tier} speaks {spoken}"
    assert len({a.agent_id for a in roster}) == 20
    assert build_roster(20, seed=1) == roster


@pytest.mark.parametrize("count", [1, 2, 3, 50])
def test_small_and_large_pools_always_have_a_senior(count):
    roster = build_roster(count)
    assert len(roster) == count
    assert any(agent.tier == 1 for agent in roster)


def test_zero_agents_is_refused():
    with pytest.raises(ValueError, match="agents"):
        build_roster(0)


def test_login_request_carries_the_profile():
    agent = build_roster(5)[0]
    request = agent.login_request("acme-telecom")
    assert request.agent_id == agent.agent_id and request.tier == 1 and request.tenant_id == "acme-telecom"
    assert {s.skill: s.proficiency for s in request.skills} == agent.skills
    assert {c.channel: c.capacity for c in request.capacities} == agent.capacities
    assert list(request.languages) == list(agent.languages)


def test_most_offers_are_accepted_some_declined_some_left_to_time_out():
    behaviour = AgentBehaviour(random.Random(4))
    offer = routing_pb2.Offer(offer_id="o1", conversation_id="c1", stressed=True)
    reactions = [behaviour.react(offer) for _ in range(2000)]
    share = collections.Counter(r.action for r in reactions)
    assert share["accept"] / 2000 == pytest.approx(0.88, abs=0.03)
    assert share["decline"] / 2000 == pytest.approx(0.06, abs=0.02)
    assert share["ignore"] / 2000 == pytest.approx(0.06, abs=0.02)
    assert all(r.reason for r in reactions if r.action == "decline")
    # Answers come within the few seconds an offer stays open.
    assert all(0 < r.delay <= 2.5 for r in reactions if r.action == "accept")


def test_behaviour_is_seeded():
    offer = routing_pb2.Offer(offer_id="o1")
    one, two, other = (AgentBehaviour(random.Random(s)) for s in (9, 9, 10))
    assert [one.react(offer) for _ in range(50)] == [two.react(offer) for _ in range(50)]
    assert [one.react(offer) for _ in range(50)] != [other.react(offer) for _ in range(50)]


def test_work_and_wrap_up_times_follow_the_channel_and_the_pace():
    normal, slow = AgentBehaviour(random.Random(1)), AgentBehaviour(random.Random(1), pace=2.0)
    for channel, (lo, hi) in HANDLE_SECONDS.items():
        times = [normal.handle_seconds(channel) for _ in range(200)]
        assert lo <= min(times) and max(times) <= hi
        assert all(lo * 2 <= slow.handle_seconds(channel) <= hi * 2 for _ in range(50))
    assert all(1 <= normal.wrap_up_seconds() <= 10 for _ in range(200))


def test_shares_that_do_not_add_up_are_refused():
    with pytest.raises(ValueError, match="accept"):
        AgentBehaviour(random.Random(1), accept=0.9, decline=0.2)
