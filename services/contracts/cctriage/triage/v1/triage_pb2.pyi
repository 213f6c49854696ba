import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from cctriage.events.v1 import events_pb2 as _events_pb2
from cctriage.routing.v1 import routing_pb2 as _routing_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FlagAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FLAG_ACTION_UNSPECIFIED: _ClassVar[FlagAction]
    FLAG_ACTION_RAISED: _ClassVar[FlagAction]
    FLAG_ACTION_UPDATED: _ClassVar[FlagAction]
    FLAG_ACTION_CLEARED: _ClassVar[FlagAction]
    FLAG_ACTION_WITHDRAWN: _ClassVar[FlagAction]

class AlertSeverity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALERT_SEVERITY_UNSPECIFIED: _ClassVar[AlertSeverity]
    ALERT_SEVERITY_INFO: _ClassVar[AlertSeverity]
    ALERT_SEVERITY_WARNING: _ClassVar[AlertSeverity]
    ALERT_SEVERITY_CRITICAL: _ClassVar[AlertSeverity]
FLAG_ACTION_UNSPECIFIED: FlagAction
FLAG_ACTION_RAISED: FlagAction
FLAG_ACTION_UPDATED: FlagAction
FLAG_ACTION_CLEARED: FlagAction
FLAG_ACTION_WITHDRAWN: FlagAction
ALERT_SEVERITY_UNSPECIFIED: AlertSeverity
ALERT_SEVERITY_INFO: AlertSeverity
ALERT_SEVERITY_WARNING: AlertSeverity
ALERT_SEVERITY_CRITICAL: AlertSeverity

class MessageScore(_message.Message):
    __slots__ = ("event_id", "conversation_id", "tenant_id", "channel", "model_version", "negative", "neutral", "positive", "emotions", "stress", "occurred_at", "scored_at")
    class EmotionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_FIELD_NUMBER: _ClassVar[int]
    NEUTRAL_FIELD_NUMBER: _ClassVar[int]
    POSITIVE_FIELD_NUMBER: _ClassVar[int]
    EMOTIONS_FIELD_NUMBER: _ClassVar[int]
    STRESS_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    SCORED_AT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    conversation_id: str
    tenant_id: str
    channel: _events_pb2.Channel
    model_version: str
    negative: float
    neutral: float
    positive: float
    emotions: _containers.ScalarMap[str, float]
    stress: float
    occurred_at: _timestamp_pb2.Timestamp
    scored_at: _timestamp_pb2.Timestamp
    def __init__(self, event_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., channel: _Optional[_Union[_events_pb2.Channel, str]] = ..., model_version: _Optional[str] = ..., negative: _Optional[float] = ..., neutral: _Optional[float] = ..., positive: _Optional[float] = ..., emotions: _Optional[_Mapping[str, float]] = ..., stress: _Optional[float] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., scored_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ConversationFlag(_message.Message):
    __slots__ = ("flag_id", "conversation_id", "tenant_id", "queue", "action", "sequence", "priority", "stress", "stressed", "reasons", "event_id", "channel", "customer_tier", "language", "flagged_at", "required_skills", "previous_agent_id", "withdraw_reason")
    FLAG_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    STRESS_FIELD_NUMBER: _ClassVar[int]
    STRESSED_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_TIER_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_AT_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_SKILLS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    WITHDRAW_REASON_FIELD_NUMBER: _ClassVar[int]
    flag_id: str
    conversation_id: str
    tenant_id: str
    queue: str
    action: FlagAction
    sequence: int
    priority: int
    stress: float
    stressed: bool
    reasons: _containers.RepeatedCompositeFieldContainer[_routing_pb2.Reason]
    event_id: str
    channel: _events_pb2.Channel
    customer_tier: _events_pb2.CustomerTier
    language: str
    flagged_at: _timestamp_pb2.Timestamp
    required_skills: _containers.RepeatedCompositeFieldContainer[_routing_pb2.SkillRequirement]
    previous_agent_id: str
    withdraw_reason: _routing_pb2.WithdrawReason
    def __init__(self, flag_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., queue: _Optional[str] = ..., action: _Optional[_Union[FlagAction, str]] = ..., sequence: _Optional[int] = ..., priority: _Optional[int] = ..., stress: _Optional[float] = ..., stressed: _Optional[bool] = ..., reasons: _Optional[_Iterable[_Union[_routing_pb2.Reason, _Mapping]]] = ..., event_id: _Optional[str] = ..., channel: _Optional[_Union[_events_pb2.Channel, str]] = ..., customer_tier: _Optional[_Union[_events_pb2.CustomerTier, str]] = ..., language: _Optional[str] = ..., flagged_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., required_skills: _Optional[_Iterable[_Union[_routing_pb2.SkillRequirement, _Mapping]]] = ..., previous_agent_id: _Optional[str] = ..., withdraw_reason: _Optional[_Union[_routing_pb2.WithdrawReason, str]] = ...) -> None: ...

class SupervisorAlert(_message.Message):
    __slots__ = ("alert_id", "conversation_id", "tenant_id", "severity", "summary", "reasons", "raised_at")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    RAISED_AT_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    conversation_id: str
    tenant_id: str
    severity: AlertSeverity
    summary: str
    reasons: _containers.RepeatedCompositeFieldContainer[_routing_pb2.Reason]
    raised_at: _timestamp_pb2.Timestamp
    def __init__(self, alert_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., severity: _Optional[_Union[AlertSeverity, str]] = ..., summary: _Optional[str] = ..., reasons: _Optional[_Iterable[_Union[_routing_pb2.Reason, _Mapping]]] = ..., raised_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
