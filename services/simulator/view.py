"""What the demo shows: the live state it collects and two ways to print it.

``LiveState`` is fed from four sources: conversation flags (triage), routing decisions (the
routing service's audit topic), supervisor snapshots (queue and agents, over gRPC) and the
simulated agents' own actions. It keeps ids, reasons and figures only; never customer text.

``PlainView`` prints one line per notable thing plus a status line every few seconds (for
logs, CI and ``--plain``); ``RichView`` redraws a dashboard in place (the default on a
terminal, when ``rich`` is installed).
"""

from __future__ import annotations

import collections
import dataclasses
import statistics
import sys
import time
from collections.abc import Callable
from typing import IO

from cctriage.events.v1 import events_pb2
from cctriage.routing.v1 import routing_pb2
from cctriage.triage.v1 import triage_pb2

from .agents import PoolEvent

Kind = routing_pb2.DecisionKind
OPEN = frozenset({"flagged", "offered", "with agent"})
PRIORITY_BANDS = (("urgent", 80), ("high", 60), ("normal", 30), ("low", 0))
STATE_NAMES = {
    routing_pb2.AGENT_STATE_AVAILABLE: "available",
    routing_pb2.AGENT_STATE_BUSY: "busy",
    routing_pb2.AGENT_STATE_AWAY: "away",
    routing_pb2.AGENT_STATE_WRAP_UP: "wrap-up",
    routing_pb2.AGENT_STATE_OFFLINE: "offline",
}


def band(priority: float) -> str:
    for name, floor in PRIORITY_BANDS:
        if priority >= floor:
            return name
    return "low"


def channel_name(channel: int) -> str:
    return events_pb2.Channel.Name(channel).removeprefix("CHANNEL_").lower() if channel else "?"


def tier_name(tier: int) -> str:
    return events_pb2.CustomerTier.Name(tier).removeprefix("CUSTOMER_TIER_").lower() if tier else "?"


def short(conversation_id: str) -> str:
    return conversation_id.rsplit("-", 1)[-1]


def reasons_text(reasons) -> str:
    return "; ".join(r.detail or r.code for r in reasons) or "-"


@dataclasses.dataclass
class Conversation:
    conversation_id: str
    channel: int = 0
    customer_tier: int = 0
    priority: int = 0
    stress: float = 0.0
    reasons: str = ""
    flagged_at: float = 0.0  # wall time of the first raise
    status: str = "flagged"
    agent_id: str = ""
    agent_tier: int = 0
    routed_after_s: float | None = None  # first raise -> accepted
    persona: str = ""  # what the simulated customer does (ground truth for the demo viewer)
    updated: float = 0.0


