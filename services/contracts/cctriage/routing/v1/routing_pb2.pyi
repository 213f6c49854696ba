import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from cctriage.events.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgentState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGENT_STATE_UNSPECIFIED: _ClassVar[AgentState]
    AGENT_STATE_AVAILABLE: _ClassVar[AgentState]
    AGENT_STATE_BUSY: _ClassVar[AgentState]
    AGENT_STATE_AWAY: _ClassVar[AgentState]
    AGENT_STATE_WRAP_UP: _ClassVar[AgentState]
    AGENT_STATE_OFFLINE: _ClassVar[AgentState]

class ConversationStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONVERSATION_STATUS_UNSPECIFIED: _ClassVar[ConversationStatus]
    CONVERSATION_STATUS_WAITING: _ClassVar[ConversationStatus]
    CONVERSATION_STATUS_OFFERED: _ClassVar[ConversationStatus]
    CONVERSATION_STATUS_ASSIGNED: _ClassVar[ConversationStatus]
    CONVERSATION_STATUS_COMPLETED: _ClassVar[ConversationStatus]
    CONVERSATION_STATUS_WITHDRAWN: _ClassVar[ConversationStatus]

class WithdrawReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WITHDRAW_REASON_UNSPECIFIED: _ClassVar[WithdrawReason]
    WITHDRAW_REASON_DEESCALATED: _ClassVar[WithdrawReason]
    WITHDRAW_REASON_CLOSED: _ClassVar[WithdrawReason]
    WITHDRAW_REASON_ABANDONED: _ClassVar[WithdrawReason]

class OfferEndReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OFFER_END_REASON_UNSPECIFIED: _ClassVar[OfferEndReason]
    OFFER_END_REASON_TIMED_OUT: _ClassVar[OfferEndReason]
    OFFER_END_REASON_WITHDRAWN: _ClassVar[OfferEndReason]
    OFFER_END_REASON_SUPERSEDED: _ClassVar[OfferEndReason]

class DecisionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_KIND_UNSPECIFIED: _ClassVar[DecisionKind]
    DECISION_KIND_QUEUED: _ClassVar[DecisionKind]
    DECISION_KIND_OFFERED: _ClassVar[DecisionKind]
    DECISION_KIND_ACCEPTED: _ClassVar[DecisionKind]
    DECISION_KIND_DECLINED: _ClassVar[DecisionKind]
    DECISION_KIND_OFFER_TIMED_OUT: _ClassVar[DecisionKind]
    DECISION_KIND_COMPLETED: _ClassVar[DecisionKind]
    DECISION_KIND_TRANSFERRED: _ClassVar[DecisionKind]
    DECISION_KIND_WITHDRAWN: _ClassVar[DecisionKind]
    DECISION_KIND_REPRIORITISED: _ClassVar[DecisionKind]
    DECISION_KIND_AGENT_NOT_READY: _ClassVar[DecisionKind]
