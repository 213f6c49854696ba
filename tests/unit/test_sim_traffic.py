"""The simulator's traffic generator: seeded, realistic, valid per the shared validator."""

from __future__ import annotations

import collections
import re

import pytest
from cctriage.events.v1 import events_pb2
from cctriage_common.events import validate
from cctriage_sim import texts
from cctriage_sim.traffic import STRESSED_PERSONAS, TrafficGenerator

Channel = events_pb2.Channel
CUSTOMER = events_pb2.AUTHOR_ROLE_CUSTOMER
AGENT = events_pb2.AUTHOR_ROLE_AGENT


def stream(seed: int = 11, until: float = 600.0, **kwargs) -> tuple[TrafficGenerator, list]:
    generator = TrafficGenerator(seed=seed, **kwargs)
    return generator, list(generator.events(until))


def by_conversation(events) -> dict[str, list[events_pb2.SupportEvent]]:
    grouped: dict[str, list] = collections.defaultdict(list)
    for _, event in events:
        grouped[event.conversation_id].append(event)
    return grouped


def customer_texts(events: list[events_pb2.SupportEvent]) -> list[str]:
    return [
        e.message_posted.text
        for e in events
        if e.WhichOneof("payload") == "message_posted" and e.message_posted.author_role == CUSTOMER
    ]


def test_same_seed_same_stream_other_seed_other_stream():
    _, first = stream(seed=5, until=300)
    _, again = stream(seed=5, until=300)
    _, other = stream(seed=6, until=300)
    assert [(t, e.SerializeToString(deterministic=True)) for t, e in first] == [
        (t, e.SerializeToString(deterministic=True)) for t, e in again
    ]
    assert [e.message_posted.text for _, e in first][:50] != [e.message_posted.text for _, e in other][:50]


def test_every_event_passes_the_shared_validator():
    generator, events = stream(until=900)
    now = generator.start.timestamp() + 900
    problems = {e.event_id: validate(e, now=now) for _, e in events}
    assert {k: v for k, v in problems.items() if v} == {}
    assert len({e.event_id for _, e in events}) == len(events), "event ids must be unique"


def test_conversations_are_well_formed_and_in_time_order():
    generator, events = stream(until=900)
    assert [t for t, _ in events] == sorted(t for t, _ in events)
    finished = 0
    for conversation_id, conv in by_conversation(events).items():
        kinds = [e.WhichOneof("payload") for e in conv]
        assert kinds[0] == "conversation_opened", conversation_id
        if "conversation_closed" in kinds:
            finished += 1
            assert kinds[-1] == "conversation_closed" and kinds.count("conversation_closed") == 1
            assert kinds.count("agent_joined") == 1
        joined = kinds.index("agent_joined") if "agent_joined" in kinds else len(kinds)
        agent_messages = [
            i
            for i, e in enumerate(conv)
            if kinds[i] == "message_posted" and e.message_posted.author_role == AGENT
        ]
        assert all(i > joined for i in agent_messages), "an agent writes only after joining"
        assert {e.queue for e in conv} == {conv[0].conversation_opened.required_skills[0]}
        assert len({e.customer.customer_id for e in conv}) == 1
    assert finished > 50


def test_all_channels_with_their_own_style():
    _, events = stream(until=900)
    opened = [e for _, e in events if e.WhichOneof("payload") == "conversation_opened"]
    mix = collections.Counter(e.channel for e in opened)
    assert set(mix) == {
        Channel.CHANNEL_CHAT,
        Channel.CHANNEL_EMAIL,
        Channel.CHANNEL_VOICE,
        Channel.CHANNEL_SOCIAL,
        Channel.CHANNEL_SMS,
    }
    assert mix.most_common(1)[0][0] == Channel.CHANNEL_CHAT

    messages = [e for _, e in events if e.WhichOneof("payload") == "message_posted"]
    voice = [m.message_posted for m in messages if m.channel == Channel.CHANNEL_VOICE]
    assert voice and all(m.text == m.text.lower() and not re.search(r"[.,!?]", m.text) for m in voice)
    assert all(0.5 < m.transcript_confidence <= 1.0 for m in voice)
    assert any(set(m.text.split()) & set(texts.VOICE_FILLERS) for m in voice), "transcripts carry fillers"
    email = [
        m.message_posted.text
        for m in messages
        if m.channel == Channel.CHANNEL_EMAIL
        and m.message_posted.author_role == CUSTOMER
        and m.customer.language == "en"
    ]
    assert email and all("\n\n" in text for text in email), "e-mails have a greeting and a sign-off"
    social = [
        m.message_posted.text
        for m in messages
        if m.channel == Channel.CHANNEL_SOCIAL and m.message_posted.author_role == CUSTOMER
    ]
    assert social and all(text.startswith(texts.SOCIAL_HANDLE) for text in social)


def test_escalating_customers_climb_to_a_threat_while_nobody_helps():
    generator, events = stream(until=900)
    conversations = by_conversation(events)
    escalating = [
        cid
        for cid, plan in generator.plans.items()
        if plan.persona == "escalating"
        and plan.language == "en"
        and "agent_joined" in {e.WhichOneof("payload") for e in conversations.get(cid, [])}
    ]
    assert len(escalating) >= 5
    threats = [t.lower() for t in texts.THREAT]
    for cid in escalating:
        conv = conversations[cid]
        kinds = [e.WhichOneof("payload") for e in conv]
        before = customer_texts(conv[: kinds.index("agent_joined")])
        # The first message is a plain request, the threat comes later, before any agent.
        assert not _matches(before[0], threats)
        assert any(_matches(text, threats) for text in before[1:]), cid


