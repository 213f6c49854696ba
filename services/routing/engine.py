"""The matching engine: agents, waiting conversations, offers. Pure and in-process.

No gRPC, no I/O, no threads: the server holds one lock around every call and the clock is
injected, so tests drive time by hand. Seniority tier 1 is the most senior.

Indexes (so one decision never scans all agents or all conversations):
  * agents with free capacity, per (tenant, channel, language, skill|None, queue|"*", tier),
    each an insertion-ordered dict: the first entry is the agent offered least recently
    (fair spread); an agent moves to the end when it gets an offer;
  * waiting conversations, per (tenant, queue, channel, language, first skill, stressed,
    tier reach), each a heap on a *static* key ``priority - aging * enqueued_at``: every
    conversation ages at the same rate, so the order by effective priority
    ``priority + aging * waited`` never changes while it waits and a heap stays valid;
  * one timer heap for offer deadlines, wrap-up ends, bullseye widening and re-offer retries.

Every change marks the entities it touched as dirty; the journal persists exactly those.
"""

from __future__ import annotations

import heapq
import itertools
import math
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

# Enum values mirror cctriage.routing.v1 (kept numeric so this module needs no protobuf).
AVAILABLE, BUSY, AWAY, WRAP_UP, OFFLINE = 1, 2, 3, 4, 5
STATE_NAMES = {AVAILABLE: "available", BUSY: "busy", AWAY: "away", WRAP_UP: "wrap-up", OFFLINE: "offline"}
WAITING, OFFERED, ASSIGNED, COMPLETED, WITHDRAWN = 1, 2, 3, 4, 5
ACTIVE_STATUSES = (WAITING, OFFERED, ASSIGNED)
# DecisionKind
QUEUED, D_OFFERED, ACCEPTED, DECLINED, OFFER_TIMED_OUT = 1, 2, 3, 4, 5
D_COMPLETED, TRANSFERRED, D_WITHDRAWN, REPRIORITISED, AGENT_NOT_READY = 6, 7, 8, 9, 10
# WithdrawReason
DEESCALATED, CLOSED, ABANDONED = 1, 2, 3
# OfferEndReason
END_TIMED_OUT, END_WITHDRAWN, END_SUPERSEDED = 1, 2, 3
CHANNEL_NAMES = {1: "chat", 2: "email", 3: "voice", 4: "social", 5: "sms"}

# Reason codes on decisions: a small fixed set, safe as a metric label.
REASON_CODES = ("last_agent", "bullseye", "bullseye_widened", "reserve", "best_available", "transfer", "none")

_T_OFFER, _T_WRAP, _T_WIDEN, _T_RETRY = 0, 1, 2, 3


# Priority bands, the same as triage's (cctriage_triage.policy.priority_band), so both
# services' metrics and alerts speak of the same customers: 0-39 low, 40-69 medium,
# 70-84 high, 85-100 critical. Triage raises a flag at stress 0.6 = priority 42 for a
# standard customer, so every conversation triage flags as stressed is medium or above.
PRIORITY_BANDS = ("low", "medium", "high", "critical")


def priority_band_index(priority: int) -> int:
    if priority >= 85:
        return 3
    if priority >= 70:
        return 2
    if priority >= 40:
        return 1
    return 0


