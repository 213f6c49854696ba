"""A simulated pool of contact-centre agents that work through the routing service's gRPC API.

Each agent logs in (tier, skills with proficiency, languages, capacity per channel), opens its
offer stream, and reacts to offers as people do: most are accepted after a moment's reading,
a few are declined, and now and then one is left to time out (the agent was away from the
desk). An accepted conversation is worked for a while, completed, and followed by wrap-up;
the routing service makes the agent available again when wrap-up ends. An agent the server
set to away after missed offers comes back after a short pause, as a real agent would.

The decisions (accept, decline, let time out, how long to work) are in ``AgentBehaviour``,
a pure, seeded object, so they can be tested without a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Callable, Sequence

import grpc
from cctriage.events.v1 import events_pb2
from cctriage.routing.v1 import routing_pb2, routing_pb2_grpc

from . import texts

log = logging.getLogger(__name__)

Channel = events_pb2.Channel
SKILLS = list(texts.TOPICS)
# Concurrent conversations per channel (voice is always one at a time).
CAPACITY: dict[int, dict[int, int]] = {
    1: {
        Channel.CHANNEL_CHAT: 2,
        Channel.CHANNEL_EMAIL: 3,
        Channel.CHANNEL_VOICE: 1,
        Channel.CHANNEL_SOCIAL: 2,
        Channel.CHANNEL_SMS: 2,
    },
    2: {
        Channel.CHANNEL_CHAT: 3,
        Channel.CHANNEL_EMAIL: 4,
        Channel.CHANNEL_VOICE: 1,
        Channel.CHANNEL_SOCIAL: 2,
        Channel.CHANNEL_SMS: 3,
    },
    3: {
        Channel.CHANNEL_CHAT: 3,
        Channel.CHANNEL_EMAIL: 5,
        Channel.CHANNEL_VOICE: 1,
        Channel.CHANNEL_SOCIAL: 3,
        Channel.CHANNEL_SMS: 3,
    },
}
# Seconds an agent works a conversation before completing it, per channel (before pace).
HANDLE_SECONDS: dict[int, tuple[float, float]] = {
    Channel.CHANNEL_CHAT: (10, 30),
    Channel.CHANNEL_SMS: (10, 30),
    Channel.CHANNEL_SOCIAL: (10, 25),
    Channel.CHANNEL_VOICE: (15, 40),
    Channel.CHANNEL_EMAIL: (8, 20),
}


@dataclasses.dataclass(frozen=True)
class AgentProfile:
    agent_id: str
    tier: int
    skills: dict[str, int]
    languages: tuple[str, ...]
    capacities: dict[int, int]

    def login_request(self, tenant_id: str) -> routing_pb2.LoginRequest:
        return routing_pb2.LoginRequest(
            agent_id=self.agent_id,
            tenant_id=tenant_id,
            tier=self.tier,
            skills=[routing_pb2.AgentSkill(skill=s, proficiency=p) for s, p in sorted(self.skills.items())],
            languages=list(self.languages),
            capacities=[
                routing_pb2.ChannelCapacity(channel=c, capacity=n) for c, n in sorted(self.capacities.items())
            ],
        )


def build_roster(count: int, seed: int = 1) -> list[AgentProfile]:
    """``count`` agents: about 30% tier 1, 35% tier 2, the rest tier 3.

    Tiers 1 and 2 cover every skill (best in one, competent in the rest); tier 3 agents know
    one or two. Everybody speaks English; within each tier of three or more agents someone
    also speaks German and someone Spanish, so no customer waits for want of a language.
    """
    if count < 1:
        raise ValueError(f"agents must be at least 1, got {count}")
    rng = random.Random(seed * 7 + 3)
    seniors = max(1, round(count * 0.3))
    middle = round(count * 0.35) if count > 2 else count - seniors
    roster = []
    for n in range(count):
        tier = 1 if n < seniors else 2 if n < seniors + middle else 3
        in_tier = n if tier == 1 else n - seniors if tier == 2 else n - seniors - middle
        primary = SKILLS[n % len(SKILLS)]
        if tier == 1:
            skills = {s: rng.randint(5, 7) for s in SKILLS}
            skills[primary] = rng.randint(8, 10)
        elif tier == 2:
            skills = {s: rng.randint(3, 5) for s in SKILLS}
            skills[primary] = rng.randint(6, 8)
        else:
            skills = {primary: rng.randint(3, 6)}
            if rng.random() < 0.5:
                skills[rng.choice([s for s in SKILLS if s != primary])] = rng.randint(2, 4)
        languages = ("en",) + {1: ("de",), 2: ("es",)}.get(in_tier % 3, ())
        roster.append(AgentProfile(f"agent-{n + 1:02d}", tier, skills, languages, dict(CAPACITY[tier])))
    return roster


@dataclasses.dataclass(frozen=True)
class Reaction:
    action: str  # "accept" | "decline" | "ignore"
    delay: float  # seconds before the agent answers (ignored offers are never answered)
    reason: str = ""


class AgentBehaviour:
    """How one simulated person reacts; seeded, no I/O."""

    def __init__(
        self, rng: random.Random, accept: float = 0.88, decline: float = 0.06, pace: float = 1.0
    ) -> None:
        if not 0 <= accept <= 1 or not 0 <= decline <= 1 or accept + decline > 1:
            raise ValueError(f"accept ({accept}) and decline ({decline}) must be shares summing to at most 1")
        self.rng = rng
        self.accept = accept
        self.decline = decline
        self.pace = pace

    def react(self, offer: routing_pb2.Offer) -> Reaction:
        roll = self.rng.random()
        if roll < self.accept:
            # Reading a stressed conversation's reasons takes a moment longer.
            return Reaction("accept", self.rng.uniform(0.5, 2.5 if offer.stressed else 1.5))
        if roll < self.accept + self.decline:
            reason = self.rng.choice(
                ["finishing notes on another case", "about to go on a break", "not my area"]
            )
            return Reaction("decline", self.rng.uniform(0.5, 2.0), reason)
        return Reaction("ignore", 0.0)

    def handle_seconds(self, channel: int) -> float:
        lo, hi = HANDLE_SECONDS.get(channel, (10, 30))
        return self.rng.uniform(lo, hi) * self.pace

    def wrap_up_seconds(self) -> int:
        return max(1, round(self.rng.uniform(3, 10) * self.pace))

    def back_from_away_seconds(self) -> float:
        return self.rng.uniform(5, 12) * self.pace


@dataclasses.dataclass(frozen=True)
class PoolEvent:
    """Something an agent did, for the live view and the traffic generator."""

    # logged_in | offered | accepted | declined | ignored | completed | ended | revoked | back | error
    kind: str
    agent_id: str
    tier: int
    conversation_id: str = ""
    detail: str = ""
    stressed: bool = False
    waited_seconds: float = 0.0


class SimulatedAgent:
    def __init__(
        self,
        profile: AgentProfile,
        behaviour: AgentBehaviour,
        channel: grpc.aio.Channel,
        tenant_id: str,
        notify: Callable[[PoolEvent], None],
        metadata: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.profile = profile
        self.behaviour = behaviour
        self.stub = routing_pb2_grpc.AgentDesktopStub(channel)
        self.tenant_id = tenant_id
        self.notify = notify
        self.metadata = tuple(metadata)
        self.state = routing_pb2.AGENT_STATE_OFFLINE
        # Conversations being worked: id -> (work task, when accepted, monotonic).
        self.conversations: dict[str, tuple[asyncio.Task, float]] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._background: set[asyncio.Task] = set()

    def _event(self, kind: str, conversation_id: str = "", **kwargs) -> None:
        self.notify(PoolEvent(kind, self.profile.agent_id, self.profile.tier, conversation_id, **kwargs))

    async def run(self, stop: asyncio.Event) -> None:
        """Log in, take offers until ``stop`` is set or the stream ends, then log out."""
        agent_id = self.profile.agent_id
        try:
            await self.stub.Login(self.profile.login_request(self.tenant_id), metadata=self.metadata)
        except grpc.aio.AioRpcError as exc:
            # Reconnecting after a dropped stream: the server still has the session.
            if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
        stream = self.stub.StreamOffers(
            routing_pb2.StreamOffersRequest(agent_id=agent_id), metadata=self.metadata
        )
        status = await self.stub.SetState(
            routing_pb2.SetStateRequest(agent_id=agent_id, state=routing_pb2.AGENT_STATE_AVAILABLE),
            metadata=self.metadata,
        )
        self.state = status.state
        self._event("logged_in")
        reader = asyncio.ensure_future(self._read(stream))
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if reader.done() and not stop.is_set():
                reader.result()  # raise what ended the stream
        finally:
            stopper.cancel()
            stream.cancel()
            reader.cancel()
            for task in [*self._tasks.values(), *self._background]:
                task.cancel()
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
                await asyncio.wait_for(
                    self.stub.Logout(routing_pb2.LogoutRequest(agent_id=agent_id), metadata=self.metadata),
                    timeout=2.0,
                )

    async def _read(self, stream) -> None:
        async for event in stream:
            which = event.WhichOneof("event")
            if which == "offer":
                offer = event.offer
                self._event(
                    "offered",
                    offer.conversation_id,
                    detail=offer.routing_reason,
                    stressed=offer.stressed,
                    waited_seconds=offer.waited_seconds,
                )
                self._tasks[offer.offer_id] = self._spawn(self._answer(offer))
            elif which == "revoked":
                task = self._tasks.pop(event.revoked.offer_id, None)
                if task is not None:
                    task.cancel()
                self._event(
                    "revoked",
                    event.revoked.conversation_id,
                    detail=routing_pb2.OfferEndReason.Name(event.revoked.reason),
                )
            elif which == "status":
                self._on_status(event.status)

    def _spawn(self, coroutine) -> asyncio.Task:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _on_status(self, status: routing_pb2.AgentStatus) -> None:
        previous, self.state = self.state, status.state
        self._check_held(status)
        if status.state == routing_pb2.AGENT_STATE_AWAY and previous != routing_pb2.AGENT_STATE_AWAY:
            # Set away by the server (missed offers): the person notices and comes back.
            self._spawn(self._come_back())

    async def _come_back(self) -> None:
        await asyncio.sleep(self.behaviour.back_from_away_seconds())
        await self._set_available("back at the desk")
        self._event("back")

    async def _set_available(self, reason: str) -> None:
        try:
            status = await self.stub.SetState(
                routing_pb2.SetStateRequest(
                    agent_id=self.profile.agent_id, state=routing_pb2.AGENT_STATE_AVAILABLE, reason=reason
                ),
                metadata=self.metadata,
            )
            self.state = status.state
        except grpc.aio.AioRpcError as exc:
            self._event("error", detail=f"SetState: {exc.code().name} {exc.details()}")

    async def _answer(self, offer: routing_pb2.Offer) -> None:
        reaction = self.behaviour.react(offer)
        agent_id = self.profile.agent_id
        try:
            if reaction.action == "ignore":
                self._event("ignored", offer.conversation_id, stressed=offer.stressed)
                return
            await asyncio.sleep(reaction.delay)
            if reaction.action == "decline":
                await self.stub.DeclineOffer(
                    routing_pb2.DeclineOfferRequest(
                        agent_id=agent_id, offer_id=offer.offer_id, reason=reaction.reason
                    ),
                    metadata=self.metadata,
                )
                self._event(
                    "declined", offer.conversation_id, detail=reaction.reason, stressed=offer.stressed
                )
                return
            assignment = await self.stub.AcceptOffer(
                routing_pb2.AcceptOfferRequest(agent_id=agent_id, offer_id=offer.offer_id),
                metadata=self.metadata,
            )
        except grpc.aio.AioRpcError as exc:
            # The offer expired or was withdrawn while the agent was reading it.
            self._event("error", offer.conversation_id, detail=f"{exc.code().name}: {exc.details()}")
            return
        finally:
            self._tasks.pop(offer.offer_id, None)
        self._event(
            "accepted",
            offer.conversation_id,
            detail=assignment.routing_reason or offer.routing_reason,
            stressed=offer.stressed,
            waited_seconds=assignment.waited_seconds,
        )
        self.conversations[offer.conversation_id] = (self._spawn(self._work(offer)), time.monotonic())

    async def _work(self, offer: routing_pb2.Offer) -> None:
        await asyncio.sleep(self.behaviour.handle_seconds(offer.channel))
        # No longer "held" from here: the status the server sends as it completes the
        # conversation must not be taken for the customer closing it.
        self.conversations.pop(offer.conversation_id, None)
        wrap_up = self.behaviour.wrap_up_seconds()
        try:
            await self.stub.CompleteConversation(
                routing_pb2.CompleteConversationRequest(
                    agent_id=self.profile.agent_id,
                    conversation_id=offer.conversation_id,
                    wrap_up_seconds=wrap_up,
                ),
                metadata=self.metadata,
            )
            self._event("completed", offer.conversation_id, detail=f"wrap-up {wrap_up} s")
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                # The customer closed it first and the routing service let it go.
                self._event("ended", offer.conversation_id, detail="closed by the customer")
            else:
                self._event(
                    "error", offer.conversation_id, detail=f"Complete: {exc.code().name}: {exc.details()}"
                )
        finally:
            self.conversations.pop(offer.conversation_id, None)

    def _check_held(self, status: routing_pb2.AgentStatus) -> None:
        """A conversation the server no longer lists for us was closed by the customer: stop working it.

        A status sent just before our acceptance may arrive just after it, so a conversation
        accepted in the last two seconds is not taken as gone.
        """
        held = set(status.conversation_ids)
        now = time.monotonic()
        ended = [
            cid for cid, (_, since) in self.conversations.items() if cid not in held and now - since > 2.0
        ]
        for conversation_id in ended:
            task, _ = self.conversations.pop(conversation_id)
            task.cancel()
            self._event("ended", conversation_id, detail="closed by the customer")
        if ended and not self.conversations and status.state == routing_pb2.AGENT_STATE_AVAILABLE:
            self._spawn(self._wrap_up())

    async def _wrap_up(self) -> None:
        """After-contact work for a conversation the customer ended; the server's timer ends it."""
        try:
            await self.stub.SetState(
                routing_pb2.SetStateRequest(
                    agent_id=self.profile.agent_id,
                    state=routing_pb2.AGENT_STATE_WRAP_UP,
                    reason="after-contact work",
                    wrap_up_seconds=self.behaviour.wrap_up_seconds(),
                ),
                metadata=self.metadata,
            )
        except grpc.aio.AioRpcError as exc:
            self._event("error", detail=f"SetState WRAP_UP: {exc.code().name}: {exc.details()}")