def test_calming_customers_calm_down_after_an_agent_joins():
    generator, events = stream(until=900)
    conversations = by_conversation(events)
    calming = [
        cid
        for cid, plan in generator.plans.items()
        if plan.persona == "calming"
        and "conversation_closed" in {e.WhichOneof("payload") for e in conversations.get(cid, [])}
    ]
    assert len(calming) >= 3
    calm = [t.lower() for t in texts.CALMING]
    angry = [t.lower() for t in texts.ANGRY]
    for cid in calming:
        conv = conversations[cid]
        joined = [e.WhichOneof("payload") for e in conv].index("agent_joined")
        assert any(_matches(text, angry) for text in customer_texts(conv[:joined]))
        assert any(_matches(text, calm) for text in customer_texts(conv[joined:]))


def test_repeat_contacts_say_so_and_carry_prior_contacts_and_the_previous_agent():
    generator, events = stream(until=1200, agent_ids=["agent-01", "agent-02"])
    opened = {e.conversation_id: e for _, e in events if e.WhichOneof("payload") == "conversation_opened"}
    repeat = [cid for cid, plan in generator.plans.items() if plan.persona == "repeat"]
    assert len(repeat) >= 5
    assert all(opened[cid].conversation_opened.prior_contact_count >= 2 for cid in repeat)
    assert any(opened[cid].conversation_opened.previous_agent_id for cid in repeat)
    first = customer_texts(by_conversation(events)[repeat[0]])[0].lower()
    assert _matches(first, [t.lower() for t in texts.REPEAT])
    calm = [cid for cid in opened if generator.plans[cid].persona == "plain"]
    assert all(opened[cid].conversation_opened.prior_contact_count == 0 for cid in calm)


def test_mix_of_personas_tiers_and_languages():
    generator, _ = stream(until=1200)
    plans = list(generator.plans.values())
    personas = collections.Counter(p.persona for p in plans)
    assert set(personas) == {"plain", "tricky_calm", "escalating", "calming", "repeat", "anxious"}
    stressed = sum(personas[p] for p in STRESSED_PERSONAS) / len(plans)
    assert 0.3 < stressed < 0.65, "most conversations are calm, a real share is not"
    tiers = collections.Counter(p.customer_tier for p in plans)
    assert set(tiers) == {
        events_pb2.CUSTOMER_TIER_STANDARD,
        events_pb2.CUSTOMER_TIER_PREMIUM,
        events_pb2.CUSTOMER_TIER_VIP,
    }
    languages = collections.Counter(p.language for p in plans)
    assert languages.most_common(1)[0][0] == "en" and len(languages) >= 2


@pytest.mark.parametrize("rate", [4.0, 16.0])
def test_the_stream_settles_at_the_configured_rate(rate):
    _, events = stream(seed=2, until=1500, rate=rate)
    # Conversations last a minute or two: measure after the ramp-up.
    steady = [t for t, _ in events if 300 <= t < 1500]
    assert len(steady) / 1200 == pytest.approx(rate, rel=0.2)
    # Warm start: the contact centre is already busy, the first half minute is near the rate too.
    early = [t for t, _ in events if t < 30]
    assert len(early) / 30 == pytest.approx(rate, rel=0.35)


def test_a_routed_agent_joining_cuts_the_wait_short_and_writes_as_itself():
    generator = TrafficGenerator(seed=3, rate=8)
    escalating = None
    published = []
    t = 0.0
    while escalating is None or t < 120:
        t += 0.5
        published += generator.pop_due(t)
        if escalating is None:
            escalating = next((cid for cid, p in generator.plans.items() if p.persona == "escalating"), None)
            if escalating:
                opened_at = t
    assert escalating is not None
    # Replay it: a fresh generator with the same seed, with a routed agent joining 5 s after opening.
    generator = TrafficGenerator(seed=3, rate=8)
    events = []
    t = 0.0
    joined = False
    while t < 200:
        t += 0.5
        events += generator.pop_due(t)
        if not joined and t >= opened_at + 5:
            assert generator.agent_joined(escalating, "agent-senior-1", t)
            assert not generator.agent_joined(escalating, "agent-other", t), "a conversation is joined once"
            joined = True
    conv = [e for _, e in events if e.conversation_id == escalating]
    kinds = [e.WhichOneof("payload") for e in conv]
    assert kinds.count("agent_joined") == 1 and conv[kinds.index("agent_joined")].agent_joined.agent_id == (
        "agent-senior-1"
    )
    assert kinds[-1] == "conversation_closed"
    plan = generator.plans[escalating]
    joined_index = kinds.index("agent_joined")
    # Pre-agent turns still pending at the join were dropped, not sent after the agent.
    assert joined_index - 1 < len(plan.before_agent) + 1
    agent_ids = {
        e.message_posted.author_id
        for e in conv[joined_index:]
        if kinds[conv.index(e)] == "message_posted" and e.message_posted.author_role == AGENT
    }
    assert agent_ids == {"agent-senior-1"}
    assert not generator.agent_joined("no-such-conversation", "agent-senior-1", t)


def test_invalid_rate_or_pace_is_refused_with_its_name():
    with pytest.raises(ValueError, match="rate"):
        TrafficGenerator(rate=0)
    with pytest.raises(ValueError, match="pace"):
        TrafficGenerator(pace=-1)


def _matches(text: str, bank: list[str]) -> bool:
    """Does a styled message come from one of the bank's templates (ignoring slots and styling)?"""
    words = set(re.findall(r"[a-z']+", text.lower()))
    for template in bank:
        fixed = [w for w in re.findall(r"[a-z']+", re.sub(r"\{\w+\}", " ", template)) if len(w) > 3]
        if fixed and sum(w in words for w in fixed) >= 0.7 * len(fixed):
            return True
    return False
