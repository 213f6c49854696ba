"""A realistic, seeded traffic generator of support events.

Conversations arrive as a Poisson process sized so that the whole stream averages
``rate`` events per second. Each conversation follows a persona:

- ``plain``: asks for something, gets it, says thanks;
- ``tricky_calm``: calm, but uses words like "cancel my order", "error", "problem";
- ``escalating``: mild -> annoyed -> angry -> "cancel my account" while nobody helps;
- ``calming``: upset at first, calms down once an agent joins;
- ``repeat``: "third time I'm writing", with prior contacts and the previous agent;
- ``anxious``: worried, with real stakes ("my rent is due").

A conversation has two phases. Before an agent joins, the customer (and a bot) write;
after, an agent writes too and the customer reacts. The agent who joins is either the one
the routing service assigned (the demo calls :meth:`TrafficGenerator.agent_joined` when a
simulated agent accepts an offer) or, if nobody did in time, a front-line agent of the
contact centre's ordinary queue. Without live joins the stream is a pure function of the
seed: the same seed gives the same events, texts, ids and timestamps.

Times are simulation seconds from the start; ``occurred_at`` is ``start + t``.
"""

from __future__ import annotations

import collections
import datetime as dt
import heapq
import itertools
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from cctriage.events.v1 import events_pb2

from . import texts

Channel = events_pb2.Channel
Role = events_pb2.AuthorRole
Tier = events_pb2.CustomerTier

PERSONA_MIX: dict[str, float] = {
    "plain": 0.40,
    "tricky_calm": 0.10,
    "escalating": 0.17,
    "calming": 0.13,
    "repeat": 0.11,
    "anxious": 0.09,
}
# Personas whose customer is stressed at some point: a supervisor wants a senior agent on them.
STRESSED_PERSONAS = frozenset({"escalating", "calming", "repeat", "anxious"})
CHANNEL_MIX: dict[int, float] = {
    Channel.CHANNEL_CHAT: 0.38,
    Channel.CHANNEL_EMAIL: 0.17,
    Channel.CHANNEL_VOICE: 0.22,
    Channel.CHANNEL_SOCIAL: 0.15,
    Channel.CHANNEL_SMS: 0.08,
}
TIER_MIX: dict[int, float] = {
    Tier.CUSTOMER_TIER_STANDARD: 0.70,
    Tier.CUSTOMER_TIER_PREMIUM: 0.22,
    Tier.CUSTOMER_TIER_VIP: 0.08,
}
LANGUAGE_MIX: dict[str, float] = {"en": 0.90, "de": 0.05, "es": 0.05}
SEGMENTS = ["consumer", "consumer", "consumer", "smb", "enterprise", "at-risk"]
# Seconds between turns, per channel (before ``pace`` scaling): chat is brisk, e-mail slow.
TURN_GAP: dict[int, tuple[float, float]] = {
    Channel.CHANNEL_CHAT: (2.0, 5.0),
    Channel.CHANNEL_SMS: (3.0, 8.0),
    Channel.CHANNEL_VOICE: (2.0, 4.5),
    Channel.CHANNEL_SOCIAL: (3.0, 8.0),
    Channel.CHANNEL_EMAIL: (6.0, 14.0),
}
# Share of the steady number of open conversations opened in the first WARM_WINDOW_S seconds.
WARM_FILL = 0.7
WARM_WINDOW_S = 10.0
FRONTLINE_AGENTS = [f"frontline-{n:02d}" for n in range(1, 13)]
BOT_ID = "bot-assist"
SOURCE = "cctriage-sim"

_CUSTOMER, _AGENT, _BOT = Role.AUTHOR_ROLE_CUSTOMER, Role.AUTHOR_ROLE_AGENT, Role.AUTHOR_ROLE_BOT
_JOINED_AGENT = "<joined agent>"  # placeholder author of agent turns, filled at join time


@dataclass(frozen=True)
class Turn:
    """One message ``gap`` seconds after the previous turn of the same phase."""

    gap: float
    role: int
    text: str


@dataclass
class ConversationPlan:
    """Everything about one conversation decided up front from the seed."""

    conversation_id: str
    persona: str
    channel: int
    queue: str
    language: str
    customer_id: str
    customer_tier: int
    segment: str
    subject: str
    prior_contact_count: int
    previous_agent_id: str
    before_agent: list[Turn]
    # Seconds after the last pre-agent turn until a front-line agent joins if nobody did.
    frontline_after: float
    frontline_agent_id: str
    after_agent: list[Turn]
    close_reason: int = events_pb2.CLOSE_REASON_RESOLVED

    @property
    def stressed(self) -> bool:
        return self.persona in STRESSED_PERSONAS


