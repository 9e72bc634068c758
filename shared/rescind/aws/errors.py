"""The one map from AWS's errors to Rescind's typed ones, like `vault_errors` does for hvac.

Every AWS error Rescind raises goes through `aws_error` (or `aws_errors`, its context manager): botocore's
ClientError and connection errors, an error code AWS reports inside a 200 (a PutEvents entry), and the error
Powertools' parameters utility wraps around either. What each type means for a retry:

| AWS says                                   | Rescind raises   | retried by                              |
|--------------------------------------------|------------------|-----------------------------------------|
| a throttling code, 429                     | AwsThrottled     | the state machines' Retry (by name)     |
| 5xx, an internal-error code, no connection | AwsUnavailable   | the state machines' Retry (by name)     |
| access denied, bad or missing credentials  | AwsAccessDenied  | nothing: a person must fix permissions  |
| no such resource                           | AwsNotFound      | nothing: the caller decides what it means |
| anything else                              | ActionFailed     | nothing                                 |

botocore itself retries first, in standard mode (`rescind.aws.session.AWS_CLIENT_CONFIG`): what reaches this map
has already been retried within the call.
"""

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

from rescind.exceptions import (
    ActionFailed,
    AwsAccessDenied,
    AwsNotFound,
    AwsThrottled,
    AwsUnavailable,
    RescindError,
)

# AWS services spell throttling in several ways.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "Throttled",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "SlowDown",
        "PriorRequestNotComplete",
        "BandwidthLimitExceeded",
        "EC2ThrottledException",
        "KMSThrottling",
        "KMSThrottlingException",
    }
)

# The service failed or could not answer: the same call may well succeed in a moment.
UNAVAILABLE_CODES = frozenset(
    {
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "Unavailable",
        "InternalFailure",
        "InternalError",
        "InternalErrorException",
        "InternalException",
        "InternalServerError",
        "InternalServerErrorException",
        "InternalServiceError",
        "InternalServiceErrorException",
        "ServiceFailure",
        "ServiceFailureException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)

# "Not allowed", or not who AWS will talk to: a retry will not fix it.
ACCESS_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "AuthorizationError",
        "UnauthorizedOperation",
        "UnauthorizedAccess",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
        "KMSAccessDenied",
        "KMSAccessDeniedException",
    }
)

NOT_FOUND_CODES = frozenset(
    {
        "NoSuchEntity",
        "NoSuchEntityException",
        "ResourceNotFoundException",
        "NotFound",
        "NotFoundException",
        "NoSuchKey",
        "NoSuchBucket",
        "ExecutionDoesNotExist",
        "StateMachineDoesNotExist",
        "ClusterNotFoundException",
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


def error_type_for(code: str, status: int = 0) -> type[RescindError]:
    """The Rescind error type for an AWS error code and HTTP status (0 when there is none, as in a PutEvents
    entry). The code decides first; the status only when the code is not a known one."""
    if code in THROTTLING_CODES:
        return AwsThrottled
    if code in UNAVAILABLE_CODES:
        return AwsUnavailable
    if code in ACCESS_DENIED_CODES:
        return AwsAccessDenied
    if code in NOT_FOUND_CODES:
        return AwsNotFound
    if status == 429:
        return AwsThrottled
    if status >= 500:
        return AwsUnavailable
    if status in (401, 403):
        return AwsAccessDenied
    if status == 404:
        return AwsNotFound
    return ActionFailed


def _describe(error: BaseException) -> str:
    """botocore messages name the operation and AWS's error text, never request parameters."""
    text = str(error).strip() or type(error).__name__
    return text[:300]


def aws_error(error: BaseException, operation: str) -> RescindError:
    """The typed Rescind error for a botocore error (or Powertools' GetParameterError around one)."""
    cause = _unwrapped(error)
    if isinstance(cause, ClientError):
        kind = error_type_for(error_code(cause), http_status(cause))
        what = "access denied: " if kind is AwsAccessDenied else ""
        return kind(f"{operation}: {what}{_describe(cause)}")
    if isinstance(cause, _NETWORK_ERRORS):
        return AwsUnavailable(f"{operation}: {_describe(cause)}")
    if isinstance(cause, NoCredentialsError):
        return AwsAccessDenied(f"{operation}: no AWS credentials: {_describe(cause)}")
    return ActionFailed(f"{operation}: {_describe(cause)}")


def _unwrapped(error: BaseException) -> BaseException:
    """Powertools' parameters utility raises GetParameterError in the except clause of the botocore error."""
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    if isinstance(error, GetParameterError) and isinstance(error.__context__, (ClientError, BotoCoreError)):
        return error.__context__
    return error


@contextmanager
def aws_errors(operation: str) -> Iterator[None]:
    """Raise botocore errors raised inside as their typed Rescind error (see `aws_error`).

    Errors that mean "absent" become AwsNotFound here; a credential module that gives absence a meaning for its
    kind (already revoked, never existed) catches the ClientError itself inside this wrapper.
    """
    try:
        yield
    except (ClientError, BotoCoreError) as error:
        raise aws_error(error, operation) from error
