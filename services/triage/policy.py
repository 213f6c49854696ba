"""The stress policy: from scored customer turns to a flag, a priority and the reasons.

Everything here is pure (no I/O, no clock): the same conversation state always gives the same
decision, so a replayed event re-creates the same flag with the same sequence number and the
same idempotency key. Every number is a setting (``PolicyConfig``, environment ``TRIAGE_POLICY_*``)
and every flag carries the reasons that caused it, in words a supervisor understands.

How it works, in order:

1. Each customer message gets a *turn stress* from the model (``MessageScores.stress``, 0..1).
2. The conversation's *stress* is the recency-weighted mean of the last ``window`` turn stresses
   (weight ``recency_decay ** age``, age 0 = newest), plus a boost for a negative streak, plus a
   boost for cues (cancellation, complaint, chargeback, legal, repeat contact), clamped to 0..1.
   More negative input never lowers it (property-tested).
3. *Hysteresis*: a conversation becomes stressed when stress >= ``raise_stress`` and stays so
   until stress < ``release_stress`` (< ``raise_stress``), so it does not flap.
4. *Priority* 0..100 = stress points + tier points + waiting points.
5. *Flags*: RAISED when it becomes stressed, UPDATED when the priority of a stressed
   conversation moves by at least ``priority_step``, CLEARED when it calms below the release
   threshold (the routing call is then an update with ``stressed=false`` and the lower priority:
   the customer keeps their place in the queue or their agent, only the senior-agent bullseye
   goes), WITHDRAWN when a routed conversation closes.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Iterable, Sequence

from cctriage_common.settings import SettingsError, env_field

# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
    raise_stress: float = env_field(
        "TRIAGE_POLICY_RAISE_STRESS", 0.6, "Stress at or above which a conversation is flagged as stressed."
    )
    release_stress: float = env_field(
        "TRIAGE_POLICY_RELEASE_STRESS", 0.35,
        "A stressed conversation is cleared only when stress falls below this (hysteresis).",
    )
    window: int = env_field("TRIAGE_POLICY_WINDOW", 6, "Customer turns kept and weighted for stress.")
    recency_decay: float = env_field(
        "TRIAGE_POLICY_RECENCY_DECAY", 0.7,
        "Weight of a turn relative to the next newer one (0..1; lower = newest counts more).",
    )
    negative_turn: float = env_field(
        "TRIAGE_POLICY_NEGATIVE_TURN", 0.5, "Negative score at or above which a turn counts as negative."
    )
    streak_boost: float = env_field(
        "TRIAGE_POLICY_STREAK_BOOST", 0.05, "Stress added per negative turn in a row beyond the first."
    )
    streak_cap: int = env_field("TRIAGE_POLICY_STREAK_CAP", 5, "Negative turns in a row counted at most.")
    cue_boost_cap: float = env_field(
        "TRIAGE_POLICY_CUE_BOOST_CAP", 0.3, "Most stress that cues together can add."
    )
    emotion_reason: float = env_field(
        "TRIAGE_POLICY_EMOTION_REASON", 0.7, "An emotion at or above this in the newest turn is a reason."
    )
    rising_reason: float = env_field(
        "TRIAGE_POLICY_RISING_REASON", 0.2, "Stress up by at least this since the start is a reason."
    )
    stress_points: float = env_field(
        "TRIAGE_POLICY_STRESS_POINTS", 70.0, "Priority points at stress 1.0 (scaled linearly)."
    )
    premium_points: float = env_field("TRIAGE_POLICY_PREMIUM_POINTS", 8.0, "Priority points for premium.")
    vip_points: float = env_field("TRIAGE_POLICY_VIP_POINTS", 15.0, "Priority points for VIP customers.")
    waiting_points_per_minute: float = env_field(
        "TRIAGE_POLICY_WAITING_POINTS_PER_MINUTE", 2.0,
        "Priority points per minute the customer waits for an agent's reply.",
    )
    waiting_points_cap: float = env_field(
        "TRIAGE_POLICY_WAITING_POINTS_CAP", 15.0, "Most priority points waiting can add."
    )
    waiting_reason_s: float = env_field(
        "TRIAGE_POLICY_WAITING_REASON_S", 60.0, "Waiting at least this long for an agent is a reason."
    )
    priority_step: int = env_field(
        "TRIAGE_POLICY_PRIORITY_STEP", 5,
        "A stressed conversation's priority change smaller than this is not sent (avoids chatter).",
    )
    critical_priority: int = env_field(
        "TRIAGE_POLICY_CRITICAL_PRIORITY", 85, "Priority at or above which supervisors get a critical alert."
    )

    def validate(self) -> None:
        if not 0.0 < self.release_stress < self.raise_stress <= 1.0:
            raise SettingsError(
                "need 0 < TRIAGE_POLICY_RELEASE_STRESS < TRIAGE_POLICY_RAISE_STRESS <= 1, got "
                f"{self.release_stress} and {self.raise_stress}"
            )
        if not 0.0 < self.recency_decay <= 1.0:
            raise SettingsError(f"TRIAGE_POLICY_RECENCY_DECAY={self.recency_decay} must be in (0, 1]")
        if self.window < 1:
            raise SettingsError(f"TRIAGE_POLICY_WINDOW={self.window} must be at least 1")
        if self.priority_step < 1:
            raise SettingsError(f"TRIAGE_POLICY_PRIORITY_STEP={self.priority_step} must be at least 1")


# --------------------------------------------------------------------------------------------
# Cues: simple, explainable regular expressions (English). Only the cue code is kept, never text.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Cue:
    code: str
    detail: str
    boost: float
    pattern: re.Pattern[str]
    critical: bool = False


def _rx(*alternatives: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b", re.IGNORECASE)


CUES: tuple[Cue, ...] = (
    Cue(
        "repeat_contact", "repeat contact about the same issue", 0.1,
        _rx(
            r"(?:second|third|fourth|fifth|2nd|3rd|4th|5th|\d+th) time",
            r"(?:several|many|multiple|\d+) times",
            r"(?:already|again|keep) "
            r"(?:called|calling|written|writing|wrote|contacted|emailed|messaged|told)",
            r"(?:called|written|wrote|contacted|emailed|messaged) (?:you )?(?:before|already|again)",
        ),
    ),
    Cue(
        "cancel_threat", "mentions cancelling", 0.1,
        _rx(
            r"cancel(?:l?ing|l?ed|lation)?",
            r"close my account",
            r"terminate (?:my |the )?(?:contract|account|subscription)",
            r"switch(?:ing)? (?:to|provider)",
            r"take my business elsewhere",
        ),
    ),
    Cue(
        "complaint_threat", "threatens a formal complaint", 0.1,
        _rx(
            r"(?:formal|official) complaint",
            r"(?:file|make|lodge|raise) a complaint",
            r"complain(?:ing)? to",
            r"ombudsman",
            r"regulator",
            r"(?:bad|negative|one.star|1.star) review",
            r"report you",
        ),
    ),
    Cue(
        "chargeback", "mentions a chargeback", 0.15,
        _rx(
            r"charge.?backs?",
            r"dispute (?:the|this|a) (?:charge|payment|transaction)",
            r"(?:call|contact|tell) my bank",
        ),
        critical=True,
    ),
    Cue(
        "legal", "mentions legal action", 0.2,
        _rx(
            r"lawyers?", r"attorneys?", r"solicitors?", r"legal action", r"sue", r"suing", r"lawsuit",
            r"court",
        ),
        critical=True,
    ),
)
CUES_BY_CODE = {cue.code: cue for cue in CUES}
REPEAT_CONTACT = "repeat_contact"


def detect_cues(text: str) -> frozenset[str]:
    """Codes of the cues a customer message contains (the text itself is not kept)."""
    return frozenset(cue.code for cue in CUES if cue.pattern.search(text))


# --------------------------------------------------------------------------------------------
# Assessment
# --------------------------------------------------------------------------------------------


class Tier(enum.IntEnum):
    """Mirrors cctriage.events.v1.CustomerTier (kept here so the policy has no proto import)."""

    UNSPECIFIED = 0
    STANDARD = 1
    PREMIUM = 2
    VIP = 3


@dataclasses.dataclass(frozen=True)
class Turn:
    """One scored customer message, as the policy sees it (no text)."""

    event_id: str
    stress: float
    negative: float
    emotions: dict[str, float]
    at: float


@dataclasses.dataclass(frozen=True)
class Reason:
    code: str
    detail: str
    value: float = 0.0


@dataclasses.dataclass(frozen=True)
class Assessment:
    stress: float
    trend: float
    negative_streak: int
    priority: int
    reasons: tuple[Reason, ...]


def weighted_stress(turn_stresses: Sequence[float], config: PolicyConfig) -> float:
    """Recency-weighted mean of the newest ``window`` turn stresses (newest last)."""
    recent = list(turn_stresses)[-config.window :]
    if not recent:
        return 0.0
    total = weight_sum = 0.0
    for age, value in enumerate(reversed(recent)):
        weight = config.recency_decay**age
        total += weight * value
        weight_sum += weight
    return total / weight_sum


def negative_streak(turns: Sequence[Turn], config: PolicyConfig) -> int:
    """Negative customer turns in a row, counted back from the newest."""
    streak = 0
    for turn in reversed(turns):
        if turn.negative < config.negative_turn:
            break
        streak += 1
    return streak


def conversation_stress(
    turns: Sequence[Turn], streak: int, cues: Iterable[str], config: PolicyConfig
) -> float:
    base = weighted_stress([t.stress for t in turns], config)
    streak_part = config.streak_boost * max(0, min(streak, config.streak_cap) - 1)
    cue_part = min(config.cue_boost_cap, sum(CUES_BY_CODE[c].boost for c in cues if c in CUES_BY_CODE))
    return min(1.0, max(0.0, base + streak_part + cue_part))


def priority_for(stress: float, tier: int, waiting_s: float, config: PolicyConfig) -> int:
    points = config.stress_points * stress
    if tier == Tier.VIP:
        points += config.vip_points
    elif tier == Tier.PREMIUM:
        points += config.premium_points
    points += min(config.waiting_points_cap, config.waiting_points_per_minute * max(0.0, waiting_s) / 60.0)
    return int(min(100, max(0, round(points))))


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def assess(
    turns: Sequence[Turn],
    first_stress: float | None,
    cues: Iterable[str],
    tier: int,
    waiting_s: float,
    config: PolicyConfig,
) -> Assessment:
    """Stress, trend, priority and the reasons behind them, for the conversation as it is now."""
    cues = sorted(set(cues))
    streak = negative_streak(turns, config)
    stress = conversation_stress(turns, streak, cues, config)
    trend = stress - first_stress if first_stress is not None else 0.0
    priority = priority_for(stress, tier, waiting_s, config)

    reasons = [Reason("stress", f"stress {stress:.2f}", round(stress, 4))]
    if streak >= 2:
        reasons.append(Reason("negative_streak", f"negative {streak} turns in a row", streak))
    if turns:
        for emotion, value in sorted(turns[-1].emotions.items()):
            if emotion in ("anger", "sadness", "fear") and value >= config.emotion_reason:
                reasons.append(Reason(emotion, f"{emotion} {value:.2f}", round(value, 4)))
    if trend >= config.rising_reason and len(turns) >= 2:
        reasons.append(Reason("rising", f"stress up {trend:.2f} since the start", round(trend, 4)))
    for code in cues:
        reasons.append(Reason(code, CUES_BY_CODE[code].detail, 1.0))
    if waiting_s >= config.waiting_reason_s:
        reasons.append(
            Reason("waiting", f"waiting {_minutes(waiting_s)} for an agent", round(waiting_s, 1))
        )
    if tier == Tier.VIP:
        reasons.append(Reason("tier", "VIP customer", float(tier)))
    elif tier == Tier.PREMIUM:
        reasons.append(Reason("tier", "premium customer", float(tier)))
    return Assessment(stress, trend, streak, priority, tuple(reasons))


# --------------------------------------------------------------------------------------------
# Decisions
# --------------------------------------------------------------------------------------------


class Action(enum.IntEnum):
    """Mirrors cctriage.triage.v1.FlagAction."""

    RAISED = 1
    UPDATED = 2
    CLEARED = 3
    WITHDRAWN = 4


def stays_stressed(stressed: bool, stress: float, config: PolicyConfig) -> bool:
    """Hysteresis: raise at or above ``raise_stress``, release only below ``release_stress``."""
    if stressed:
        return stress >= config.release_stress
    return stress >= config.raise_stress


@dataclasses.dataclass(frozen=True)
class Decision:
    action: Action
    priority: int
    stressed: bool


def decide(stressed: bool, routed: bool, last_priority: int, assessment: Assessment,
           config: PolicyConfig, new_cue: bool = False) -> Decision | None:
    """What to tell routing after a customer turn; None when nothing changed enough.

    ``stressed``: the conversation is currently flagged; ``routed``: a route call was made for
    it; ``last_priority``: the priority last sent; ``new_cue``: this turn added a cue (e.g. a
    legal threat) that the last flag did not carry, which routing and supervisors must hear
    even when the priority is already at its ceiling.
    """
    now_stressed = stays_stressed(stressed, assessment.stress, config)
    if now_stressed and not stressed:
        return Decision(Action.RAISED if not routed else Action.UPDATED, assessment.priority, True)
    if stressed and not now_stressed:
        return Decision(Action.CLEARED, assessment.priority, False)
    if stressed and (new_cue or abs(assessment.priority - last_priority) >= config.priority_step):
        return Decision(Action.UPDATED, assessment.priority, True)
    return None


def is_critical(assessment: Assessment, cues: Iterable[str], config: PolicyConfig) -> bool:
    """Supervisors get a critical alert for a legal or chargeback threat or a very high priority."""
    return assessment.priority >= config.critical_priority or any(
        CUES_BY_CODE[c].critical for c in cues if c in CUES_BY_CODE
    )


def priority_band(priority: int) -> str:
    """Small fixed label set for metrics."""
    if priority >= 85:
        return "critical"
    if priority >= 70:
        return "high"
    if priority >= 40:
        return "medium"
    return "low"
