"""Secrets Rescind reads for itself from Secrets Manager (the GitHub webhook secret, the GitHub token).

Read through Powertools' parameters utility, which caches each value for SECRET_CACHE_SECONDS: a rotated
secret is picked up within minutes without a redeploy, and a warm function does not call Secrets Manager for
every request. The provider lives as long as the execution environment (not the runtime caches, which the
local stack clears between invocations), and its client takes the one botocore Config.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from rescind.aws.errors import aws_error
from rescind.exceptions import ConfigurationError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

SECRET_CACHE_SECONDS = 300


@functools.cache
def _provider() -> SecretsProvider:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    from rescind.aws.session import AWS_CLIENT_CONFIG

    return SecretsProvider(boto_config=AWS_CLIENT_CONFIG)


def read_secret_string(secret_arn: str, *, what: str) -> str:
    """The secret's SecretString. AWS errors are raised typed (rescind.aws.errors); a secret without a string
    value is a ConfigurationError naming the secret (never a value)."""
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    try:
        value = _provider().get(secret_arn, max_age=SECRET_CACHE_SECONDS)
    except GetParameterError as error:
        raise aws_error(error, "secretsmanager:GetSecretValue") from error
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"the {what} secret {secret_arn} has no string value")
    return value


def forget_cached_secrets() -> None:
    """For tests, and after a rotation that must apply at once: the next read builds a new client and cache."""
    _provider.cache_clear()