class RoutingError(Exception):
    """A request the engine refuses. ``code`` is a gRPC status code name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _invalid(message: str) -> RoutingError:
    return RoutingError("INVALID_ARGUMENT", message)


@dataclass(frozen=True)
class RoutingConfig:
    tiers: int = 3
    # Tiers 1..senior_tiers are "senior": stressed customers start there and the reserve
    # protects their capacity.
    senior_tiers: int = 1
    # Effective priority = priority + aging_per_second * seconds waited.
    aging_per_second: float = 1.0
    # A stressed conversation may reach tier n after (n - 1) * bullseye_widen_seconds.
    bullseye_widen_seconds: float = 15.0
    offer_timeout_seconds: float = 20.0
    # After this many offers missed in a row the agent is set AWAY ("missed offers").
    max_missed_offers: int = 2
    # Share of senior capacity (per tenant and channel) kept free for stressed customers.
    reserve_share: float = 0.2
    # Wrap-up after completing a conversation when the request gives 0.
    wrap_up_seconds: float = 0.0
    # An agent who declined or missed a conversation is not offered it again for this long.
    reoffer_cooldown_seconds: float = 30.0
    # Idempotency keys remembered (oldest forgotten first).
    idempotency_keys: int = 500_000
    # Finished conversations remembered for sequence checks (oldest forgotten first).
    finished_conversations: int = 500_000

    def validate(self) -> None:
        if self.tiers < 1:
            raise ValueError("tiers must be at least 1")
        if not 0 <= self.senior_tiers <= self.tiers:
            raise ValueError("senior_tiers must be 0..tiers")
        if not 0 <= self.reserve_share < 1:
            raise ValueError("reserve_share must be in [0, 1)")
        if self.offer_timeout_seconds <= 0 or self.bullseye_widen_seconds <= 0:
            raise ValueError("offer_timeout_seconds and bullseye_widen_seconds must be positive")
        if self.max_missed_offers < 1:
            raise ValueError("max_missed_offers must be at least 1")
        if self.idempotency_keys < 1 or self.finished_conversations < 1:
            raise ValueError("idempotency_keys and finished_conversations must be at least 1")


@dataclass(slots=True)
class Agent:
    agent_id: str
    tenant_id: str
    tier: int
    skills: dict[str, int]
    languages: tuple[str, ...]
    capacity: dict[int, int]
    queues: tuple[str, ...]
    state: int = AVAILABLE
    state_reason: str = ""
    state_since: float = 0.0
    wrap_up_until: float = 0.0
    missed_offers: int = 0
    last_assignment_at: float = 0.0
    # Position in the fair-spread order: lower = offered less recently.
    indexed_at: int = 0
    # Active plus offered conversations per channel: what counts against capacity.
    load: dict[int, int] = field(default_factory=dict)
    # conversation id -> channel, for conversations the agent holds.
    conversations: dict[str, int] = field(default_factory=dict)
    # offer id -> channel, for outstanding offers.
    offers: dict[str, int] = field(default_factory=dict)

    def free(self, channel: int) -> int:
        return self.capacity.get(channel, 0) - self.load.get(channel, 0)


@dataclass(slots=True)
class Conversation:
    conversation_id: str
    tenant_id: str
    queue: str
    channel: int
    priority: int
    stress: float
    stressed: bool
    reasons: list[tuple[str, str, float]]
    skills: tuple[tuple[str, int], ...]
    language: str
    customer_tier: int
    previous_agent_id: str
    enqueued_at: float
    sequence: int
    order: int
    stressed_since: float = 0.0
    tier_reach: int = 1
    status: int = WAITING
    agent_id: str = ""
    offer_id: str = ""
    assignment_id: str = ""
    assigned_at: float = 0.0
    routing_reason: str = ""
    # agent id -> instant until which that agent is not offered this conversation again.
    excluded: dict[str, float] = field(default_factory=dict)
    # Set while waiting: which bucket holds it and which heap entry is the live one.
    bucket: tuple | None = None
    token: int = 0
    band: int = 0


@dataclass(slots=True)
class Offer:
    offer_id: str
    conversation_id: str
    agent_id: str
    channel: int
    created_at: float
    expires_at: float
    tier: int
    reason: str
    reason_code: str
    waited: float


@dataclass(slots=True)
class Decision:
    kind: int
    conversation_id: str
    tenant_id: str
    agent_id: str = ""
    tier: int = 0
    priority: int = 0
    effective_priority: float = 0.0
    waited: float = 0.0
    reason: str = ""
    reason_code: str = "none"
    offer_id: str = ""
    decided_at: float = 0.0
    stressed: bool = False
    triage_reasons: tuple = ()


@dataclass(slots=True)
class Finished:
    """What is remembered of a completed or withdrawn conversation."""

    status: int
    sequence: int
    finished_at: float


@dataclass(slots=True)
class RouteResult:
    conversation_id: str
    status: int
    duplicate: bool = False
    stale: bool = False
    agent_id: str = ""


class _Bucket:
    __slots__ = ("heap", "live")

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, str, int]] = []
        self.live = 0


@dataclass(frozen=True)
class RouteRequest:
    conversation_id: str
    tenant_id: str
    queue: str
    channel: int
    priority: int
    stress: float = 0.0
    stressed: bool = False
    reasons: tuple[tuple[str, str, float], ...] = ()
    skills: tuple[tuple[str, int], ...] = ()
    language: str = ""
    customer_tier: int = 0
    previous_agent_id: str = ""
    flagged_at: float = 0.0
    sequence: int = 0
    idempotency_key: str = ""


def _check_skills(skills: Iterable[tuple[str, int]], field_name: str) -> tuple[tuple[str, int], ...]:
    out = []
    for i, (skill, level) in enumerate(skills):
        if not skill:
            raise _invalid(f"{field_name}[{i}].skill is required")
        if not 0 <= level <= 10:
            raise _invalid(f"{field_name}[{i}].min_proficiency must be 0..10, got {level}")
        out.append((skill, level))
    return tuple(out)


class Engine:
    def __init__(self, config: RoutingConfig | None = None, clock: Callable[[], float] | None = None) -> None:
        import time

        self.config = config or RoutingConfig()
        self.config.validate()
        self.clock = clock or time.time
        self.agents: dict[str, Agent] = {}
        self.conversations: dict[str, Conversation] = {}
        self.finished: OrderedDict[str, Finished] = OrderedDict()
        self.offers: dict[str, Offer] = {}
        self.idempotency: OrderedDict[str, RouteResult] = OrderedDict()
        self._agent_index: dict[tuple, OrderedDict[str, None]] = {}
        self._buckets: dict[tuple, _Bucket] = {}
        self._buckets_by_tcl: dict[tuple, dict[tuple, _Bucket]] = {}
        # (tenant, channel) -> [capacity, load] of AVAILABLE senior agents.
        self._senior_pool: dict[tuple[str, int], list[int]] = {}
        self._timers: list[tuple[float, int, int, str, float]] = []
        self._seq = itertools.count(1)
        self._order = itertools.count(1)
        self._indexed = itertools.count(1)
        self.waiting_count = 0
        # Waiting conversations per priority band (see priority_band_index).
        self.waiting_by_band = [0, 0, 0, 0]
        # Outputs drained by the server after each call.
        self.decisions: list[Decision] = []
        self.agent_events: list[tuple] = []
        self.dirty_agents: set[str] = set()
        self.dirty_conversations: set[str] = set()
        self.dirty_offers: set[str] = set()
        self.new_idempotency_keys: list[str] = []

    # ------------------------------------------------------------------ helpers

    def effective_priority(self, conv: Conversation, now: float) -> float:
        return conv.priority + self.config.aging_per_second * max(0.0, now - conv.enqueued_at)

    def _reach_at(self, conv: Conversation, now: float) -> int:
        if not conv.stressed:
            return self.config.tiers
        steps = int(max(0.0, now - conv.stressed_since) // self.config.bullseye_widen_seconds)
        return min(self.config.tiers, 1 + steps)

    def _decide(self, kind: int, conv: Conversation, now: float, **extra) -> Decision:
        d = Decision(
            kind=kind,
            conversation_id=conv.conversation_id,
            tenant_id=conv.tenant_id,
            priority=conv.priority,
            effective_priority=self.effective_priority(conv, now),
            waited=max(0.0, now - conv.enqueued_at),
            decided_at=now,
            stressed=conv.stressed,
            triage_reasons=tuple(conv.reasons),
            **extra,
        )
        self.decisions.append(d)
        return d

    def _timer(self, when: float, kind: int, ident: str, token: float = 0.0) -> None:
        heapq.heappush(self._timers, (when, next(self._seq), kind, ident, token))

    def _is_senior(self, tier: int) -> bool:
        return tier <= self.config.senior_tiers

    def _reserve_allows_calm(self, tenant: str, channel: int) -> bool:
        """A calm conversation may take a senior slot only if the reserve stays free after it."""
        pool = self._senior_pool.get((tenant, channel))
        if pool is None:
            return False
        capacity, load = pool
        reserve = math.ceil(self.config.reserve_share * capacity)
        return capacity - load - 1 >= reserve

    def _reserve_in_use(self, tenant: str, channel: int) -> bool:
        """True when a stressed customer taking a senior slot now eats into the reserve."""
        pool = self._senior_pool.get((tenant, channel))
        if pool is None:
            return False
        capacity, load = pool
        return capacity - load <= math.ceil(self.config.reserve_share * capacity)

    # ---------------------------------------------------------- agent index

    def _agent_keys(self, agent: Agent, channel: int) -> Iterator[tuple]:
        queues = agent.queues or ("*",)
        for lang in agent.languages:
            for skill in (None, *agent.skills):
                for q in queues:
                    yield (agent.tenant_id, channel, lang, skill, q, agent.tier)

    def _index_channel(self, agent: Agent, channel: int) -> None:
        for key in self._agent_keys(agent, channel):
            od = self._agent_index.get(key)
            if od is None:
                od = self._agent_index[key] = OrderedDict()
            od[agent.agent_id] = None

    def _unindex_channel(self, agent: Agent, channel: int) -> None:
        for key in self._agent_keys(agent, channel):
            od = self._agent_index.get(key)
            if od is not None:
                od.pop(agent.agent_id, None)
                if not od:
                    del self._agent_index[key]

    def _enter_available(self, agent: Agent, renumber: bool = True) -> None:
        if renumber:
            agent.indexed_at = next(self._indexed)
        for channel in agent.capacity:
            if agent.free(channel) > 0:
                self._index_channel(agent, channel)
        if self._is_senior(agent.tier):
            for channel, cap in agent.capacity.items():
                pool = self._senior_pool.setdefault((agent.tenant_id, channel), [0, 0])
                pool[0] += cap
                pool[1] += agent.load.get(channel, 0)

    def _leave_available(self, agent: Agent) -> None:
        for channel in agent.capacity:
            if agent.free(channel) > 0:
                self._unindex_channel(agent, channel)
        if self._is_senior(agent.tier):
            for channel, cap in agent.capacity.items():
                pool = self._senior_pool[(agent.tenant_id, channel)]
                pool[0] -= cap
                pool[1] -= agent.load.get(channel, 0)

    def _change_load(self, agent: Agent, channel: int, delta: int) -> None:
        available = agent.state == AVAILABLE
        was_free = agent.free(channel) > 0
        agent.load[channel] = agent.load.get(channel, 0) + delta
        if not available:
            return
        if self._is_senior(agent.tier):
            self._senior_pool[(agent.tenant_id, channel)][1] += delta
        is_free = agent.free(channel) > 0
        if was_free and not is_free:
            self._unindex_channel(agent, channel)
        elif is_free and not was_free:
            self._index_channel(agent, channel)

    def _move_to_back(self, agent: Agent) -> None:
        """The agent just got work: everyone else equally suited goes first next time."""
        agent.indexed_at = next(self._indexed)
        if agent.state != AVAILABLE:
            return
        for channel in agent.capacity:
            if agent.free(channel) > 0:
                for key in self._agent_keys(agent, channel):
                    self._agent_index[key].move_to_end(agent.agent_id)

    def _set_state(self, agent: Agent, state: int, reason: str, now: float) -> None:
        if agent.state == state:
            agent.state_reason = reason
            return
        if agent.state == AVAILABLE:
            self._leave_available(agent)
        agent.state = state
        agent.state_reason = reason
        agent.state_since = now
        if state == AVAILABLE:
            self._enter_available(agent)
        self.dirty_agents.add(agent.agent_id)
        self.agent_events.append(("status", agent.agent_id))

    # ---------------------------------------------------------- conversation buckets

    def _bucket_key(self, conv: Conversation) -> tuple:
        skill = conv.skills[0][0] if conv.skills else None
        reach = conv.tier_reach if conv.stressed else self.config.tiers
        return (conv.tenant_id, conv.queue, conv.channel, conv.language, skill, conv.stressed, reach)

    def _static_key(self, conv: Conversation) -> float:
        # Higher effective priority first; heapq is a min-heap, so negate.
        return -(conv.priority - self.config.aging_per_second * conv.enqueued_at)

    def _push_waiting(self, conv: Conversation) -> None:
        key = self._bucket_key(conv)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket()
            tcl = (conv.tenant_id, conv.channel, conv.language)
            self._buckets_by_tcl.setdefault(tcl, {})[key] = bucket
        conv.token += 1
        conv.bucket = key
        heapq.heappush(bucket.heap, (self._static_key(conv), conv.order, conv.conversation_id, conv.token))
        bucket.live += 1
        self.waiting_count += 1
        conv.band = priority_band_index(conv.priority)
        self.waiting_by_band[conv.band] += 1

    def _pop_waiting(self, conv: Conversation) -> None:
        key = conv.bucket
        if key is None:
            return
        conv.bucket = None
        bucket = self._buckets[key]
        bucket.live -= 1
        self.waiting_count -= 1
        self.waiting_by_band[conv.band] -= 1
        if bucket.live == 0:
            del self._buckets[key]
            tcl = (key[0], key[2], key[3])
            group = self._buckets_by_tcl[tcl]
            del group[key]
            if not group:
                del self._buckets_by_tcl[tcl]
        elif len(bucket.heap) > 2 * bucket.live + 64:
            bucket.heap = [e for e in bucket.heap if self._entry_live(e, key)]
            heapq.heapify(bucket.heap)

    def _entry_live(self, entry: tuple, key: tuple) -> bool:
        conv = self.conversations.get(entry[2])
        return conv is not None and conv.bucket == key and conv.token == entry[3]

    def _ordered(self, bucket: _Bucket, key: tuple) -> Iterator[Conversation]:
        """Live conversations of a bucket, most urgent first, without popping the heap."""
        heap = bucket.heap
        while heap and not self._entry_live(heap[0], key):
            heapq.heappop(heap)
        if not heap:
            return
        frontier = [(heap[0], 0)]
        n = len(heap)
        while frontier:
            entry, i = heapq.heappop(frontier)
            if self._entry_live(entry, key):
                yield self.conversations[entry[2]]
            for child in (2 * i + 1, 2 * i + 2):
                if child < n:
                    heapq.heappush(frontier, (heap[child], child))

    # ---------------------------------------------------------- eligibility

    @staticmethod
    def _has_skills(agent: Agent, skills: tuple[tuple[str, int], ...]) -> bool:
        for skill, level in skills:
            have = agent.skills.get(skill)
            if have is None or have < level:
                return False
        return True

    def _suits(self, agent: Agent, conv: Conversation, now: float) -> bool:
        """Hard constraints only (state, capacity, language, skills, queue, tenant, cooldown)."""
        if agent.state != AVAILABLE or agent.tenant_id != conv.tenant_id:
            return False
        if agent.free(conv.channel) <= 0 or conv.language not in agent.languages:
            return False
        if agent.queues and conv.queue not in agent.queues:
            return False
        until = conv.excluded.get(agent.agent_id)
        if until is not None and until > now:
            return False
        return self._has_skills(agent, conv.skills)

    def _tier_allowed(self, agent: Agent, conv: Conversation, now: float) -> bool:
        if conv.stressed:
            return agent.tier <= self._reach_at(conv, now)
        if self._is_senior(agent.tier):
            return self._reserve_allows_calm(conv.tenant_id, conv.channel)
        return True

    # ---------------------------------------------------------- matching

    def _find_agent(self, conv: Conversation, now: float) -> tuple[Agent, str] | None:
        """Best agent for a waiting conversation, with the reason code, or None."""
        prev = self.agents.get(conv.previous_agent_id) if conv.previous_agent_id else None
        if prev is not None and self._suits(prev, conv, now) and self._tier_allowed(prev, conv, now):
            return prev, "last_agent"
        tiers = self.config.tiers
        if conv.stressed:
            order = range(1, conv.tier_reach + 1)
        else:
            # Calm customers take the least senior suitable agent, keeping seniors free.
            order = range(tiers, 0, -1)
        skill = conv.skills[0][0] if conv.skills else None
        queues = (conv.queue, "*")
        for tier in order:
            if not conv.stressed and self._is_senior(tier):
                if not self._reserve_allows_calm(conv.tenant_id, conv.channel):
                    continue
            best: Agent | None = None
            for q in queues:
                od = self._agent_index.get((conv.tenant_id, conv.channel, conv.language, skill, q, tier))
                if not od:
                    continue
                for agent_id in od:
                    agent = self.agents[agent_id]
                    if best is not None and agent.indexed_at >= best.indexed_at:
                        break
                    if self._suits(agent, conv, now):
                        best = agent
                        break
            if best is not None:
                if conv.stressed:
                    code = "bullseye" if tier == 1 else "bullseye_widened"
                    if self._is_senior(tier) and self._reserve_in_use(conv.tenant_id, conv.channel):
                        code = "reserve"
                else:
                    code = "best_available"
                return best, code
        return None

    def _find_conversation(self, agent: Agent, now: float) -> tuple[Conversation, str] | None:
        """Most urgent waiting conversation this agent may take, or None."""
        if agent.state != AVAILABLE:
            return None
        senior = self._is_senior(agent.tier)
        # Buckets this agent may serve, with the rank of their top entry (live or not, it
        # bounds every live rank below it); visiting them best-first lets the search stop
        # after one or two buckets instead of walking all of them.
        candidates = []
        for channel in agent.capacity:
            if agent.free(channel) <= 0:
                continue
            calm_ok = (not senior) or self._reserve_allows_calm(agent.tenant_id, channel)
            for lang in agent.languages:
                group = self._buckets_by_tcl.get((agent.tenant_id, channel, lang))
                if not group:
                    continue
                for key, bucket in group.items():
                    _, queue, _, _, skill, stressed, reach = key
                    if agent.queues and queue not in agent.queues:
                        continue
                    if skill is not None and skill not in agent.skills:
                        continue
                    if stressed:
                        if reach < agent.tier:
                            continue
                    elif not calm_ok:
                        continue
                    if bucket.heap:
                        top = bucket.heap[0]
                        candidates.append((top[0], top[1], key, bucket))
        candidates.sort(key=lambda c: (c[0], c[1]))
        best: Conversation | None = None
        best_rank: tuple | None = None
        for bound0, bound1, key, bucket in candidates:
            if best_rank is not None and (bound0, bound1) >= best_rank:
                break
            for conv in self._ordered(bucket, key):
                rank = (self._static_key(conv), conv.order)
                if best_rank is not None and rank >= best_rank:
                    break
                until = conv.excluded.get(agent.agent_id)
                if (until is None or until <= now) and self._has_skills(agent, conv.skills):
                    best, best_rank = conv, rank
                    break
        if best is None:
            return None
        if best.stressed:
            code = "bullseye" if agent.tier == 1 else "bullseye_widened"
            if senior and self._reserve_in_use(agent.tenant_id, best.channel):
                code = "reserve"
        else:
            code = "best_available"
        if best.previous_agent_id == agent.agent_id:
            code = "last_agent"
        return best, code

    def _reason_text(self, agent: Agent, conv: Conversation, code: str, now: float) -> str:
        parts = [f"tier {agent.tier}"]
        if code == "last_agent":
            parts.append("last agent")
        for skill, _level in conv.skills:
            parts.append(f"skill {skill} {agent.skills.get(skill, 0)}")
        parts.append(f"language {conv.language}")
        parts.append(f"waited {max(0.0, now - conv.enqueued_at):.0f} s")
        if conv.stressed:
            parts.append(f"stressed, bullseye tier {conv.tier_reach}")
        if code == "reserve":
            parts.append("reserve")
        if code == "transfer":
            parts.append("transfer")
        parts.append("least recently offered")
        return ", ".join(parts)

    def _offer(self, conv: Conversation, agent: Agent, code: str, now: float) -> Offer:
        self._pop_waiting(conv)
        reason = self._reason_text(agent, conv, code, now)
        offer = Offer(
            offer_id="o-" + uuid.uuid4().hex[:16],
            conversation_id=conv.conversation_id,
            agent_id=agent.agent_id,
            channel=conv.channel,
            created_at=now,
            expires_at=now + self.config.offer_timeout_seconds,
            tier=agent.tier,
            reason=reason,
            reason_code=code,
            waited=max(0.0, now - conv.enqueued_at),
        )
        self.offers[offer.offer_id] = offer
        agent.offers[offer.offer_id] = conv.channel
        self._change_load(agent, conv.channel, +1)
        self._move_to_back(agent)
        conv.status = OFFERED
        conv.offer_id = offer.offer_id
        conv.agent_id = agent.agent_id
        conv.routing_reason = reason
        self._timer(offer.expires_at, _T_OFFER, offer.offer_id)
        self._decide(
            D_OFFERED,
            conv,
            now,
            agent_id=agent.agent_id,
            tier=agent.tier,
            reason=reason,
            reason_code=code,
            offer_id=offer.offer_id,
        )
        self.agent_events.append(("offer", agent.agent_id, offer.offer_id))
        self.dirty_agents.add(agent.agent_id)
        self.dirty_conversations.add(conv.conversation_id)
        self.dirty_offers.add(offer.offer_id)
        return offer

    def _match_conversation(self, conv: Conversation, now: float) -> bool:
        found = self._find_agent(conv, now)
        if found is None:
            return False
        self._offer(conv, found[0], found[1], now)
        return True

    def _match_agent(self, agent: Agent, now: float) -> None:
        while agent.state == AVAILABLE:
            found = self._find_conversation(agent, now)
            if found is None:
                return
            self._offer(found[0], agent, found[1], now)

    def _requeue(self, conv: Conversation, now: float, exclude: str = "") -> None:
        conv.status = WAITING
        conv.offer_id = ""
        conv.agent_id = ""
        if exclude:
            until = now + self.config.reoffer_cooldown_seconds
            conv.excluded[exclude] = until
            self._timer(until, _T_RETRY, conv.conversation_id)
        conv.excluded = {a: t for a, t in conv.excluded.items() if t > now}
        conv.tier_reach = self._reach_at(conv, now)
        self._push_waiting(conv)
        self._schedule_widen(conv)
        self.dirty_conversations.add(conv.conversation_id)

    def _schedule_widen(self, conv: Conversation) -> None:
        if conv.stressed and conv.tier_reach < self.config.tiers:
            when = conv.stressed_since + conv.tier_reach * self.config.bullseye_widen_seconds
            self._timer(when, _T_WIDEN, conv.conversation_id, conv.tier_reach)

    def _finish(self, conv: Conversation, status: int, now: float) -> None:
        self._pop_waiting(conv)
        conv.status = status
        del self.conversations[conv.conversation_id]
        self.finished[conv.conversation_id] = Finished(status, conv.sequence, now)
        while len(self.finished) > self.config.finished_conversations:
            old, _ = self.finished.popitem(last=False)
            self.dirty_conversations.add(old)
        self.dirty_conversations.add(conv.conversation_id)

    def _remember(self, key: str, result: RouteResult) -> None:
        if not key:
            return
        self.idempotency[key] = result
        self.new_idempotency_keys.append(key)
        while len(self.idempotency) > self.config.idempotency_keys:
            self.idempotency.popitem(last=False)

    def _replay(self, key: str) -> RouteResult | None:
        if not key:
            return None
        prior = self.idempotency.get(key)
        if prior is None:
            return None
        return RouteResult(prior.conversation_id, prior.status, True, prior.stale, prior.agent_id)

    def _release_offer(self, offer: Offer, now: float) -> tuple[Agent, Conversation]:
        del self.offers[offer.offer_id]
        agent = self.agents[offer.agent_id]
        agent.offers.pop(offer.offer_id, None)
        self._change_load(agent, offer.channel, -1)
        self.dirty_offers.add(offer.offer_id)
        self.dirty_agents.add(agent.agent_id)
        return agent, self.conversations[offer.conversation_id]

    def _revoke_offers(self, agent: Agent, now: float, reason: int) -> list[Conversation]:
        """Take back an agent's outstanding offers; the conversations wait again."""
        requeued = []
        for offer_id in list(agent.offers):
            offer = self.offers[offer_id]
            _, conv = self._release_offer(offer, now)
            self.agent_events.append(("revoke", agent.agent_id, offer_id, conv.conversation_id, reason))
            self._requeue(conv, now)
            requeued.append(conv)
        return requeued

    # ------------------------------------------------------------------ triage API

    def validate_route(self, req: RouteRequest) -> tuple[tuple[str, int], ...]:
        """Raise INVALID_ARGUMENT naming the field; returns the checked skill requirements."""
        if not req.conversation_id:
            raise _invalid("conversation_id is required")
        if not req.tenant_id:
            raise _invalid("tenant_id is required")
        if not req.queue:
            raise _invalid("queue is required")
        if req.channel not in CHANNEL_NAMES:
            raise _invalid(f"channel must be set to a known channel, got {req.channel}")
        if not 0 <= req.priority <= 100:
            raise _invalid(f"priority must be 0..100, got {req.priority}")
        if not 0.0 <= req.stress <= 1.0:
            raise _invalid(f"stress must be 0..1, got {req.stress}")
        if not req.language:
            raise _invalid("language is required (BCP 47 tag the agent must speak)")
        return _check_skills(req.skills, "required_skills")

    def route(self, req: RouteRequest) -> RouteResult:
        now = self.clock()
        prior = self._replay(req.idempotency_key)
        if prior is not None:
            return prior
        skills = self.validate_route(req)
        existing = self.conversations.get(req.conversation_id)
        if existing is not None:
            result = RouteResult(existing.conversation_id, existing.status, True, False, existing.agent_id)
            self._remember(req.idempotency_key, result)
            return result
        done = self.finished.get(req.conversation_id)
        if done is not None and req.sequence <= done.sequence:
            result = RouteResult(req.conversation_id, done.status, True, True)
            self._remember(req.idempotency_key, result)
            return result
        enqueued = req.flagged_at if 0 < req.flagged_at <= now else now
        conv = Conversation(
            conversation_id=req.conversation_id,
            tenant_id=req.tenant_id,
            queue=req.queue,
            channel=req.channel,
            priority=req.priority,
            stress=req.stress,
            stressed=req.stressed,
            reasons=list(req.reasons),
            skills=skills,
            language=req.language,
            customer_tier=req.customer_tier,
            previous_agent_id=req.previous_agent_id,
            enqueued_at=enqueued,
            sequence=req.sequence,
            order=next(self._order),
            stressed_since=enqueued if req.stressed else 0.0,
        )
        conv.tier_reach = self._reach_at(conv, now)
        self.finished.pop(req.conversation_id, None)
        self.conversations[conv.conversation_id] = conv
        self._push_waiting(conv)
        self._schedule_widen(conv)
        self.dirty_conversations.add(conv.conversation_id)
        self._decide(QUEUED, conv, now, reason=f"queued {conv.queue}, priority {conv.priority}")
        self._match_conversation(conv, now)
        result = RouteResult(conv.conversation_id, conv.status, False, False, conv.agent_id)
        self._remember(req.idempotency_key, result)
        return result

    def update(
        self,
        conversation_id: str,
        sequence: int,
        priority: int,
        stress: float,
        stressed: bool,
        reasons: tuple = (),
        idempotency_key: str = "",
    ) -> RouteResult:
        now = self.clock()
        prior = self._replay(idempotency_key)
        if prior is not None:
            return prior
        if not conversation_id:
            raise _invalid("conversation_id is required")
        if not 0 <= priority <= 100:
            raise _invalid(f"priority must be 0..100, got {priority}")
        if not 0.0 <= stress <= 1.0:
            raise _invalid(f"stress must be 0..1, got {stress}")
        conv = self.conversations.get(conversation_id)
        if conv is None:
            done = self.finished.get(conversation_id)
            if done is None:
                raise RoutingError("NOT_FOUND", f"unknown conversation {conversation_id}")
            result = RouteResult(conversation_id, done.status, False, True)
        elif sequence <= conv.sequence:
            result = RouteResult(conversation_id, conv.status, False, True, conv.agent_id)
        else:
            waiting = conv.status == WAITING
            if waiting:
                self._pop_waiting(conv)
            conv.sequence = sequence
            conv.priority = priority
            conv.stress = stress
            conv.reasons = list(reasons)
            if stressed and not conv.stressed:
                conv.stressed_since = now
            conv.stressed = stressed
            if waiting:
                conv.tier_reach = self._reach_at(conv, now)
                self._push_waiting(conv)
                self._schedule_widen(conv)
            self.dirty_conversations.add(conversation_id)
            self._decide(REPRIORITISED, conv, now, reason=f"priority {priority}, stressed {stressed}")
            if conv.status == WAITING:
                self._match_conversation(conv, now)
            result = RouteResult(conversation_id, conv.status, False, False, conv.agent_id)
        self._remember(idempotency_key, result)
        return result

    def withdraw(
        self, conversation_id: str, sequence: int, reason: int, idempotency_key: str = ""
    ) -> RouteResult:
        now = self.clock()
        prior = self._replay(idempotency_key)
        if prior is not None:
            return prior
        if not conversation_id:
            raise _invalid("conversation_id is required")
        conv = self.conversations.get(conversation_id)
        if conv is None:
            done = self.finished.get(conversation_id)
            if done is None:
                raise RoutingError("NOT_FOUND", f"unknown conversation {conversation_id}")
            result = RouteResult(conversation_id, done.status, False, True)
            self._remember(idempotency_key, result)
            return result
        if sequence <= conv.sequence:
            result = RouteResult(conversation_id, conv.status, False, True, conv.agent_id)
            self._remember(idempotency_key, result)
            return result
        conv.sequence = sequence
        self.dirty_conversations.add(conversation_id)
        label = {DEESCALATED: "de-escalated", CLOSED: "closed", ABANDONED: "abandoned"}.get(
            reason, "withdrawn"
        )
        if conv.status == ASSIGNED and reason == DEESCALATED:
            # An agent already has the customer: calming down does not take them away.
            result = RouteResult(conversation_id, ASSIGNED, False, False, conv.agent_id)
            self._remember(idempotency_key, result)
            return result
        agent: Agent | None = None
        if conv.status == OFFERED:
            agent, _ = self._release_offer(self.offers[conv.offer_id], now)
            self.agent_events.append(
                ("revoke", agent.agent_id, conv.offer_id, conversation_id, END_WITHDRAWN)
            )
        elif conv.status == ASSIGNED:
            agent = self.agents[conv.agent_id]
            agent.conversations.pop(conversation_id, None)
            self._change_load(agent, conv.channel, -1)
            self.dirty_agents.add(agent.agent_id)
            self.agent_events.append(("status", agent.agent_id))
        self._decide(D_WITHDRAWN, conv, now, agent_id=conv.agent_id, reason=label)
        self._finish(conv, WITHDRAWN, now)
        if agent is not None:
            self._match_agent(agent, now)
        result = RouteResult(conversation_id, WITHDRAWN, False, False)
        self._remember(idempotency_key, result)
        return result

    # ------------------------------------------------------------------ agent API

    def _agent(self, agent_id: str) -> Agent:
        if not agent_id:
            raise _invalid("agent_id is required")
        agent = self.agents.get(agent_id)
        if agent is None:
            raise RoutingError("NOT_FOUND", f"unknown agent {agent_id}")
        return agent

    def login(
        self,
        agent_id: str,
        tenant_id: str,
        tier: int,
        skills: Iterable[tuple[str, int]],
        languages: Iterable[str],
        capacities: Iterable[tuple[int, int]],
        queues: Iterable[str] = (),
    ) -> Agent:
        now = self.clock()
        if not agent_id:
            raise _invalid("agent_id is required")
        if not tenant_id:
            raise _invalid("tenant_id is required")
        if not 1 <= tier <= self.config.tiers:
            raise _invalid(f"tier must be 1..{self.config.tiers} (1 = most senior), got {tier}")
        skill_map: dict[str, int] = {}
        for i, (skill, level) in enumerate(skills):
            if not skill:
                raise _invalid(f"skills[{i}].skill is required")
            if not 1 <= level <= 10:
                raise _invalid(f"skills[{i}].proficiency must be 1..10, got {level}")
            skill_map[skill] = level
        langs = tuple(dict.fromkeys(lang for lang in languages if lang))
        if not langs:
            raise _invalid("languages must name at least one language")
        capacity: dict[int, int] = {}
        for i, (channel, cap) in enumerate(capacities):
            if channel not in CHANNEL_NAMES:
                raise _invalid(f"capacities[{i}].channel must be a known channel, got {channel}")
            if cap <= 0:
                raise _invalid(f"capacities[{i}].capacity must be positive, got {cap}")
            capacity[channel] = cap
        if not capacity:
            raise _invalid("capacities must give at least one channel with a positive capacity")
        existing = self.agents.get(agent_id)
        if existing is not None and existing.state != OFFLINE:
            raise RoutingError("ALREADY_EXISTS", f"agent {agent_id} is already logged in")
        if existing is not None and existing.conversations:
            raise RoutingError("FAILED_PRECONDITION", f"agent {agent_id} still holds conversations")
        agent = Agent(
            agent_id=agent_id,
            tenant_id=tenant_id,
            tier=tier,
            skills=skill_map,
            languages=langs,
            capacity=capacity,
            queues=tuple(dict.fromkeys(q for q in queues if q)),
            state=OFFLINE,
            state_since=now,
        )
        self.agents[agent_id] = agent
        self._set_state(agent, AVAILABLE, "login", now)
        self._match_agent(agent, now)
        return agent

    def set_state(self, agent_id: str, state: int, reason: str = "", wrap_up_seconds: float = 0) -> Agent:
        now = self.clock()
        agent = self._agent(agent_id)
        if state not in STATE_NAMES:
            raise _invalid(f"state must be AVAILABLE, BUSY, AWAY, WRAP_UP or OFFLINE, got {state}")
        if state == OFFLINE:
            return self.logout(agent_id)
        if agent.state == OFFLINE:
            raise RoutingError("FAILED_PRECONDITION", f"agent {agent_id} is logged out; log in first")
        if state == WRAP_UP:
            seconds = wrap_up_seconds or self.config.wrap_up_seconds
            if seconds <= 0:
                raise _invalid("wrap_up_seconds must be positive for WRAP_UP (the server default is 0)")
            agent.wrap_up_until = now + seconds
            self._timer(agent.wrap_up_until, _T_WRAP, agent_id, agent.wrap_up_until)
        if state == AVAILABLE:
            agent.missed_offers = 0
        self._set_state(agent, state, reason, now)
        self.dirty_agents.add(agent_id)
        self.agent_events.append(("status", agent_id))
        if state == AVAILABLE:
            self._match_agent(agent, now)
        else:
            for conv in self._revoke_offers(agent, now, END_SUPERSEDED):
                if conv.status == WAITING:
                    self._match_conversation(conv, now)
        return agent

    def logout(self, agent_id: str) -> Agent:
        now = self.clock()
        agent = self._agent(agent_id)
        if agent.conversations:
            raise RoutingError(
                "FAILED_PRECONDITION",
                f"agent {agent_id} holds {len(agent.conversations)} conversation(s); "
                "complete or transfer them first",
            )
        self._set_state(agent, OFFLINE, "logout", now)
        for conv in self._revoke_offers(agent, now, END_SUPERSEDED):
            if conv.status == WAITING:
                self._match_conversation(conv, now)
        return agent

    def _own_offer(self, agent: Agent, offer_id: str) -> Offer | None:
        if not offer_id:
            raise _invalid("offer_id is required")
        offer = self.offers.get(offer_id)
        if offer is not None and offer.agent_id != agent.agent_id:
            raise RoutingError("PERMISSION_DENIED", f"offer {offer_id} was made to another agent")
        return offer

    def accept(self, agent_id: str, offer_id: str) -> Conversation:
        now = self.clock()
        agent = self._agent(agent_id)
        offer = self._own_offer(agent, offer_id)
        if offer is None:
            for conv_id in agent.conversations:
                conv = self.conversations[conv_id]
                if conv.assignment_id == offer_id:
                    return conv  # a retried accept: same assignment, nothing changes
            raise RoutingError("NOT_FOUND", f"unknown offer {offer_id} (expired, withdrawn or never made)")
        if now >= offer.expires_at:
            self._expire(offer, now)
            raise RoutingError("FAILED_PRECONDITION", f"offer {offer_id} expired")
        del self.offers[offer_id]
        agent.offers.pop(offer_id, None)
        conv = self.conversations[offer.conversation_id]
        conv.status = ASSIGNED
        conv.offer_id = ""
        conv.assignment_id = offer_id
        conv.assigned_at = now
        agent.conversations[conv.conversation_id] = conv.channel
        agent.missed_offers = 0
        agent.last_assignment_at = now
        self.dirty_offers.add(offer_id)
        self.dirty_agents.add(agent_id)
        self.dirty_conversations.add(conv.conversation_id)
        self._decide(
            ACCEPTED,
            conv,
            now,
            agent_id=agent_id,
            tier=agent.tier,
            reason=offer.reason,
            reason_code=offer.reason_code,
            offer_id=offer_id,
        )
        self.agent_events.append(("status", agent_id))
        return conv

    def decline(self, agent_id: str, offer_id: str, reason: str = "") -> None:
        now = self.clock()
        agent = self._agent(agent_id)
        offer = self._own_offer(agent, offer_id)
        if offer is None:
            raise RoutingError("NOT_FOUND", f"unknown offer {offer_id} (expired, withdrawn or never made)")
        _, conv = self._release_offer(offer, now)
        self._decide(
            DECLINED,
            conv,
            now,
            agent_id=agent_id,
            tier=agent.tier,
            reason="declined by agent",
            offer_id=offer_id,
        )
        self._requeue(conv, now, exclude=agent_id)
        self._match_conversation(conv, now)
        self._match_agent(agent, now)

    def _expire(self, offer: Offer, now: float) -> None:
        agent, conv = self._release_offer(offer, now)
        agent.missed_offers += 1
        self.agent_events.append(
            ("revoke", agent.agent_id, offer.offer_id, conv.conversation_id, END_TIMED_OUT)
        )
        self._decide(
            OFFER_TIMED_OUT,
            conv,
            now,
            agent_id=agent.agent_id,
            tier=agent.tier,
            reason=f"no answer in {self.config.offer_timeout_seconds:.0f} s",
            offer_id=offer.offer_id,
        )
        self._requeue(conv, now, exclude=agent.agent_id)
        if agent.missed_offers >= self.config.max_missed_offers and agent.state == AVAILABLE:
            self._set_state(agent, AWAY, "missed offers", now)
            self._decide(
                AGENT_NOT_READY,
                conv,
                now,
                agent_id=agent.agent_id,
                tier=agent.tier,
                reason=f"missed offers: {agent.missed_offers} in a row",
            )
            for other in self._revoke_offers(agent, now, END_SUPERSEDED):
                self._match_conversation(other, now)
        if conv.status == WAITING:
            self._match_conversation(conv, now)
        self._match_agent(agent, now)

    def _held(self, agent: Agent, conversation_id: str) -> Conversation:
        if not conversation_id:
            raise _invalid("conversation_id is required")
        conv = self.conversations.get(conversation_id)
        if conv is None:
            raise RoutingError("NOT_FOUND", f"unknown conversation {conversation_id}")
        if conversation_id not in agent.conversations:
            raise RoutingError(
                "FAILED_PRECONDITION", f"conversation {conversation_id} is not held by agent {agent.agent_id}"
            )
        return conv

    def complete(self, agent_id: str, conversation_id: str, wrap_up_seconds: float = 0) -> Agent:
        now = self.clock()
        agent = self._agent(agent_id)
        conv = self._held(agent, conversation_id)
        del agent.conversations[conversation_id]
        self._change_load(agent, conv.channel, -1)
        self.dirty_agents.add(agent_id)
        self._decide(D_COMPLETED, conv, now, agent_id=agent_id, tier=agent.tier, reason="completed")
        self._finish(conv, COMPLETED, now)
        seconds = wrap_up_seconds or self.config.wrap_up_seconds
        if seconds > 0 and agent.state == AVAILABLE:
            agent.wrap_up_until = now + seconds
            self._timer(agent.wrap_up_until, _T_WRAP, agent_id, agent.wrap_up_until)
            self._set_state(agent, WRAP_UP, "after-contact work", now)
        else:
            self.agent_events.append(("status", agent_id))
            self._match_agent(agent, now)
        return agent

    def transfer(
        self,
        agent_id: str,
        conversation_id: str,
        target_agent_id: str = "",
        skills: Iterable[tuple[str, int]] = (),
        reason: str = "",
    ) -> Conversation:
        now = self.clock()
        agent = self._agent(agent_id)
        conv = self._held(agent, conversation_id)
        new_skills = _check_skills(skills, "required_skills")
        target = None
        if target_agent_id:
            target = self.agents.get(target_agent_id)
            if target is None:
                raise RoutingError("NOT_FOUND", f"unknown agent {target_agent_id}")
            if target_agent_id == agent_id:
                raise _invalid("target_agent_id must be another agent")
            if target.tenant_id != conv.tenant_id:
                raise RoutingError("FAILED_PRECONDITION", f"agent {target_agent_id} works for another tenant")
            if target.state != AVAILABLE or target.free(conv.channel) <= 0:
                raise RoutingError(
                    "FAILED_PRECONDITION",
                    f"agent {target_agent_id} cannot take it now ({STATE_NAMES[target.state]}, "
                    f"{max(0, target.free(conv.channel))} free on {CHANNEL_NAMES[conv.channel]})",
                )
        del agent.conversations[conversation_id]
        self._change_load(agent, conv.channel, -1)
        self.dirty_agents.add(agent_id)
        self.agent_events.append(("status", agent_id))
        if new_skills:
            conv.skills = new_skills
        conv.assignment_id = ""
        conv.previous_agent_id = ""
        self._decide(
            TRANSFERRED,
            conv,
            now,
            agent_id=agent_id,
            tier=agent.tier,
            reason=f"transfer to {'agent ' + target_agent_id if target else 'queue'}",
        )
        if target is not None:
            conv.status = WAITING
            conv.excluded.pop(target_agent_id, None)
            self._push_waiting(conv)
            self._offer(conv, target, "transfer", now)
        else:
            self._requeue(conv, now, exclude=agent_id)
            self._match_conversation(conv, now)
        self._match_agent(agent, now)
        return conv

    # ------------------------------------------------------------------ time

    def next_timer(self) -> float | None:
        return self._timers[0][0] if self._timers else None

    def tick(self) -> int:
        """Fire every timer that is due: offer deadlines, wrap-up ends, bullseye steps."""
        now = self.clock()
        fired = 0
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, kind, ident, token = heapq.heappop(timers)
            fired += 1
            if kind == _T_OFFER:
                offer = self.offers.get(ident)
                if offer is not None:
                    self._expire(offer, now)
            elif kind == _T_WRAP:
                agent = self.agents.get(ident)
                if agent is not None and agent.state == WRAP_UP and agent.wrap_up_until == token:
                    self._set_state(agent, AVAILABLE, "wrap-up ended", now)
                    self._match_agent(agent, now)
            elif kind in (_T_WIDEN, _T_RETRY):
                conv = self.conversations.get(ident)
                if conv is None or conv.status != WAITING:
                    continue
                if kind == _T_WIDEN and not (conv.stressed and conv.tier_reach == token):
                    continue
                self._pop_waiting(conv)
                conv.excluded = {a: t for a, t in conv.excluded.items() if t > now}
                conv.tier_reach = self._reach_at(conv, now)
                self._push_waiting(conv)
                if kind == _T_WIDEN:
                    self._schedule_widen(conv)
                self.dirty_conversations.add(ident)
                self._match_conversation(conv, now)
        return fired

    # ------------------------------------------------------------------ views

    def waiting(self, tenant_id: str = "", queue: str = "", limit: int = 100) -> list[Conversation]:
        now = self.clock()
        chosen = (
            c
            for c in self.conversations.values()
            if c.status in (WAITING, OFFERED)
            and (not tenant_id or c.tenant_id == tenant_id)
            and (not queue or c.queue == queue)
        )
        return heapq.nlargest(limit, chosen, key=lambda c: (self.effective_priority(c, now), -c.order))

    def oldest_wait_by_band(self) -> list[float]:
        """Seconds the longest-waiting conversation not yet accepted (waiting or offered) has
        waited, per priority band: what an SRE alerts on while the customer is still waiting."""
        now = self.clock()
        oldest = [0.0, 0.0, 0.0, 0.0]
        for conv in self.conversations.values():
            if conv.status == WAITING or conv.status == OFFERED:
                band = priority_band_index(conv.priority)
                oldest[band] = max(oldest[band], now - conv.enqueued_at)
        return oldest

    def senior_occupancy(self, tenant_id: str = "") -> float:
        capacity = load = 0
        for agent in self.agents.values():
            if agent.tier == 1 and agent.state != OFFLINE and (not tenant_id or agent.tenant_id == tenant_id):
                capacity += sum(agent.capacity.values())
                load += sum(agent.load.values())
        return load / capacity if capacity else 0.0

    # ------------------------------------------------------------------ durability

    def drain(self) -> tuple[list[Decision], list[tuple]]:
        decisions, events = self.decisions, self.agent_events
        self.decisions, self.agent_events = [], []
        return decisions, events

    def restore(
        self,
        agents: Iterable[Agent],
        conversations: Iterable[Conversation],
        finished: Iterable[tuple[str, Finished]],
        offers: Iterable[Offer],
        idempotency: Iterable[tuple[str, RouteResult]],
    ) -> None:
        """Rebuild every index from persisted entities (the journal's recovery path)."""
        now = self.clock()
        for key, result in idempotency:
            self.idempotency[key] = result
        for conv_id, done in sorted(finished, key=lambda item: item[1].finished_at):
            self.finished[conv_id] = done
        for offer in offers:
            self.offers[offer.offer_id] = offer
            self._timer(offer.expires_at, _T_OFFER, offer.offer_id)
        max_indexed = max_order = 0
        for agent in sorted(agents, key=lambda a: a.indexed_at):
            self.agents[agent.agent_id] = agent
            max_indexed = max(max_indexed, agent.indexed_at)
            if agent.state == AVAILABLE:
                self._enter_available(agent, renumber=False)
            elif agent.state == WRAP_UP:
                self._timer(agent.wrap_up_until, _T_WRAP, agent.agent_id, agent.wrap_up_until)
        for conv in sorted(conversations, key=lambda c: c.order):
            self.conversations[conv.conversation_id] = conv
            max_order = max(max_order, conv.order)
            if conv.status == WAITING:
                conv.bucket = None
                self._push_waiting(conv)
                self._schedule_widen(conv)
                for until in conv.excluded.values():
                    self._timer(until, _T_RETRY, conv.conversation_id)
            else:
                conv.bucket = None
        self._indexed = itertools.count(max_indexed + 1)
        self._order = itertools.count(max_order + 1)
        self.dirty_agents.clear()
        self.dirty_conversations.clear()
        self.dirty_offers.clear()
        self.new_idempotency_keys.clear()
        del now

    def check_invariants(self) -> None:
        """Assert the structural invariants (used by tests; cheap enough for small worlds)."""
        for agent in self.agents.values():
            for channel, cap in agent.capacity.items():
                held = sum(1 for ch in agent.conversations.values() if ch == channel)
                offered = sum(1 for ch in agent.offers.values() if ch == channel)
                assert agent.load.get(channel, 0) == held + offered, agent.agent_id
                assert held + offered <= cap, f"{agent.agent_id} over capacity on {channel}"
            for offer_id in agent.offers:
                assert self.offers[offer_id].agent_id == agent.agent_id
        for conv in self.conversations.values():
            if conv.status == OFFERED:
                offer = self.offers[conv.offer_id]
                assert offer.conversation_id == conv.conversation_id
            if conv.status == ASSIGNED:
                assert conv.conversation_id in self.agents[conv.agent_id].conversations
            assert (conv.bucket is not None) == (conv.status == WAITING)
        assert self.waiting_count == sum(1 for c in self.conversations.values() if c.status == WAITING)
