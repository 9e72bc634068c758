"""The one map from AWS's errors to Rescind's, and the one botocore Config every client is built with."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from rescind.aws.errors import aws_error, aws_errors, error_type_for
from rescind.aws.session import AWS_CLIENT_CONFIG
from rescind.exceptions import (
    ActionFailed,
    AwsAccessDenied,
    AwsNotFound,
    AwsThrottled,
    AwsUnavailable,
    RescindError,
    TransientError,
)
from tests.conftest import REPO_ROOT


def client_error(code: str, status: int, operation: str = "PutItem") -> ClientError:
    """What botocore raises for such an answer (built here: nothing local can be made to throttle)."""
    response: Any = {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, operation)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        # throttling: a rate or quota was exceeded
        (client_error("Throttling", 400), AwsThrottled),
        (client_error("ThrottlingException", 400), AwsThrottled),
        (client_error("ProvisionedThroughputExceededException", 400), AwsThrottled),
        (client_error("RequestLimitExceeded", 400), AwsThrottled),
        (client_error("TooManyRequestsException", 429), AwsThrottled),
        (client_error("SlowDown", 503), AwsThrottled),  # S3 says 503, and means "slow down"
        (client_error("SomethingNew", 429), AwsThrottled),
        # unavailable: the service failed, or could not be reached
        (client_error("ServiceUnavailable", 503), AwsUnavailable),
        (client_error("InternalFailure", 500), AwsUnavailable),
        (client_error("InternalServerError", 500), AwsUnavailable),
        (client_error("InternalError", 500), AwsUnavailable),
        (client_error("BadGateway", 502), AwsUnavailable),
        (client_error("SomethingNew", 500), AwsUnavailable),
        (EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com"), AwsUnavailable),
        (ConnectTimeoutError(endpoint_url="https://iam.amazonaws.com"), AwsUnavailable),
        (ReadTimeoutError(endpoint_url="https://iam.amazonaws.com"), AwsUnavailable),
        # access denied: a person must fix permissions or credentials
        (client_error("AccessDenied", 403), AwsAccessDenied),
        (client_error("AccessDeniedException", 400), AwsAccessDenied),
        (client_error("ExpiredToken", 400), AwsAccessDenied),
        (client_error("AuthorizationError", 403), AwsAccessDenied),
        (NoCredentialsError(), AwsAccessDenied),
        # not found
        (client_error("NoSuchEntity", 404), AwsNotFound),
        (client_error("ResourceNotFoundException", 400), AwsNotFound),
        (client_error("ExecutionDoesNotExist", 400), AwsNotFound),
        (client_error("SomethingMissing", 404), AwsNotFound),
        # anything else is a refusal a retry will not fix
        (client_error("LimitExceeded", 409), ActionFailed),
        (client_error("ValidationException", 400), ActionFailed),
        (ParamValidationError(report="missing TopicArn"), ActionFailed),
    ],
)
def test_each_aws_error_has_one_typed_rescind_error(error: Exception, expected: type[RescindError]) -> None:
    with pytest.raises(RescindError) as raised, aws_errors("dynamodb:PutItem on ledger"):
        raise error

    assert type(raised.value) is expected
    assert str(raised.value).startswith("dynamodb:PutItem on ledger: ")
    assert raised.value.__cause__ is error


def test_throttling_and_unavailable_are_retried_and_the_others_are_not() -> None:
    # The state machines Retry AwsThrottled and AwsUnavailable by name; the rest goes to their Catch
    assert issubclass(AwsThrottled, TransientError)
    assert issubclass(AwsUnavailable, TransientError)
    assert not issubclass(AwsThrottled, AwsUnavailable)
    assert not issubclass(AwsUnavailable, AwsThrottled)
    for terminal in (AwsAccessDenied, AwsNotFound):
        assert issubclass(terminal, ActionFailed)
        assert not issubclass(terminal, TransientError)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("ThrottlingException", AwsThrottled),
        ("InternalFailure", AwsUnavailable),
        ("InternalException", AwsUnavailable),
        ("AccessDeniedException", AwsAccessDenied),
        ("ResourceNotFoundException", AwsNotFound),
        ("MalformedDetail", ActionFailed),
    ],
)
def test_an_error_code_reported_inside_a_200_maps_the_same_way(code: str, expected: type[RescindError]) -> None:
    # PutEvents answers 200 and reports each failed entry's ErrorCode: no HTTP status to go by
    assert error_type_for(code) is expected


def test_the_error_powertools_wraps_around_a_botocore_error_is_unwrapped() -> None:
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    try:
        try:
            raise client_error("ThrottlingException", 400, "GetSecretValue")
        except ClientError as error:
            raise GetParameterError(str(error))  # noqa: B904 - as Powertools' BaseProvider.get does
    except GetParameterError as wrapped:
        typed = aws_error(wrapped, "secretsmanager:GetSecretValue")

    assert type(typed) is AwsThrottled


# --- the one botocore Config ---------------------------------------------------------------------------------


def test_every_client_retries_in_standard_mode_once() -> None:
    # Standard mode: 3 attempts in all, jittered backoff and a retry quota (legacy, botocore's default, makes 5)
    assert AWS_CLIENT_CONFIG.retries == {"mode": "standard"}


class _Body:
    def __init__(self, content: bytes) -> None:
        self._content = content

    def stream(self, **_: Any) -> list[bytes]:
        return [self._content]


def test_a_client_built_with_it_makes_three_attempts_in_all_then_the_error_is_typed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import boto3
    from botocore.awsrequest import AWSResponse

    monkeypatch.setattr("time.sleep", lambda seconds: None)  # botocore's backoff between attempts
    client = boto3.client(
        "secretsmanager",
        region_name="eu-west-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=AWS_CLIENT_CONFIG,
    )
    attempts: list[str] = []

    def unavailable(request: Any, **_: Any) -> AWSResponse:
        attempts.append(request.url)  # in place of the network: what Secrets Manager answers when it fails
        return AWSResponse(request.url, 500, {}, _Body(b'{"__type": "InternalServiceError", "message": "m"}'))

    client.meta.events.register("before-send.secrets-manager.GetSecretValue", unavailable)

    with pytest.raises(AwsUnavailable, match="InternalServiceError"), aws_errors("secretsmanager:GetSecretValue"):
        client.get_secret_value(SecretId="rescind/github-webhook")
    assert len(attempts) == 3


def test_the_runtime_factories_build_their_clients_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from rescind import runtime
    from rescind.aws import stored_secrets
    from rescind.offboarding.runtime import get_sfn_client

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    runtime.reset_caches()
    stored_secrets.forget_cached_secrets()
    try:
        clients = [
            runtime.get_dynamodb_client(),
            runtime.get_sns_client(),
            runtime.get_s3_client(),
            runtime.get_secretsmanager_client(),
            runtime.get_events_client(),
            get_sfn_client(),
            stored_secrets._provider().client,
        ]
        for client in clients:
            assert client.meta.config.retries == {"mode": "standard"}, client.meta.service_model
    finally:
        runtime.reset_caches()
        stored_secrets.forget_cached_secrets()


def _built_clients(path: Path) -> list[tuple[int, bool]]:
    """(line, passes config=) for every `boto3.client(...)` or `<session>.client(...)` call in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "client"):
            continue
        receiver = ast.unparse(node.func.value)
        if receiver == "boto3" or "session" in receiver.lower():
            found.append((node.lineno, any(keyword.arg == "config" for keyword in node.keywords)))
    return found


def test_no_client_is_built_without_it_in_the_layer_or_the_functions() -> None:
    sources = sorted((REPO_ROOT / "shared" / "rescind").rglob("*.py")) + sorted((REPO_ROOT / "functions").rglob("*.py"))
    built = {
        f"{path.relative_to(REPO_ROOT)}:{line}": configured
        for path in sources
        for line, configured in _built_clients(path)
    }

    # The scan finds the factories (the runtime's one getter and the cross-account session's); an empty scan
    # would pass vacuously
    assert {where.split(":")[0] for where in built} >= {"shared/rescind/runtime.py", "shared/rescind/aws/session.py"}
    assert [where for where, configured in built.items() if not configured] == []
