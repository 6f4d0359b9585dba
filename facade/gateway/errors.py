"""facade's exceptions as Kafka error codes: the one place the gateway translates them."""

from __future__ import annotations

from ..errors import (
    AuthenticationError,
    BrokerTimeoutError,
    ConfigError,
    ConnectionFailedError,
    FacadeError,
    InvalidNameError,
    MessageTooLargeError,
    NotEnoughReplicasError,
    OffsetOutOfRangeError,
    OutOfMemoryError,
    OutOfOrderSequenceError,
    PermissionDeniedError,
    ReadOnlyError,
    ServerBusyError,
    TopicExistsError,
    UnknownTopicError,
    UnsupportedError,
)
from .protocol import ErrorCode

__all__ = ["kafka_error"]

# Most specific first: the first class an exception is an instance of decides.
_MAP: tuple[tuple[type[BaseException], ErrorCode], ...] = (
    (UnknownTopicError, ErrorCode.unknown_topic_or_partition),
    (TopicExistsError, ErrorCode.topic_already_exists),
    (InvalidNameError, ErrorCode.invalid_topic_exception),
    (MessageTooLargeError, ErrorCode.message_too_large),
    (UnsupportedError, ErrorCode.unsupported_version),
    (OutOfOrderSequenceError, ErrorCode.out_of_order_sequence_number),
    (OffsetOutOfRangeError, ErrorCode.offset_out_of_range),
    (PermissionDeniedError, ErrorCode.topic_authorization_failed),
    (AuthenticationError, ErrorCode.sasl_authentication_failed),
    (NotEnoughReplicasError, ErrorCode.not_enough_replicas),
    (ReadOnlyError, ErrorCode.not_leader_or_follower),
    (OutOfMemoryError, ErrorCode.kafka_storage_error),
    (ServerBusyError, ErrorCode.request_timed_out),
    (BrokerTimeoutError, ErrorCode.request_timed_out),
    (ConnectionFailedError, ErrorCode.network_exception),
    (ConfigError, ErrorCode.invalid_request),
)


def kafka_error(exc: BaseException) -> ErrorCode:
    """The Kafka error code a client should see for ``exc`` (UNKNOWN_SERVER_ERROR when none fits;
    retriable facade errors that fit nothing become REQUEST_TIMED_OUT, which clients retry)."""
    for cls, code in _MAP:
        if isinstance(exc, cls):
            return code
    if isinstance(exc, FacadeError) and getattr(exc, "retriable", False):
        return ErrorCode.request_timed_out
    return ErrorCode.unknown_server_error