@dataclass
class _Live:
    plan: ConversationPlan
    phase: int = 0  # bumped on join: pending pre-agent turns are dropped
    event_counter: itertools.count = field(default_factory=itertools.count)
    joined_by: str = ""
    closed: bool = False


def _pick(rng: random.Random, mix: dict) -> object:
    keys = list(mix)
    return rng.choices(keys, weights=[mix[k] for k in keys])[0]


class _Styler:
    """Turns a chat-style text into how it arrives on the conversation's channel."""

    _punct = re.compile(r"[^\w\s'@#]")

    def __init__(self, rng: random.Random, channel: int, language: str) -> None:
        self.rng = rng
        self.channel = channel
        self.language = language

    def customer(self, text: str, upset: bool = False) -> str:
        rng = self.rng
        if self.channel == Channel.CHANNEL_VOICE:
            return self.voice(text)
        if self.channel == Channel.CHANNEL_EMAIL and self.language == "en":
            body = text
            if rng.random() < 0.5:
                body += " " + rng.choice(texts.DETAIL).format(
                    ref=_ref(rng), digits=_digits(rng), day=rng.choice(texts.DAYS)
                )
            return f"{rng.choice(texts.EMAIL_GREETING)}\n\n{body}\n\n{rng.choice(texts.EMAIL_SIGNOFF)}"
        if self.channel == Channel.CHANNEL_SOCIAL:
            tags = texts.SOCIAL_TAGS_UPSET if upset else texts.SOCIAL_TAGS_CALM
            tail = f" {rng.choice(tags)}" if rng.random() < 0.6 else ""
            return f"{texts.SOCIAL_HANDLE} {text}{tail}"
        if self.channel in (Channel.CHANNEL_CHAT, Channel.CHANNEL_SMS) and rng.random() < 0.3:
            # People type in lower case and drop the final full stop.
            return text.lower().rstrip(".")
        return text

    def agent(self, text: str) -> str:
        if self.channel == Channel.CHANNEL_VOICE:
            return self.voice(text, fillers=0.1)
        return text

    def voice(self, text: str, fillers: float = 0.3) -> str:
        rng = self.rng
        words = self._punct.sub(" ", text.lower()).split()
        out: list[str] = []
        for word in words:
            if rng.random() < fillers / 6:
                out.append(rng.choice(texts.VOICE_FILLERS))
            bare = word.strip("'")
            if bare in texts.VOICE_MISHEARD and rng.random() < 0.3:
                word = texts.VOICE_MISHEARD[bare]
            out.append(word)
        if rng.random() < fillers:
            out.insert(0, rng.choice(texts.VOICE_FILLERS))
        return " ".join(out)


def _ref(rng: random.Random) -> str:
    return f"{rng.choice('ABCDEFGHJKLMNPQRSTUVWXYZ')}{rng.randrange(100000, 999999)}"


def _digits(rng: random.Random) -> str:
    return f"{rng.randrange(1000, 9999)}"