AGENT_STATE_UNSPECIFIED: AgentState
AGENT_STATE_AVAILABLE: AgentState
AGENT_STATE_BUSY: AgentState
AGENT_STATE_AWAY: AgentState
AGENT_STATE_WRAP_UP: AgentState
AGENT_STATE_OFFLINE: AgentState
CONVERSATION_STATUS_UNSPECIFIED: ConversationStatus
CONVERSATION_STATUS_WAITING: ConversationStatus
CONVERSATION_STATUS_OFFERED: ConversationStatus
CONVERSATION_STATUS_ASSIGNED: ConversationStatus
CONVERSATION_STATUS_COMPLETED: ConversationStatus
CONVERSATION_STATUS_WITHDRAWN: ConversationStatus
WITHDRAW_REASON_UNSPECIFIED: WithdrawReason
WITHDRAW_REASON_DEESCALATED: WithdrawReason
WITHDRAW_REASON_CLOSED: WithdrawReason
WITHDRAW_REASON_ABANDONED: WithdrawReason
OFFER_END_REASON_UNSPECIFIED: OfferEndReason
OFFER_END_REASON_TIMED_OUT: OfferEndReason
OFFER_END_REASON_WITHDRAWN: OfferEndReason
OFFER_END_REASON_SUPERSEDED: OfferEndReason
DECISION_KIND_UNSPECIFIED: DecisionKind
DECISION_KIND_QUEUED: DecisionKind
DECISION_KIND_OFFERED: DecisionKind
DECISION_KIND_ACCEPTED: DecisionKind
DECISION_KIND_DECLINED: DecisionKind
DECISION_KIND_OFFER_TIMED_OUT: DecisionKind
DECISION_KIND_COMPLETED: DecisionKind
DECISION_KIND_TRANSFERRED: DecisionKind
DECISION_KIND_WITHDRAWN: DecisionKind
DECISION_KIND_REPRIORITISED: DecisionKind
DECISION_KIND_AGENT_NOT_READY: DecisionKind

class Reason(_message.Message):
    __slots__ = ("code", "detail", "value")
    CODE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    code: str
    detail: str
    value: float
    def __init__(self, code: _Optional[str] = ..., detail: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...

class SkillRequirement(_message.Message):
    __slots__ = ("skill", "min_proficiency")
    SKILL_FIELD_NUMBER: _ClassVar[int]
    MIN_PROFICIENCY_FIELD_NUMBER: _ClassVar[int]
    skill: str
    min_proficiency: int
    def __init__(self, skill: _Optional[str] = ..., min_proficiency: _Optional[int] = ...) -> None: ...

class AgentSkill(_message.Message):
    __slots__ = ("skill", "proficiency")
    SKILL_FIELD_NUMBER: _ClassVar[int]
    PROFICIENCY_FIELD_NUMBER: _ClassVar[int]
    skill: str
    proficiency: int
    def __init__(self, skill: _Optional[str] = ..., proficiency: _Optional[int] = ...) -> None: ...

class ChannelCapacity(_message.Message):
    __slots__ = ("channel", "capacity")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    channel: _events_pb2.Channel
    capacity: int
    def __init__(self, channel: _Optional[_Union[_events_pb2.Channel, str]] = ..., capacity: _Optional[int] = ...) -> None: ...

class ChannelLoad(_message.Message):
    __slots__ = ("channel", "active", "capacity")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    channel: _events_pb2.Channel
    active: int
    capacity: int
    def __init__(self, channel: _Optional[_Union[_events_pb2.Channel, str]] = ..., active: _Optional[int] = ..., capacity: _Optional[int] = ...) -> None: ...

class RouteAck(_message.Message):
    __slots__ = ("idempotency_key", "response", "error_code", "error_message")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    response: RouteConversationResponse
    error_code: int
    error_message: str
    def __init__(self, idempotency_key: _Optional[str] = ..., response: _Optional[_Union[RouteConversationResponse, _Mapping]] = ..., error_code: _Optional[int] = ..., error_message: _Optional[str] = ...) -> None: ...

class RouteConversationsRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[RouteConversationRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[RouteConversationRequest, _Mapping]]] = ...) -> None: ...

