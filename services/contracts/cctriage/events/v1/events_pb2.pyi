import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Channel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_UNSPECIFIED: _ClassVar[Channel]
    CHANNEL_CHAT: _ClassVar[Channel]
    CHANNEL_EMAIL: _ClassVar[Channel]
    CHANNEL_VOICE: _ClassVar[Channel]
    CHANNEL_SOCIAL: _ClassVar[Channel]
    CHANNEL_SMS: _ClassVar[Channel]

class AuthorRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUTHOR_ROLE_UNSPECIFIED: _ClassVar[AuthorRole]
    AUTHOR_ROLE_CUSTOMER: _ClassVar[AuthorRole]
    AUTHOR_ROLE_AGENT: _ClassVar[AuthorRole]
    AUTHOR_ROLE_BOT: _ClassVar[AuthorRole]
    AUTHOR_ROLE_SYSTEM: _ClassVar[AuthorRole]

class CustomerTier(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CUSTOMER_TIER_UNSPECIFIED: _ClassVar[CustomerTier]
    CUSTOMER_TIER_STANDARD: _ClassVar[CustomerTier]
    CUSTOMER_TIER_PREMIUM: _ClassVar[CustomerTier]
    CUSTOMER_TIER_VIP: _ClassVar[CustomerTier]

class CloseReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CLOSE_REASON_UNSPECIFIED: _ClassVar[CloseReason]
    CLOSE_REASON_RESOLVED: _ClassVar[CloseReason]
    CLOSE_REASON_ABANDONED: _ClassVar[CloseReason]
    CLOSE_REASON_TRANSFERRED_OUT: _ClassVar[CloseReason]
    CLOSE_REASON_TIMED_OUT: _ClassVar[CloseReason]
CHANNEL_UNSPECIFIED: Channel
CHANNEL_CHAT: Channel
CHANNEL_EMAIL: Channel
CHANNEL_VOICE: Channel
CHANNEL_SOCIAL: Channel
CHANNEL_SMS: Channel
AUTHOR_ROLE_UNSPECIFIED: AuthorRole
AUTHOR_ROLE_CUSTOMER: AuthorRole
AUTHOR_ROLE_AGENT: AuthorRole
AUTHOR_ROLE_BOT: AuthorRole
AUTHOR_ROLE_SYSTEM: AuthorRole
CUSTOMER_TIER_UNSPECIFIED: CustomerTier
CUSTOMER_TIER_STANDARD: CustomerTier
CUSTOMER_TIER_PREMIUM: CustomerTier
CUSTOMER_TIER_VIP: CustomerTier
CLOSE_REASON_UNSPECIFIED: CloseReason
CLOSE_REASON_RESOLVED: CloseReason
CLOSE_REASON_ABANDONED: CloseReason
CLOSE_REASON_TRANSFERRED_OUT: CloseReason
CLOSE_REASON_TIMED_OUT: CloseReason

class Customer(_message.Message):
    __slots__ = ("customer_id", "tier", "segment", "language")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    tier: CustomerTier
    segment: str
    language: str
    def __init__(self, customer_id: _Optional[str] = ..., tier: _Optional[_Union[CustomerTier, str]] = ..., segment: _Optional[str] = ..., language: _Optional[str] = ...) -> None: ...

class ConversationOpened(_message.Message):
    __slots__ = ("subject", "required_skills", "previous_agent_id", "prior_contact_count")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_SKILLS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    PRIOR_CONTACT_COUNT_FIELD_NUMBER: _ClassVar[int]
    subject: str
    required_skills: _containers.RepeatedScalarFieldContainer[str]
    previous_agent_id: str
    prior_contact_count: int
    def __init__(self, subject: _Optional[str] = ..., required_skills: _Optional[_Iterable[str]] = ..., previous_agent_id: _Optional[str] = ..., prior_contact_count: _Optional[int] = ...) -> None: ...

class MessagePosted(_message.Message):
    __slots__ = ("message_id", "author_role", "author_id", "text", "transcript_confidence")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ROLE_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    author_role: AuthorRole
    author_id: str
    text: str
    transcript_confidence: float
    def __init__(self, message_id: _Optional[str] = ..., author_role: _Optional[_Union[AuthorRole, str]] = ..., author_id: _Optional[str] = ..., text: _Optional[str] = ..., transcript_confidence: _Optional[float] = ...) -> None: ...

class AgentJoined(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class ConversationClosed(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: CloseReason
    def __init__(self, reason: _Optional[_Union[CloseReason, str]] = ...) -> None: ...

class SupportEvent(_message.Message):
    __slots__ = ("event_id", "conversation_id", "tenant_id", "queue", "customer", "channel", "occurred_at", "metadata", "source", "conversation_opened", "message_posted", "agent_joined", "conversation_closed")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_OPENED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_POSTED_FIELD_NUMBER: _ClassVar[int]
    AGENT_JOINED_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_CLOSED_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    conversation_id: str
    tenant_id: str
    queue: str
    customer: Customer
    channel: Channel
    occurred_at: _timestamp_pb2.Timestamp
    metadata: _containers.ScalarMap[str, str]
    source: str
    conversation_opened: ConversationOpened
    message_posted: MessagePosted
    agent_joined: AgentJoined
    conversation_closed: ConversationClosed
    def __init__(self, event_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., queue: _Optional[str] = ..., customer: _Optional[_Union[Customer, _Mapping]] = ..., channel: _Optional[_Union[Channel, str]] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., source: _Optional[str] = ..., conversation_opened: _Optional[_Union[ConversationOpened, _Mapping]] = ..., message_posted: _Optional[_Union[MessagePosted, _Mapping]] = ..., agent_joined: _Optional[_Union[AgentJoined, _Mapping]] = ..., conversation_closed: _Optional[_Union[ConversationClosed, _Mapping]] = ...) -> None: ...