class TrafficGenerator:
    """Seeded stream of SupportEvents; see the module docstring.

    ``rate`` is the average number of events per second over the whole stream; ``pace``
    scales the gaps between turns (2.0 = conversations last twice as long).
    """

    def __init__(
        self,
        seed: int = 1,
        rate: float = 8.0,
        run_id: str | None = None,
        start: dt.datetime | None = None,
        agent_ids: Sequence[str] = (),
        pace: float = 1.0,
        tenant_id: str = "acme-telecom",
        warm_start: bool = True,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        if pace <= 0:
            raise ValueError(f"pace must be positive, got {pace}")
        self.seed = seed
        self.rate = rate
        self.pace = pace
        self.run_id = run_id if run_id is not None else f"sim{seed}"
        self.tenant_id = tenant_id
        self.start = start or dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
        self.agent_ids = list(agent_ids)
        self._rng = random.Random(seed)
        self.mean_events_per_conversation, self.mean_conversation_seconds = self._calibrate()
        self.conversation_rate = rate / self.mean_events_per_conversation
        self._arrivals = random.Random(seed ^ 0x5EED)
        self._poisson_next = 0.0
        # A warm start: the contact centre is already busy when the run begins, so the stream is
        # near its rate within seconds instead of after a conversation's length.
        self._warm: list[float] = []
        if warm_start:
            count = round(self.conversation_rate * self.mean_conversation_seconds * WARM_FILL)
            window = WARM_WINDOW_S * pace
            self._warm = sorted((self._arrivals.uniform(0, window) for _ in range(count)), reverse=True)
        self._conversation_seq = itertools.count(1)
        self._heap: list[tuple[float, int, str, int, str, object]] = []
        self._tiebreak = itertools.count()
        self._live: dict[str, _Live] = {}
        # Customers seen before (id, tier, segment): repeat contacts come back as them.
        self._returning: collections.deque[tuple[str, int, str]] = collections.deque(maxlen=500)
        self._last_agent: dict[str, str] = {}
        self.plans: dict[str, ConversationPlan] = {}

    # -- planning -------------------------------------------------------------------------

    def _calibrate(self) -> float:
        """Mean events per conversation, measured on a private sample of plans."""
        probe = TrafficGenerator.__new__(TrafficGenerator)
        probe.pace, probe.agent_ids, probe.run_id = self.pace, self.agent_ids, "probe"
        probe._returning, probe._last_agent = collections.deque(), {}
        rng = random.Random(self.seed + 7919)
        plans = [probe._plan(rng, f"probe-{n}") for n in range(400)]
        # opened + turns + agent joined + closed
        events = sum(len(p.before_agent) + len(p.after_agent) + 3 for p in plans) / len(plans)
        seconds = sum(
            sum(t.gap for t in p.before_agent) + p.frontline_after + sum(t.gap for t in p.after_agent)
            for p in plans
        ) / len(plans)
        return events, seconds

    def _plan(self, rng: random.Random, conversation_id: str) -> ConversationPlan:
        persona = str(_pick(rng, PERSONA_MIX))
        channel = int(_pick(rng, CHANNEL_MIX))
        queue = rng.choice(list(texts.TOPICS))
        topic = texts.TOPICS[queue]
        language = str(_pick(rng, LANGUAGE_MIX))
        if language != "en" and persona not in ("plain", "escalating"):
            persona = "plain"
        prior, previous_agent = 0, ""
        customer_id, tier, segment = "", 0, ""
        if persona == "repeat" and self._returning and rng.random() < 0.5:
            customer_id, tier, segment = rng.choice(self._returning)
            previous_agent = self._last_agent.get(customer_id, "")
        if not customer_id:
            customer_id = f"cus-{rng.randrange(16**8):08x}"
            tier = int(_pick(rng, TIER_MIX))
            segment = rng.choice(SEGMENTS)
        if persona == "repeat":
            prior = rng.randint(2, 4)
            segment = "at-risk" if rng.random() < 0.5 else segment
            if not previous_agent and self.agent_ids and rng.random() < 0.6:
                previous_agent = rng.choice(self.agent_ids)

        style = _Styler(rng, channel, language)
        lo, hi = TURN_GAP[channel]

        def gap() -> float:
            return round(rng.uniform(lo, hi) * self.pace, 3)

        def fill(template: str) -> str:
            return template.format(
                thing=rng.choice(topic["thing"]),
                issue=rng.choice(topic["issue"]),
                ref=_ref(rng),
                digits=_digits(rng),
                day=rng.choice(texts.DAYS),
                minutes=rng.randint(5, 25),
            )

        def say(bank: list[str], upset: bool = False) -> Turn:
            return Turn(gap(), _CUSTOMER, style.customer(fill(rng.choice(bank)), upset))

        def agent_says(bank: list[str]) -> Turn:
            return Turn(gap(), _AGENT, style.agent(fill(rng.choice(bank))))

        def bot_says(bank: list[str]) -> Turn:
            return Turn(gap(), _BOT, fill(rng.choice(bank)))

        before: list[Turn] = []
        after: list[Turn] = []
        has_bot = channel in (Channel.CHANNEL_CHAT, Channel.CHANNEL_SOCIAL, Channel.CHANNEL_SMS)

        if language != "en":
            bank = texts.OTHER_LANGUAGES[language]
            before.append(say(bank["opening"]))
            if has_bot:
                before.append(bot_says(texts.BOT_GREETING))
            before.append(say(bank["detail"]))
            if persona == "escalating":
                before += [say(bank["annoyed"], True), say(bank["angry"], True), say(bank["angry"], True)]
            after = [
                agent_says(texts.AGENT_GREETING),
                agent_says(texts.AGENT_RESOLUTION[queue]),
                say(bank["thanks"]),
            ]
        else:
            if persona == "repeat":
                issue = rng.choice(topic["issue"])
                text = f"{fill(rng.choice(texts.REPEAT))} {issue[0].upper()}{issue[1:]}."
                before.append(Turn(gap(), _CUSTOMER, style.customer(text, True)))
            elif persona == "tricky_calm":
                before.append(say(texts.CALM_TRICKY))
            else:
                before.append(say(texts.OPENING))
            if has_bot:
                before.append(bot_says(texts.BOT_GREETING))

            if persona in ("plain", "tricky_calm"):
                before += [say(texts.DETAIL) for _ in range(rng.randint(0, 2))]
                if persona == "tricky_calm" and rng.random() < 0.5:
                    before.append(say(texts.CALM_TRICKY))
                after = [
                    agent_says(texts.AGENT_GREETING),
                    say(texts.DETAIL),
                    agent_says(texts.AGENT_RESOLUTION[queue]),
                    say(texts.THANKS),
                ]
            elif persona == "escalating":
                before += [say(texts.DETAIL), say(texts.MILD, True)]
                if has_bot:
                    before.append(bot_says(texts.BOT_WAIT))
                before += [
                    say(texts.ANNOYED, True),
                    say(texts.ANGRY, True),
                    say(texts.THREAT, True),
                    say(texts.ANGRY, True),
                    say(texts.THREAT, True),
                ]
                after = [
                    agent_says(texts.AGENT_GREETING),
                    agent_says(texts.AGENT_EMPATHY),
                    say(texts.STILL_UPSET, True),
                    agent_says(texts.AGENT_RESOLUTION[queue]),
                ]
                after.append(say(texts.RESIGNED, True) if rng.random() < 0.4 else say(texts.CALMING))
            elif persona == "calming":
                before += [say(texts.ANNOYED, True), say(texts.ANGRY, True)]
                if rng.random() < 0.5:
                    before.append(say(texts.MILD, True))
                after = [
                    agent_says(texts.AGENT_GREETING),
                    agent_says(texts.AGENT_EMPATHY),
                    say(texts.CALMING),
                    agent_says(texts.AGENT_RESOLUTION[queue]),
                    say(texts.CALMING),
                    say(texts.THANKS),
                ]
            elif persona == "repeat":
                before += [say(texts.ANNOYED, True), say(texts.REPEAT, True)]
                if rng.random() < 0.5:
                    before.append(say(texts.THREAT, True))
                after = [
                    agent_says(texts.AGENT_EMPATHY),
                    say(texts.STILL_UPSET if rng.random() < 0.5 else texts.CALMING, True),
                    agent_says(texts.AGENT_RESOLUTION[queue]),
                    say(texts.THANKS),
                ]
            else:  # anxious
                before += [say(texts.ANXIOUS, True), say(texts.ANXIOUS, True)]
                after = [
                    agent_says(texts.AGENT_GREETING),
                    agent_says(texts.AGENT_RESOLUTION[queue]),
                    say(texts.CALMING),
                    say(texts.THANKS),
                ]
            if rng.random() < 0.7:
                after.append(agent_says(texts.AGENT_CLOSING))

        # Stressed customers wait longer for the ordinary queue: that is the problem we solve.
        wait = rng.uniform(25, 45) if persona in STRESSED_PERSONAS else rng.uniform(4, 15)
        return ConversationPlan(
            conversation_id=conversation_id,
            persona=persona,
            channel=channel,
            queue=queue,
            language=language,
            customer_id=customer_id,
            customer_tier=tier,
            segment=segment,
            subject=rng.choice(topic["subject"]),
            prior_contact_count=prior,
            previous_agent_id=previous_agent,
            before_agent=before,
            frontline_after=round(wait * self.pace, 3),
            frontline_agent_id=rng.choice(FRONTLINE_AGENTS),
            after_agent=after,
        )

    # -- scheduling -----------------------------------------------------------------------

    def _push(self, at: float, conversation_id: str, phase: int, kind: str, payload: object = None) -> None:
        heapq.heappush(self._heap, (at, next(self._tiebreak), conversation_id, phase, kind, payload))

    @property
    def _next_arrival(self) -> float:
        if self._warm and self._warm[-1] <= self._poisson_next:
            return self._warm[-1]
        return self._poisson_next

    def _open_next(self) -> None:
        if self._warm and self._warm[-1] <= self._poisson_next:
            at = self._warm.pop()
        else:
            at = self._poisson_next
            self._poisson_next = at + self._arrivals.expovariate(self.conversation_rate)
        conversation_id = f"{self.run_id}-c{next(self._conversation_seq):06d}"
        plan = self._plan(self._rng, conversation_id)
        self.plans[conversation_id] = plan
        self._live[conversation_id] = _Live(plan)
        self._push(at, conversation_id, 0, "opened")
        t = at
        for turn in plan.before_agent:
            t += turn.gap
            self._push(t, conversation_id, 0, "turn", turn)
        self._push(t + plan.frontline_after, conversation_id, 0, "frontline")

    def next_due(self) -> float:
        """Simulation time of the next event (or of the next arrival)."""
        if self._heap and self._heap[0][0] < self._next_arrival:
            return self._heap[0][0]
        return self._next_arrival

    def pop_due(self, now: float) -> list[tuple[float, events_pb2.SupportEvent]]:
        """Every event due at or before ``now``, in time order."""
        out: list[tuple[float, events_pb2.SupportEvent]] = []
        while True:
            if self._next_arrival <= now and (not self._heap or self._next_arrival <= self._heap[0][0]):
                self._open_next()
                continue
            if not self._heap or self._heap[0][0] > now:
                return out
            at, _, conversation_id, phase, kind, payload = heapq.heappop(self._heap)
            live = self._live.get(conversation_id)
            if live is None or live.closed or phase != live.phase:
                continue
            out.extend(self._fire(at, live, kind, payload))

    def events(self, until: float) -> Iterator[tuple[float, events_pb2.SupportEvent]]:
        """The stream up to simulation time ``until`` (no live joins: a pure function of the seed)."""
        while self.next_due() <= until:
            yield from self.pop_due(self.next_due())

    def agent_joined(self, conversation_id: str, agent_id: str, now: float) -> bool:
        """A routed agent took the conversation at ``now``; False if it is unknown, closed or taken."""
        live = self._live.get(conversation_id)
        if live is None or live.closed or live.joined_by:
            return False
        self._join(live, agent_id, now)
        return True

    def _join(self, live: _Live, agent_id: str, at: float) -> None:
        live.phase += 1
        live.joined_by = agent_id
        self._last_agent[live.plan.customer_id] = agent_id
        cid = live.plan.conversation_id
        self._push(at, cid, live.phase, "joined", agent_id)
        t = at
        for turn in live.plan.after_agent:
            t += turn.gap
            self._push(t, cid, live.phase, "turn", turn)
        self._push(t + TURN_GAP[live.plan.channel][0] * self.pace, cid, live.phase, "closed")

    def _fire(
        self, at: float, live: _Live, kind: str, payload: object
    ) -> list[tuple[float, events_pb2.SupportEvent]]:
        plan = live.plan
        if kind == "frontline":
            if not live.joined_by:
                self._join(live, plan.frontline_agent_id, at)
            return []
        event = self._envelope(at, live)
        if kind == "opened":
            event.conversation_opened.subject = plan.subject
            event.conversation_opened.required_skills.append(plan.queue)
            event.conversation_opened.prior_contact_count = plan.prior_contact_count
            event.conversation_opened.previous_agent_id = plan.previous_agent_id
        elif kind == "joined":
            event.agent_joined.agent_id = str(payload)
        elif kind == "turn":
            turn: Turn = payload  # type: ignore[assignment]
            message = event.message_posted
            message.message_id = "m" + event.event_id.rsplit("-e", 1)[1]
            message.author_role = turn.role
            message.text = turn.text
            if turn.role == _AGENT:
                message.author_id = live.joined_by
            elif turn.role == _BOT:
                message.author_id = BOT_ID
            if plan.channel == Channel.CHANNEL_VOICE:
                message.transcript_confidence = round(0.62 + (hash_unit(event.event_id) * 0.35), 3)
        elif kind == "closed":
            event.conversation_closed.reason = plan.close_reason
            live.closed = True
            self._returning.append((plan.customer_id, plan.customer_tier, plan.segment))
            del self._live[plan.conversation_id]
        return [(at, event)]

    def _envelope(self, at: float, live: _Live) -> events_pb2.SupportEvent:
        plan = live.plan
        event = events_pb2.SupportEvent(
            event_id=f"{plan.conversation_id}-e{next(live.event_counter):03d}",
            conversation_id=plan.conversation_id,
            tenant_id=self.tenant_id,
            queue=plan.queue,
            channel=plan.channel,
            source=SOURCE,
        )
        event.customer.customer_id = plan.customer_id
        event.customer.tier = plan.customer_tier
        event.customer.segment = plan.segment
        event.customer.language = plan.language
        event.occurred_at.FromDatetime(self.start + dt.timedelta(seconds=at))
        return event


def hash_unit(text: str) -> float:
    """A stable number in [0, 1) from a string (Python's hash() is salted per process)."""
    value = 0
    for char in text:
        value = (value * 131 + ord(char)) % 1_000_003
    return value / 1_000_003