class RouteConversationsResponse(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[RouteConversationResponse]
    def __init__(self, responses: _Optional[_Iterable[_Union[RouteConversationResponse, _Mapping]]] = ...) -> None: ...

class RouteConversationRequest(_message.Message):
    __slots__ = ("idempotency_key", "conversation_id", "tenant_id", "queue", "channel", "priority", "stress", "stressed", "reasons", "required_skills", "language", "customer_tier", "previous_agent_id", "flagged_at", "sequence")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    STRESS_FIELD_NUMBER: _ClassVar[int]
    STRESSED_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_SKILLS_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_TIER_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_AT_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    conversation_id: str
    tenant_id: str
    queue: str
    channel: _events_pb2.Channel
    priority: int
    stress: float
    stressed: bool
    reasons: _containers.RepeatedCompositeFieldContainer[Reason]
    required_skills: _containers.RepeatedCompositeFieldContainer[SkillRequirement]
    language: str
    customer_tier: _events_pb2.CustomerTier
    previous_agent_id: str
    flagged_at: _timestamp_pb2.Timestamp
    sequence: int
    def __init__(self, idempotency_key: _Optional[str] = ..., conversation_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., queue: _Optional[str] = ..., channel: _Optional[_Union[_events_pb2.Channel, str]] = ..., priority: _Optional[int] = ..., stress: _Optional[float] = ..., stressed: _Optional[bool] = ..., reasons: _Optional[_Iterable[_Union[Reason, _Mapping]]] = ..., required_skills: _Optional[_Iterable[_Union[SkillRequirement, _Mapping]]] = ..., language: _Optional[str] = ..., customer_tier: _Optional[_Union[_events_pb2.CustomerTier, str]] = ..., previous_agent_id: _Optional[str] = ..., flagged_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sequence: _Optional[int] = ...) -> None: ...

class RouteConversationResponse(_message.Message):
    __slots__ = ("conversation_id", "status", "duplicate", "agent_id")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    status: ConversationStatus
    duplicate: bool
    agent_id: str
    def __init__(self, conversation_id: _Optional[str] = ..., status: _Optional[_Union[ConversationStatus, str]] = ..., duplicate: _Optional[bool] = ..., agent_id: _Optional[str] = ...) -> None: ...

class UpdateConversationRequest(_message.Message):
    __slots__ = ("idempotency_key", "conversation_id", "sequence", "priority", "stress", "stressed", "reasons")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    STRESS_FIELD_NUMBER: _ClassVar[int]
    STRESSED_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    conversation_id: str
    sequence: int
    priority: int
    stress: float
    stressed: bool
    reasons: _containers.RepeatedCompositeFieldContainer[Reason]
    def __init__(self, idempotency_key: _Optional[str] = ..., conversation_id: _Optional[str] = ..., sequence: _Optional[int] = ..., priority: _Optional[int] = ..., stress: _Optional[float] = ..., stressed: _Optional[bool] = ..., reasons: _Optional[_Iterable[_Union[Reason, _Mapping]]] = ...) -> None: ...

class UpdateConversationResponse(_message.Message):
    __slots__ = ("conversation_id", "status", "duplicate", "stale")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    status: ConversationStatus
    duplicate: bool
    stale: bool
    def __init__(self, conversation_id: _Optional[str] = ..., status: _Optional[_Union[ConversationStatus, str]] = ..., duplicate: _Optional[bool] = ..., stale: _Optional[bool] = ...) -> None: ...

class WithdrawConversationRequest(_message.Message):
    __slots__ = ("idempotency_key", "conversation_id", "sequence", "reason")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    conversation_id: str
    sequence: int
    reason: WithdrawReason
    def __init__(self, idempotency_key: _Optional[str] = ..., conversation_id: _Optional[str] = ..., sequence: _Optional[int] = ..., reason: _Optional[_Union[WithdrawReason, str]] = ...) -> None: ...

class WithdrawConversationResponse(_message.Message):
    __slots__ = ("conversation_id", "status", "duplicate", "stale")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    status: ConversationStatus
    duplicate: bool
    stale: bool
    def __init__(self, conversation_id: _Optional[str] = ..., status: _Optional[_Union[ConversationStatus, str]] = ..., duplicate: _Optional[bool] = ..., stale: _Optional[bool] = ...) -> None: ...

class LoginRequest(_message.Message):
    __slots__ = ("agent_id", "tenant_id", "tier", "skills", "languages", "capacities", "queues")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    SKILLS_FIELD_NUMBER: _ClassVar[int]
    LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    CAPACITIES_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    tenant_id: str
    tier: int
    skills: _containers.RepeatedCompositeFieldContainer[AgentSkill]
    languages: _containers.RepeatedScalarFieldContainer[str]
    capacities: _containers.RepeatedCompositeFieldContainer[ChannelCapacity]
    queues: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, agent_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., tier: _Optional[int] = ..., skills: _Optional[_Iterable[_Union[AgentSkill, _Mapping]]] = ..., languages: _Optional[_Iterable[str]] = ..., capacities: _Optional[_Iterable[_Union[ChannelCapacity, _Mapping]]] = ..., queues: _Optional[_Iterable[str]] = ...) -> None: ...