class AgentPool:
    """Runs a roster of simulated agents against one routing server."""

    def __init__(
        self,
        target: str,
        roster: Sequence[AgentProfile],
        notify: Callable[[PoolEvent], None],
        seed: int = 1,
        tenant_id: str = "acme-telecom",
        pace: float = 1.0,
        metadata_for: Callable[[str], Sequence[tuple[str, str]]] = lambda agent_id: (),
        behaviour_for: Callable[[AgentProfile], AgentBehaviour] | None = None,
    ) -> None:
        self.target = target
        self.roster = list(roster)
        self.notify = notify
        self.seed = seed
        self.tenant_id = tenant_id
        self.pace = pace
        self.metadata_for = metadata_for
        self.behaviour_for = behaviour_for or (
            lambda profile: AgentBehaviour(random.Random(f"{seed}/{profile.agent_id}"), pace=pace)
        )
        self.agents: list[SimulatedAgent] = []

    async def run(self, stop: asyncio.Event) -> None:
        async with grpc.aio.insecure_channel(self.target) as channel:
            self.agents = [
                SimulatedAgent(
                    profile,
                    self.behaviour_for(profile),
                    channel,
                    self.tenant_id,
                    self.notify,
                    self.metadata_for(profile.agent_id),
                )
                for profile in self.roster
            ]
            results = await asyncio.gather(
                *(self._keep_running(agent, stop) for agent in self.agents), return_exceptions=True
            )
            for agent, result in zip(self.agents, results, strict=True):
                if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                    log.warning(
                        "agent stopped with an error",
                        extra={"agent_id": agent.profile.agent_id, "error": repr(result)},
                    )

    async def _keep_running(self, agent: SimulatedAgent, stop: asyncio.Event) -> None:
        """A dropped stream is reopened after a pause, as a desktop reconnects."""
        while not stop.is_set():
            try:
                await agent.run(stop)
            except grpc.aio.AioRpcError as exc:
                agent.notify(
                    PoolEvent(
                        "error",
                        agent.profile.agent_id,
                        agent.profile.tier,
                        detail=f"{exc.code().name}: {exc.details()}",
                    )
                )
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=2.0)
