"""Building the hvac client, and turning hvac's errors into Rescind's typed ones."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import hvac
import hvac.exceptions
import requests

from rescind.exceptions import ActionFailed, VaultUnavailable

# hvac error classes that a retry can fix: 5xx, 429, sealed, standby, and no answer at all.
_TRANSIENT_HVAC_ERRORS: tuple[type[Exception], ...] = (
    hvac.exceptions.InternalServerError,
    hvac.exceptions.VaultDown,
    hvac.exceptions.BadGateway,
    hvac.exceptions.RateLimitExceeded,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
)


def _describe(error: Exception) -> str:
    """hvac messages hold the URL and Vault's error text, never request bodies; keep them short."""
    text = str(error).strip() or type(error).__name__
    return text[:300]


@contextmanager
def vault_errors(operation: str) -> Iterator[None]:
    """Translate hvac/requests errors raised inside into VaultUnavailable or ActionFailed.

    Errors that mean "absent" (InvalidPath, InvalidRequest) are not translated here: each credential
    module decides what absence means for its kind, so it catches them itself before this wrapper.
    """
    try:
        yield
    except _TRANSIENT_HVAC_ERRORS as error:
        raise VaultUnavailable(f"{operation}: {_describe(error)}") from error
    except hvac.exceptions.Forbidden as error:
        raise ActionFailed(f"{operation}: permission denied: {_describe(error)}") from error
    except hvac.exceptions.UnexpectedError as error:
        # hvac's class for every status it does not map (405, 504, ...); it carries no status, so a retry
        # cannot be known to help.
        raise ActionFailed(f"{operation}: unexpected answer: {_describe(error)}") from error


def build_vault_client(addr: str, token: str, *, namespace: str | None = None, timeout: float = 10.0) -> hvac.Client:
    """A client authenticated with a token (local stack, or a responder's own VAULT_TOKEN)."""
    return hvac.Client(url=addr, token=token, namespace=namespace, timeout=timeout)


def build_vault_client_with_aws_iam(
    addr: str,
    role: str,
    *,
    mount_point: str = "aws",
    namespace: str | None = None,
    header_value: str | None = None,
    timeout: float = 10.0,
) -> hvac.Client:
    """A client logged in through Vault's AWS IAM auth method with the Lambda's own credentials.

    This is how the deployed functions authenticate: no static Vault token exists anywhere.
    """
    import boto3  # the Lambda runtime provides it; imported here to keep token-only callers light

    credentials = boto3.Session().get_credentials()
    if credentials is None:
        raise ActionFailed("Vault AWS IAM login: no AWS credentials in this environment")
    frozen = credentials.get_frozen_credentials()
    client = hvac.Client(url=addr, namespace=namespace, timeout=timeout)
    with vault_errors("Vault AWS IAM login"):
        client.auth.aws.iam_login(
            frozen.access_key,
            frozen.secret_key,
            frozen.token,
            header_value=header_value,
            role=role,
            use_token=True,
            mount_point=mount_point,
        )
    return client


def read_data(response: Any) -> dict[str, Any]:
    """The `data` of an hvac response, which is a dict for JSON answers and a Response for 204s."""
    if isinstance(response, dict):
        data = response.get("data")
        return data if isinstance(data, dict) else {}
    return {}
