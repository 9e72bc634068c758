"""Settings that outgrow Lambda's 4 KB environment, read from SSM Parameter Store at cold start.

A list that grows with the organisation (the discovery accounts, the protected workloads, the trust domains'
member accounts) or a document (the schedule policy) would soon fill the environment every function shares.
template.yaml keeps each of them in a parameter of its own and gives the functions only the parameter's name, in
`<VARIABLE>_PARAMETER`; the settings (rescind.config) read the value through Powertools `parameters`, which keeps it
for PARAMETER_MAX_AGE_SECONDS.
A parameter that is missing or cannot be read stops the function, naming the parameter and never its value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rescind.caching import runtime_cache
from rescind.exceptions import ConfigurationError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SSMProvider

# The settings stored in Parameter Store when deployed; each may still be given in the environment directly
# (the local CLI, tests). Their parameters' names come in `<VARIABLE>_PARAMETER`.
STORED_SETTINGS = frozenset({"aws_account_ids", "protected_workloads", "schedule_policy", "trust_domain_accounts"})
PARAMETER_SUFFIX = "_PARAMETER"
# How long a value read is reused in one execution environment before Parameter Store is asked again.
PARAMETER_MAX_AGE_SECONDS = 300


@runtime_cache
def _provider() -> SSMProvider:
    """One provider per execution environment, on the runtime's ssm client (its retries and timeouts)."""
    from rescind.runtime import get_aws_client

    return _provider_on(get_aws_client("ssm"))


def _provider_on(ssm_client: Any) -> SSMProvider:
    from aws_lambda_powertools.utilities.parameters import SSMProvider

    return SSMProvider(boto3_client=ssm_client)


def read_parameters(names: Mapping[str, str], *, ssm_client: Any = None) -> dict[str, str]:
    """The value of each parameter in `names` (variable that named it -> parameter name), by the variable.

    One GetParameters call for up to ten names, or none while the values read are younger than the max age (on
    the runtime's client; with `ssm_client`, a provider of its own and no cache kept).
    ConfigurationError names every parameter that does not exist, or all of them when Parameter Store refused the
    call (access denied, a malformed name), with the variable that named it; a value is never repeated."""
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
    from botocore.exceptions import BotoCoreError, ClientError

    wanted: dict[str, dict[str, object]] = {name: {} for name in set(names.values())}
    try:
        provider = _provider() if ssm_client is None else _provider_on(ssm_client)
        values = provider.get_parameters_by_name(
            wanted, max_age=PARAMETER_MAX_AGE_SECONDS, decrypt=False, raise_on_error=False
        )
    except ClientError as error:
        reason = error.response.get("Error", {}).get("Code", "ClientError")
        raise ConfigurationError(
            f"invalid configuration: {_named(names, names)} could not be read ({reason})"
        ) from None
    except (BotoCoreError, GetParameterError) as error:
        raise ConfigurationError(
            f"invalid configuration: {_named(names, names)} could not be read ({type(error).__name__})"
        ) from None
    failed = set(values.get("_errors") or ())
    missing = {variable: name for variable, name in names.items() if name not in values or name in failed}
    if missing:
        raise ConfigurationError(f"invalid configuration: {_named(missing, names)} was not found")
    return {variable: str(values[name]) for variable, name in names.items()}


def parameter_label(variable: str, name: str) -> str:
    """How a problem names a stored setting: its parameter, and the variable that named the parameter."""
    return f"SSM parameter {name} ({variable})"


def _named(chosen: Mapping[str, str], names: Mapping[str, str]) -> str:
    return ", ".join(parameter_label(variable, names[variable]) for variable in sorted(chosen))
