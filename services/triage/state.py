"""Per-conversation state and its transitions (pure Python, no I/O, no clock).

One ``ConversationState`` per conversation lives in the faust table ``conversations`` (JSON,
with a changelog). Times are the events' own times (``occurred_at``, else the Kafka record
timestamp), never the wall clock, so replaying events rebuilds exactly the same state and
flags. The state keeps ids, scores and cue codes only: never message text.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from cctriage_triage import policy
from cctriage_triage.policy import Action, Assessment, PolicyConfig, Reason, Turn

# Event ids remembered per conversation to drop re-published or replayed duplicates.
SEEN_EVENT_IDS = 256


class Severity(enum.IntEnum):
    """Mirrors cctriage.triage.v1.AlertSeverity."""

    NONE = 0
    INFO = 1
    WARNING = 2
    CRITICAL = 3


class CloseKind(enum.Enum):
    CLOSED = "closed"
    ABANDONED = "abandoned"


@dataclasses.dataclass(frozen=True)
class FlagOutcome:
    """A flag to publish and route: what changed, at which sequence number, and why."""

    action: Action
    sequence: int
    priority: int
    stressed: bool
    stress: float
    reasons: tuple[Reason, ...]
    alert: Severity = Severity.NONE
    close: CloseKind | None = None


@dataclasses.dataclass
class ConversationState:
    conversation_id: str
    tenant_id: str = ""
    queue: str = ""
    channel: int = 0
    tier: int = 0
    language: str = ""
    required_skills: list[str] = dataclasses.field(default_factory=list)
    previous_agent_id: str = ""
    prior_contacts: int = 0
    turns: list[Turn] = dataclasses.field(default_factory=list)
    customer_turns: int = 0
    first_stress: float | None = None
    stress: float = 0.0
    cues: list[str] = dataclasses.field(default_factory=list)
    # Event time of the oldest customer message no agent has answered yet.
    waiting_since: float | None = None
    agent_id: str = ""
    stressed: bool = False
    routed: bool = False
    priority: int = 0
    sequence: int = 0
    alerted: int = Severity.NONE
    closed: bool = False
    last_event_at: float = 0.0
    seen: list[str] = dataclasses.field(default_factory=list)

    # -- serialisation (faust table values are JSON) ------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        # By hand rather than dataclasses.asdict (a recursive deep copy, measured as a visible
        # share of the worker's event loop): lists and the turns' emotion maps are copied, the
        # rest are immutable values.
        data = {name: getattr(self, name) for name in _FIELD_NAMES}
        for name, value in data.items():
            if isinstance(value, list):
                data[name] = list(value)
        data["turns"] = [
            {"event_id": t.event_id, "stress": t.stress, "negative": t.negative,
             "emotions": dict(t.emotions), "at": t.at}
            for t in self.turns
        ]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConversationState:
        # Copies: ``data`` may be the value a table write has queued and not serialized yet;
        # changing its lists in place would leak later changes into that changelog record.
        values = {k: (list(v) if isinstance(v, list) else v) for k, v in data.items() if k in _FIELD_NAMES}
        values["turns"] = [Turn(**{**t, "emotions": dict(t["emotions"])}) for t in data.get("turns", [])]
        return cls(**values)

    # -- idempotency ---------------------------------------------------------------------------

    def seen_before(self, event_id: str) -> bool:
        return event_id in self.seen

    def remember(self, event_id: str) -> None:
        self.seen.append(event_id)
        del self.seen[:-SEEN_EVENT_IDS]

    # -- transitions ---------------------------------------------------------------------------

    def waiting_s(self, at: float) -> float:
        return max(0.0, at - self.waiting_since) if self.waiting_since is not None else 0.0

    def describe(self, tenant_id: str, queue: str, channel: int, tier: int, language: str, at: float) -> None:
        """Envelope fields every event carries; the newest non-empty value wins."""
        self.tenant_id = tenant_id or self.tenant_id
        self.queue = queue or self.queue
        self.channel = channel or self.channel
        self.tier = tier or self.tier
        self.language = language or self.language
        self.last_event_at = max(self.last_event_at, at)

    def open(self, required_skills: list[str], previous_agent_id: str, prior_contacts: int) -> None:
        self.required_skills = list(required_skills)
        self.previous_agent_id = previous_agent_id
        self.prior_contacts = prior_contacts
        if prior_contacts >= 1:
            self._add_cues({policy.REPEAT_CONTACT})

    def customer_message(
        self, turn: Turn, cues: frozenset[str], config: PolicyConfig, sequence: int = 0
    ) -> FlagOutcome | None:
        """A scored customer message: the customer's mood moves, the policy decides."""
        self.turns.append(turn)
        del self.turns[: -config.window]
        self.customer_turns += 1
        known_cues = len(self.cues)
        self._add_cues(cues)
        if self.waiting_since is None:
            self.waiting_since = turn.at
        if self.closed:
            return None
        assessment = self._assess(turn.at, config)
        if self.first_stress is None:
            self.first_stress = assessment.stress
        return self._decide(assessment, config, sequence, new_cue=len(self.cues) > known_cues)

    def agent_message(self, at: float, config: PolicyConfig, sequence: int = 0) -> FlagOutcome | None:
        """An agent replied: the customer no longer waits; priority may drop (not their mood)."""
        self.waiting_since = None
        return self._reassess(at, config, sequence)

    def agent_joined(self, agent_id: str, at: float, config: PolicyConfig) -> FlagOutcome | None:
        self.agent_id = agent_id
        return None

    def close(self, kind: CloseKind, sequence: int = 0) -> FlagOutcome | None:
        """Closing withdraws a routed conversation; the compact state stays for deduplication
        until the grace after the close has passed on stream time (retention.py)."""
        if self.closed:
            return None
        self.closed = True
        self.turns = []
        self.waiting_since = None
        if not self.routed:
            return None
        self.stressed = False
        self.sequence = self._next_sequence(sequence)
        return FlagOutcome(
            Action.WITHDRAWN, self.sequence, 0, False, self.stress,
            (Reason("closed", f"conversation {kind.value}"),), close=kind,
        )

    def expire(self, idle_s: float) -> FlagOutcome | None:
        """No event for ``idle_s`` of event time and no close: the customer left. A routed
        conversation is withdrawn as abandoned; the caller then deletes the state.

        No event of this conversation causes it, so its sequence is the last one + 1: the same
        state expires with the same sequence (and flag id) however the stream was batched or
        replayed."""
        outcome = self.close(CloseKind.ABANDONED)
        if outcome is None:
            return None
        hours = f"{idle_s / 3600:g} h" if idle_s >= 3600 else f"{idle_s / 60:g} min"
        return dataclasses.replace(outcome, reasons=(Reason("expired", f"no event for {hours}"),))

    # -- internals -----------------------------------------------------------------------------

    def _add_cues(self, cues: frozenset[str] | set[str]) -> None:
        for code in sorted(cues):
            if code not in self.cues:
                self.cues.append(code)

    def _assess(self, at: float, config: PolicyConfig) -> Assessment:
        assessment = policy.assess(
            self.turns, self.first_stress, self.cues, self.tier, self.waiting_s(at), config
        )
        self.stress = assessment.stress
        return assessment

    def _reassess(self, at: float, config: PolicyConfig, sequence: int) -> FlagOutcome | None:
        if self.closed or not self.stressed:
            return None
        return self._decide(self._assess(at, config), config, sequence)

    def _next_sequence(self, sequence: int) -> int:
        """The flag's sequence: the caller's (the event's position in its partition, +1), which
        a replay of the same event reproduces whatever it decides, and which grows with every
        later event; never below the last one used."""
        return max(sequence, self.sequence + 1)

    def _decide(
        self, assessment: Assessment, config: PolicyConfig, sequence: int, new_cue: bool = False
    ) -> FlagOutcome | None:
        decision = policy.decide(
            self.stressed, self.routed, self.priority, assessment, config, new_cue=new_cue
        )
        if decision is None:
            return None
        self.sequence = self._next_sequence(sequence)
        self.stressed = decision.stressed
        self.priority = decision.priority
        alert = Severity.NONE
        if decision.action is Action.RAISED:
            self.routed = True
        if decision.stressed:
            critical = policy.is_critical(assessment, self.cues, config)
            wanted = Severity.CRITICAL if critical else Severity.WARNING
            if wanted > self.alerted:
                alert = wanted
                self.alerted = int(wanted)
        else:
            self.alerted = int(Severity.NONE)
        return FlagOutcome(
            decision.action, self.sequence, decision.priority, decision.stressed,
            assessment.stress, assessment.reasons, alert,
        )


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(ConversationState))