class SetStateRequest(_message.Message):
    __slots__ = ("agent_id", "state", "reason", "wrap_up_seconds")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    WRAP_UP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    state: AgentState
    reason: str
    wrap_up_seconds: int
    def __init__(self, agent_id: _Optional[str] = ..., state: _Optional[_Union[AgentState, str]] = ..., reason: _Optional[str] = ..., wrap_up_seconds: _Optional[int] = ...) -> None: ...

class LogoutRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class AgentStatus(_message.Message):
    __slots__ = ("agent_id", "tenant_id", "tier", "state", "state_reason", "state_since", "skills", "languages", "load", "queues", "missed_offers", "last_assignment_at", "conversation_ids")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_REASON_FIELD_NUMBER: _ClassVar[int]
    STATE_SINCE_FIELD_NUMBER: _ClassVar[int]
    SKILLS_FIELD_NUMBER: _ClassVar[int]
    LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    MISSED_OFFERS_FIELD_NUMBER: _ClassVar[int]
    LAST_ASSIGNMENT_AT_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_IDS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    tenant_id: str
    tier: int
    state: AgentState
    state_reason: str
    state_since: _timestamp_pb2.Timestamp
    skills: _containers.RepeatedCompositeFieldContainer[AgentSkill]
    languages: _containers.RepeatedScalarFieldContainer[str]
    load: _containers.RepeatedCompositeFieldContainer[ChannelLoad]
    queues: _containers.RepeatedScalarFieldContainer[str]
    missed_offers: int
    last_assignment_at: _timestamp_pb2.Timestamp
    conversation_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, agent_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., tier: _Optional[int] = ..., state: _Optional[_Union[AgentState, str]] = ..., state_reason: _Optional[str] = ..., state_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., skills: _Optional[_Iterable[_Union[AgentSkill, _Mapping]]] = ..., languages: _Optional[_Iterable[str]] = ..., load: _Optional[_Iterable[_Union[ChannelLoad, _Mapping]]] = ..., queues: _Optional[_Iterable[str]] = ..., missed_offers: _Optional[int] = ..., last_assignment_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., conversation_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class StreamOffersRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class Offer(_message.Message):
    __slots__ = ("offer_id", "conversation_id", "channel", "priority", "stress", "stressed", "reasons", "expires_at", "routing_reason", "waited_seconds", "language", "customer_tier")
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    STRESS_FIELD_NUMBER: _ClassVar[int]
    STRESSED_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ROUTING_REASON_FIELD_NUMBER: _ClassVar[int]
    WAITED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_TIER_FIELD_NUMBER: _ClassVar[int]
    offer_id: str
    conversation_id: str
    channel: _events_pb2.Channel
    priority: int
    stress: float
    stressed: bool
    reasons: _containers.RepeatedCompositeFieldContainer[Reason]
    expires_at: _timestamp_pb2.Timestamp
    routing_reason: str
    waited_seconds: float
    language: str
    customer_tier: _events_pb2.CustomerTier
    def __init__(self, offer_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., channel: _Optional[_Union[_events_pb2.Channel, str]] = ..., priority: _Optional[int] = ..., stress: _Optional[float] = ..., stressed: _Optional[bool] = ..., reasons: _Optional[_Iterable[_Union[Reason, _Mapping]]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., routing_reason: _Optional[str] = ..., waited_seconds: _Optional[float] = ..., language: _Optional[str] = ..., customer_tier: _Optional[_Union[_events_pb2.CustomerTier, str]] = ...) -> None: ...

class OfferRevoked(_message.Message):
    __slots__ = ("offer_id", "conversation_id", "reason")
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    offer_id: str
    conversation_id: str
    reason: OfferEndReason
    def __init__(self, offer_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., reason: _Optional[_Union[OfferEndReason, str]] = ...) -> None: ...

class OfferEvent(_message.Message):
    __slots__ = ("offer", "revoked", "status")
    OFFER_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    offer: Offer
    revoked: OfferRevoked
    status: AgentStatus
    def __init__(self, offer: _Optional[_Union[Offer, _Mapping]] = ..., revoked: _Optional[_Union[OfferRevoked, _Mapping]] = ..., status: _Optional[_Union[AgentStatus, _Mapping]] = ...) -> None: ...

class AcceptOfferRequest(_message.Message):
    __slots__ = ("agent_id", "offer_id")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    offer_id: str
    def __init__(self, agent_id: _Optional[str] = ..., offer_id: _Optional[str] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("assignment_id", "conversation_id", "agent_id", "tier", "routing_reason", "waited_seconds", "assigned_at")
    ASSIGNMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    ROUTING_REASON_FIELD_NUMBER: _ClassVar[int]
    WAITED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    assignment_id: str
    conversation_id: str
    agent_id: str
    tier: int
    routing_reason: str
    waited_seconds: float
    assigned_at: _timestamp_pb2.Timestamp
    def __init__(self, assignment_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., tier: _Optional[int] = ..., routing_reason: _Optional[str] = ..., waited_seconds: _Optional[float] = ..., assigned_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DeclineOfferRequest(_message.Message):
    __slots__ = ("agent_id", "offer_id", "reason")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    offer_id: str
    reason: str
    def __init__(self, agent_id: _Optional[str] = ..., offer_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DeclineOfferResponse(_message.Message):
    __slots__ = ("offer_id",)
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    offer_id: str
    def __init__(self, offer_id: _Optional[str] = ...) -> None: ...

class CompleteConversationRequest(_message.Message):
    __slots__ = ("agent_id", "conversation_id", "wrap_up_seconds")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    WRAP_UP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    conversation_id: str
    wrap_up_seconds: int
    def __init__(self, agent_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., wrap_up_seconds: _Optional[int] = ...) -> None: ...

class TransferConversationRequest(_message.Message):
    __slots__ = ("agent_id", "conversation_id", "target_agent_id", "required_skills", "reason")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_SKILLS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    conversation_id: str
    target_agent_id: str
    required_skills: _containers.RepeatedCompositeFieldContainer[SkillRequirement]
    reason: str
    def __init__(self, agent_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., target_agent_id: _Optional[str] = ..., required_skills: _Optional[_Iterable[_Union[SkillRequirement, _Mapping]]] = ..., reason: _Optional[str] = ...) -> None: ...

class TransferConversationResponse(_message.Message):
    __slots__ = ("conversation_id", "status")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    status: ConversationStatus
    def __init__(self, conversation_id: _Optional[str] = ..., status: _Optional[_Union[ConversationStatus, str]] = ...) -> None: ...

class QueueSnapshotRequest(_message.Message):
    __slots__ = ("tenant_id", "queue", "limit")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    queue: str
    limit: int
    def __init__(self, tenant_id: _Optional[str] = ..., queue: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class WaitingConversation(_message.Message):
    __slots__ = ("conversation_id", "queue", "channel", "priority", "effective_priority", "stress", "stressed", "waited_seconds", "tier_reach", "reasons", "status", "offered_to")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    STRESS_FIELD_NUMBER: _ClassVar[int]
    STRESSED_FIELD_NUMBER: _ClassVar[int]
    WAITED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TIER_REACH_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OFFERED_TO_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    queue: str
    channel: _events_pb2.Channel
    priority: int
    effective_priority: float
    stress: float
    stressed: bool
    waited_seconds: float
    tier_reach: int
    reasons: _containers.RepeatedCompositeFieldContainer[Reason]
    status: ConversationStatus
    offered_to: str
    def __init__(self, conversation_id: _Optional[str] = ..., queue: _Optional[str] = ..., channel: _Optional[_Union[_events_pb2.Channel, str]] = ..., priority: _Optional[int] = ..., effective_priority: _Optional[float] = ..., stress: _Optional[float] = ..., stressed: _Optional[bool] = ..., waited_seconds: _Optional[float] = ..., tier_reach: _Optional[int] = ..., reasons: _Optional[_Iterable[_Union[Reason, _Mapping]]] = ..., status: _Optional[_Union[ConversationStatus, str]] = ..., offered_to: _Optional[str] = ...) -> None: ...

class QueueSnapshot(_message.Message):
    __slots__ = ("taken_at", "waiting", "waiting_stressed", "oldest_wait_seconds", "conversations")
    TAKEN_AT_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    WAITING_STRESSED_FIELD_NUMBER: _ClassVar[int]
    OLDEST_WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CONVERSATIONS_FIELD_NUMBER: _ClassVar[int]
    taken_at: _timestamp_pb2.Timestamp
    waiting: int
    waiting_stressed: int
    oldest_wait_seconds: float
    conversations: _containers.RepeatedCompositeFieldContainer[WaitingConversation]
    def __init__(self, taken_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., waiting: _Optional[int] = ..., waiting_stressed: _Optional[int] = ..., oldest_wait_seconds: _Optional[float] = ..., conversations: _Optional[_Iterable[_Union[WaitingConversation, _Mapping]]] = ...) -> None: ...

class AgentSnapshotRequest(_message.Message):
    __slots__ = ("tenant_id",)
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    def __init__(self, tenant_id: _Optional[str] = ...) -> None: ...

class AgentSnapshot(_message.Message):
    __slots__ = ("taken_at", "agents", "senior_occupancy_ratio")
    TAKEN_AT_FIELD_NUMBER: _ClassVar[int]
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    SENIOR_OCCUPANCY_RATIO_FIELD_NUMBER: _ClassVar[int]
    taken_at: _timestamp_pb2.Timestamp
    agents: _containers.RepeatedCompositeFieldContainer[AgentStatus]
    senior_occupancy_ratio: float
    def __init__(self, taken_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., agents: _Optional[_Iterable[_Union[AgentStatus, _Mapping]]] = ..., senior_occupancy_ratio: _Optional[float] = ...) -> None: ...

class RoutingDecision(_message.Message):
    __slots__ = ("decision_id", "kind", "conversation_id", "agent_id", "tier", "priority", "effective_priority", "waited_seconds", "reason", "triage_reasons", "decided_at", "tenant_id", "offer_id")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    WAITED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TRIAGE_REASONS_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    kind: DecisionKind
    conversation_id: str
    agent_id: str
    tier: int
    priority: int
    effective_priority: float
    waited_seconds: float
    reason: str
    triage_reasons: _containers.RepeatedCompositeFieldContainer[Reason]
    decided_at: _timestamp_pb2.Timestamp
    tenant_id: str
    offer_id: str
    def __init__(self, decision_id: _Optional[str] = ..., kind: _Optional[_Union[DecisionKind, str]] = ..., conversation_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., tier: _Optional[int] = ..., priority: _Optional[int] = ..., effective_priority: _Optional[float] = ..., waited_seconds: _Optional[float] = ..., reason: _Optional[str] = ..., triage_reasons: _Optional[_Iterable[_Union[Reason, _Mapping]]] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tenant_id: _Optional[str] = ..., offer_id: _Optional[str] = ...) -> None: ...