@dataclasses.dataclass
class LiveState:
    started: float = dataclasses.field(default_factory=time.time)
    traffic_started: float = 0.0
    events_published: int = 0
    events_failed: int = 0
    conversations_started: int = 0
    stressed_started: int = 0
    conversations: dict[str, Conversation] = dataclasses.field(default_factory=dict)
    flags: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    decisions: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    accepted_by_tier: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    stressed_accepted_by_tier: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    agent_reactions: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    flag_to_senior_s: list[float] = dataclasses.field(default_factory=list)
    first_senior_at: float | None = None  # wall time of the first stressed conversation accepted by tier 1
    wait_by_band: dict[str, list[float]] = dataclasses.field(
        default_factory=lambda: collections.defaultdict(list)
    )
    recent: collections.deque = dataclasses.field(default_factory=lambda: collections.deque(maxlen=12))
    queue: routing_pb2.QueueSnapshot | None = None
    agents: routing_pb2.AgentSnapshot | None = None
    agent_tiers: dict[str, int] = dataclasses.field(default_factory=dict)
    lines: collections.deque = dataclasses.field(default_factory=lambda: collections.deque(maxlen=2000))
    lines_total: int = 0
    # conversation id -> the simulator's persona for it, when the demo generates the traffic.
    persona_of: Callable[[str], str] | None = None

    # -- feeding --------------------------------------------------------------------------

    def note(self, text: str) -> None:
        self.lines.append(text)
        self.lines_total += 1

    def on_flag(self, flag: triage_pb2.ConversationFlag) -> None:
        action = triage_pb2.FlagAction.Name(flag.action).removeprefix("FLAG_ACTION_").lower()
        self.flags[action] += 1
        conv = self.conversations.get(flag.conversation_id)
        if conv is None:
            if flag.action not in (triage_pb2.FLAG_ACTION_RAISED, triage_pb2.FLAG_ACTION_UPDATED):
                return
            conv = self.conversations[flag.conversation_id] = Conversation(
                flag.conversation_id,
                flag.channel,
                flag.customer_tier,
                flagged_at=_wall(flag.flagged_at) or time.time(),
                persona=self.persona_of(flag.conversation_id) if self.persona_of else "",
            )
        if flag.action != triage_pb2.FLAG_ACTION_WITHDRAWN:
            conv.priority, conv.stress = flag.priority, flag.stress
        # Keep why it was stressed; clearing and closing carry their own reason, shown in the line.
        if flag.reasons and flag.action in (triage_pb2.FLAG_ACTION_RAISED, triage_pb2.FLAG_ACTION_UPDATED):
            conv.reasons = reasons_text(flag.reasons)
        conv.updated = time.time()
        if flag.action == triage_pb2.FLAG_ACTION_CLEARED:
            conv.status = "calmed down"
        elif flag.action == triage_pb2.FLAG_ACTION_WITHDRAWN:
            conv.status = "closed"
        elif conv.status in ("flagged", "calmed down") and not conv.agent_id:
            conv.status = "flagged"
        self.note(
            f"FLAG      {short(flag.conversation_id)} {action:<9} priority {flag.priority:>3} "
            f"stress {flag.stress:.2f} {channel_name(flag.channel):<6} {tier_name(flag.customer_tier):<8} "
            f"reasons: {reasons_text(flag.reasons)}"
            + (f" [simulated: {conv.persona}]" if conv.persona else "")
        )

    def on_decision(self, decision: routing_pb2.RoutingDecision) -> float | None:
        """Apply a decision; for the first acceptance of a flagged conversation, seconds since its flag."""
        first_routed = None
        kind = Kind.Name(decision.kind).removeprefix("DECISION_KIND_").lower()
        self.decisions[kind] += 1
        if decision.agent_id and decision.tier:
            self.agent_tiers[decision.agent_id] = decision.tier
        conv = self.conversations.get(decision.conversation_id)
        who = f"{decision.agent_id} (tier {decision.tier})" if decision.agent_id else ""
        if decision.kind == Kind.DECISION_KIND_OFFERED:
            if conv:
                conv.status, conv.agent_id, conv.agent_tier = "offered", decision.agent_id, decision.tier
            self.note(f"OFFERED   {short(decision.conversation_id)} -> {who}: {decision.reason or '-'}")
        elif decision.kind == Kind.DECISION_KIND_ACCEPTED:
            self.accepted_by_tier[decision.tier] += 1
            self.wait_by_band[band(decision.priority)].append(decision.waited_seconds)
            extra = ""
            if conv:
                conv.status, conv.agent_id, conv.agent_tier = "with agent", decision.agent_id, decision.tier
                decided = _wall(decision.decided_at) or time.time()
                if conv.routed_after_s is None:
                    conv.routed_after_s = first_routed = max(0.0, decided - conv.flagged_at)
                    self.stressed_accepted_by_tier[decision.tier] += 1
                    if decision.tier == 1:
                        self.flag_to_senior_s.append(conv.routed_after_s)
                        if self.first_senior_at is None:
                            self.first_senior_at = decided
                    extra = f" (flag -> agent {conv.routed_after_s:.1f} s)"
            line = (
                f"ROUTED    {short(decision.conversation_id)} -> {who}: "
                f"{decision.reason or f'waited {decision.waited_seconds:.1f} s'}{extra}"
            )
            self.recent.appendleft(line.removeprefix("ROUTED    "))
            self.note(line)
        elif decision.kind in (Kind.DECISION_KIND_DECLINED, Kind.DECISION_KIND_OFFER_TIMED_OUT):
            if conv and conv.status == "offered":
                conv.status = "flagged"
            self.note(f"{kind.upper():<9} {short(decision.conversation_id)} by {who}")
        elif decision.kind == Kind.DECISION_KIND_COMPLETED:
            if conv:
                conv.status = "completed"
        elif decision.kind == Kind.DECISION_KIND_WITHDRAWN:
            if conv and conv.status not in ("completed",):
                conv.status = "withdrawn"
        elif decision.kind == Kind.DECISION_KIND_AGENT_NOT_READY:
            self.note(f"NOT READY {decision.agent_id}: {decision.reason or 'missed offers'}")
        return first_routed

    def on_pool(self, event: PoolEvent) -> None:
        self.agent_tiers.setdefault(event.agent_id, event.tier)
        if event.kind in ("accepted", "declined", "ignored", "completed", "ended"):
            self.agent_reactions[event.kind] += 1
        elif event.kind == "error":
            self.agent_reactions["error"] += 1
            self.note(f"AGENT     {event.agent_id}: {event.detail}")

    # -- figures --------------------------------------------------------------------------

    def elapsed(self) -> float:
        return time.time() - (self.traffic_started or self.started)

    def queue_by_band(self) -> dict[str, tuple[int, float]]:
        """{band: (waiting now, oldest wait s)} from the last queue snapshot."""
        out = {name: (0, 0.0) for name, _ in PRIORITY_BANDS}
        if self.queue is not None:
            for conv in self.queue.conversations:
                count, oldest = out[band(conv.effective_priority or conv.priority)]
                out[band(conv.effective_priority or conv.priority)] = (
                    count + 1,
                    max(oldest, conv.waited_seconds),
                )
        return out

    def occupancy_by_tier(self) -> dict[int, dict[str, float]]:
        """{tier: {logged_in, available, busy, wrap-up, away, active, capacity}} from the agent snapshot."""
        out: dict[int, dict[str, float]] = {}
        if self.agents is None:
            return out
        for agent in self.agents.agents:
            if agent.state == routing_pb2.AGENT_STATE_OFFLINE:
                continue
            row = out.setdefault(agent.tier, collections.Counter())
            row["logged_in"] += 1
            row[STATE_NAMES.get(agent.state, "other")] += 1
            row["with_conversations"] += 1 if agent.conversation_ids else 0
            row["active"] += sum(load.active for load in agent.load)
            row["capacity"] += sum(load.capacity for load in agent.load)
        return dict(sorted(out.items()))

    def summary(self) -> dict:
        senior = sorted(self.flag_to_senior_s)
        return {
            "traffic_seconds": round(self.elapsed(), 1),
            "events_published": self.events_published,
            "events_failed": self.events_failed,
            "conversations_started": self.conversations_started,
            "stressed_conversations_started": self.stressed_started,
            "flags": dict(self.flags),
            "conversations_flagged": len(self.conversations),
            "decisions": dict(self.decisions),
            "accepted_by_tier": {str(k): v for k, v in sorted(self.accepted_by_tier.items())},
            "flagged_accepted_by_tier": {
                str(k): v for k, v in sorted(self.stressed_accepted_by_tier.items())
            },
            "first_senior_route_after_traffic_s": (
                round(self.first_senior_at - self.traffic_started, 1)
                if self.first_senior_at and self.traffic_started
                else None
            ),
            "flag_to_senior_s": {
                "count": len(senior),
                "p50": round(statistics.median(senior), 2) if senior else None,
                "max": round(senior[-1], 2) if senior else None,
            },
            "agent_reactions": dict(self.agent_reactions),
            "senior_occupancy_ratio": round(self.agents.senior_occupancy_ratio, 3) if self.agents else None,
        }

    def status_line(self) -> str:
        queue = " ".join(
            f"{name} {n}" + (f" (oldest {oldest:.0f} s)" if n else "")
            for name, (n, oldest) in self.queue_by_band().items()
        )
        tiers = " ".join(
            f"t{tier} {int(row['with_conversations'])}/{int(row['logged_in'])} busy "
            f"{(row['active'] / row['capacity'] if row['capacity'] else 0):.0%}"
            for tier, row in self.occupancy_by_tier().items()
        )
        rate = self.events_published / max(self.elapsed(), 1e-6)
        senior = self.summary()["flag_to_senior_s"]
        return (
            f"STATUS    events {self.events_published} ({rate:.1f}/s) flagged {len(self.conversations)} "
            f"routed to tier 1 {senior['count']} (p50 {senior['p50']} s) | queue: {queue} | "
            f"agents: {tiers or '-'}"
        )


