"""Turning botocore's errors into Rescind's typed ones, like `vault_errors` does for hvac."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from rescind.exceptions import ActionFailed, AwsThrottled

# Error codes a retry can fix. AWS services spell throttling in several ways.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "SlowDown",
        "PriorRequestNotComplete",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
        "InternalServiceError",
        "InternalServiceErrorException",
        "ServiceFailure",
        "ServiceFailureException",
    }
)

# Error codes that mean "not allowed": a retry will not fix them.
ACCESS_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnauthorizedAccess",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
    }
)

_NETWORK_ERRORS: tuple[type[Exception], ...] = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ConnectionError,
)


def error_code(error: ClientError) -> str:
    """The AWS error code of a ClientError ('' when the response has none)."""
    return str(error.response.get("Error", {}).get("Code", ""))


def http_status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def is_transient(error: ClientError) -> bool:
    return error_code(error) in THROTTLING_CODES or http_status(error) >= 500


def _describe(error: Exception) -> str:
    """botocore messages name the operation and AWS's error text, never request parameters."""
    text = str(error).strip() or type(error).__name__
    return text[:300]


@contextmanager
def aws_errors(operation: str) -> Iterator[None]:
    """Translate botocore errors raised inside into AwsThrottled or ActionFailed.

    Throttling, 5xx and network failures become AwsThrottled (the state machines retry it). Access denied,
    credential problems and every other refusal become ActionFailed. Errors that mean "absent"
    (NoSuchEntity, ResourceNotFoundException...) are not special here: each credential module decides what
    absence means for its kind, so it catches them itself inside this wrapper.
    """
    try:
        yield
    except ClientError as error:
        if is_transient(error):
            raise AwsThrottled(f"{operation}: {_describe(error)}") from error
        if error_code(error) in ACCESS_DENIED_CODES or http_status(error) in (401, 403):
            raise ActionFailed(f"{operation}: access denied: {_describe(error)}") from error
        raise ActionFailed(f"{operation}: {_describe(error)}") from error
    except _NETWORK_ERRORS as error:
        raise AwsThrottled(f"{operation}: {_describe(error)}") from error
    except NoCredentialsError as error:
        raise ActionFailed(f"{operation}: no AWS credentials: {_describe(error)}") from error
    except BotoCoreError as error:
        raise ActionFailed(f"{operation}: {_describe(error)}") from error