def _wall(ts) -> float:
    return ts.seconds + ts.nanos / 1e9 if ts.seconds else 0.0


class PlainView:
    """Line by line, for logs, CI and terminals without rich."""

    def __init__(self, state: LiveState, out: IO[str] | None = None, status_every_s: float = 5.0) -> None:
        self.state = state
        self.out = out or sys.stdout
        self.status_every_s = status_every_s
        self._printed = 0
        # The first status line comes after one period, once snapshots have something to say.
        self._last_status = time.monotonic()

    def print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def refresh(self) -> None:
        stamp = f"[{self.state.elapsed():6.1f}s]"
        new = self.state.lines_total - self._printed
        if new > 0:
            for line in list(self.state.lines)[-min(new, len(self.state.lines)) :]:
                self.print(f"{stamp} {line}")
            self._printed = self.state.lines_total
        now = time.monotonic()
        if now - self._last_status >= self.status_every_s:
            self._last_status = now
            self.print(f"{stamp} {self.state.status_line()}")

    def close(self) -> None:
        self.refresh()


class RichView:
    """A dashboard redrawn in place (rich.live.Live)."""

    def __init__(self, state: LiveState, header: list[str]) -> None:
        from rich.console import Console
        from rich.live import Live

        self.state = state
        self.header = header
        self.console = Console()
        self.live = Live(self._render(), console=self.console, refresh_per_second=2, transient=False)
        self.live.start()

    def print(self, text: str) -> None:
        self.live.console.print(text, markup=False, highlight=False)

    def refresh(self) -> None:
        self.live.update(self._render())

    def close(self) -> None:
        self.live.update(self._render())
        self.live.stop()

    def _render(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        state = self.state
        summary = state.summary()
        senior = summary["flag_to_senior_s"]
        rate = state.events_published / max(state.elapsed(), 1e-6)
        head = Text.assemble(
            ("cctriage live  ", "bold"),
            f"{state.elapsed():.0f} s  events {state.events_published} ({rate:.1f}/s)  "
            f"conversations {state.conversations_started}  flagged {len(state.conversations)}  "
            f"stressed -> tier 1: {senior['count']} (p50 {senior['p50']} s, max {senior['max']} s)",
        )

        stressed = Table(
            title="Stressed conversations (reasons from triage, no customer text)",
            expand=True,
            title_justify="left",
        )
        columns = (
            "conv",
            "simulated as",
            "channel",
            "customer",
            "prio",
            "stress",
            "reasons",
            "status",
            "flag->agent",
        )
        for column in columns:
            stressed.add_column(
                column,
                overflow="fold" if column == "reasons" else "ellipsis",
                ratio=4 if column == "reasons" else None,
            )
        # Open ones first (waiting, offered, with an agent), then the most recently changed.
        recent = sorted(
            state.conversations.values(), key=lambda c: (c.status in OPEN, c.updated), reverse=True
        )[:10]
        for conv in recent:
            status = conv.status
            if conv.agent_id and conv.status == "with agent":
                status = f"with {conv.agent_id} (t{conv.agent_tier})"
            elif conv.agent_id and conv.status == "offered":
                status = f"offered to {conv.agent_id} (t{conv.agent_tier})"
            elif conv.status == "flagged":
                status = f"waiting {max(0.0, time.time() - conv.flagged_at):.0f} s"
            style = "red" if conv.status == "flagged" else "green" if conv.agent_tier == 1 else None
            stressed.add_row(
                short(conv.conversation_id),
                conv.persona or "-",
                channel_name(conv.channel),
                tier_name(conv.customer_tier),
                str(conv.priority),
                f"{conv.stress:.2f}",
                conv.reasons or "-",
                status,
                f"{conv.routed_after_s:.1f} s" if conv.routed_after_s is not None else "-",
                style=style,
            )

        routed = Table(
            title="Who was routed to whom, and why", expand=True, title_justify="left", show_header=False
        )
        routed.add_column("decision", overflow="fold")
        for line in list(state.recent)[:8]:
            routed.add_row(line)

        queue = Table(title="Queue by priority", title_justify="left")
        for column in ("priority", "waiting", "oldest", "answered", "mean wait"):
            queue.add_column(column, justify="right")
        for name, (count, oldest) in state.queue_by_band().items():
            waits = state.wait_by_band.get(name, [])
            queue.add_row(
                name,
                str(count),
                f"{oldest:.0f} s" if count else "-",
                str(len(waits)),
                f"{statistics.fmean(waits):.1f} s" if waits else "-",
            )

        agents = Table(title="Agents by tier", title_justify="left")
        for column in ("tier", "logged in", "available", "with work", "wrap-up", "away", "occupancy"):
            agents.add_column(column, justify="right")
        for tier, row in state.occupancy_by_tier().items():
            agents.add_row(
                str(tier),
                str(int(row["logged_in"])),
                str(int(row["available"])),
                str(int(row["with_conversations"])),
                str(int(row["wrap-up"])),
                str(int(row["away"])),
                f"{row['active'] / row['capacity']:.0%}" if row["capacity"] else "-",
            )
        if self.console.width >= 120:
            grid = Table.grid(expand=True, padding=(0, 2))
            grid.add_column()
            grid.add_column()
            grid.add_row(queue, agents)
        else:
            grid = Group(queue, agents)
        reactions = state.agent_reactions
        foot = Text(
            f"offers: accepted {reactions['accepted']}, declined {reactions['declined']}, "
            f"left to time out {reactions['ignored']}; work: completed {reactions['completed']}, "
            f"closed by the customer first {reactions['ended']}  |  "
            + "  ".join(self.header)
            + "  |  Ctrl+C stops",
            style="dim",
        )
        return Group(head, stressed, routed, grid, foot)
