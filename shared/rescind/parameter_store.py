"""Settings that outgrow Lambda's 4 KB environment, read from SSM Parameter Store at cold start.

A list that grows with the organisation (the discovery accounts, the protected workloads, the trust domains'
member accounts) or a document (the schedule policy) would soon fill the environment every function shares.
template.yaml keeps each of them in a parameter of its own and gives the functions only the parameter's name, in
`<VARIABLE>_PARAMETER`; the settings (rescind.config) read the values with one GetParameters, kept for
PARAMETER_MAX_AGE_SECONDS.
A parameter that is missing or cannot be read stops the function, naming the parameter and never its value.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from rescind.caching import runtime_cache
from rescind.exceptions import ConfigurationError

# The settings stored in Parameter Store when deployed; each may still be given in the environment directly
# (the local CLI, tests). Their parameters' names come in `<VARIABLE>_PARAMETER`.
STORED_SETTINGS = frozenset({"aws_account_ids", "protected_workloads", "schedule_policy", "trust_domain_accounts"})
PARAMETER_SUFFIX = "_PARAMETER"
# How long a value read is reused in one execution environment before Parameter Store is asked again.
PARAMETER_MAX_AGE_SECONDS = 300
# GetParameters takes at most this many names in one call.
NAMES_PER_CALL = 10


class _StoredValues:
    """The parameters read on one ssm client, each kept for PARAMETER_MAX_AGE_SECONDS. A plain GetParameters:
    Powertools' parameters utility did the same for these four plain strings at a cold start's cost of importing
    every provider it has (AppConfig, Secrets Manager, DynamoDB)."""

    def __init__(self, ssm_client: Any) -> None:
        self.client = ssm_client
        self._values: dict[str, tuple[str, float]] = {}  # name -> (value, time.monotonic() when read)
        self._lock = threading.Lock()

    def read(self, names: set[str]) -> tuple[dict[str, str], set[str]]:
        """(the value of each name that exists, the names that do not), asking only for those not read lately."""
        now = time.monotonic()
        with self._lock:
            fresh = {
                name: value
                for name, (value, read_at) in self._values.items()
                if name in names and now - read_at < PARAMETER_MAX_AGE_SECONDS
            }
        wanted = sorted(names - fresh.keys())
        missing: set[str] = set()
        for first in range(0, len(wanted), NAMES_PER_CALL):
            answer = self.client.get_parameters(Names=wanted[first : first + NAMES_PER_CALL], WithDecryption=False)
            read = {parameter["Name"]: str(parameter["Value"]) for parameter in answer.get("Parameters", [])}
            missing.update(answer.get("InvalidParameters", []))
            with self._lock:
                self._values.update({name: (value, now) for name, value in read.items()})
            fresh.update(read)
        return fresh, missing


@runtime_cache
def _stored_values() -> _StoredValues:
    """One store per execution environment, on the runtime's ssm client (its retries and timeouts)."""
    from rescind.runtime import get_aws_client

    return _StoredValues(get_aws_client("ssm"))


def read_parameters(names: Mapping[str, str], *, ssm_client: Any = None) -> dict[str, str]:
    """The value of each parameter in `names` (variable that named it -> parameter name), by the variable.

    One GetParameters call for up to ten names, or none while the values read are younger than the max age (on
    the runtime's client; with `ssm_client`, a store of its own and no cache kept).
    ConfigurationError names every parameter that does not exist, or all of them when Parameter Store refused the
    call (access denied, a malformed name), with the variable that named it; a value is never repeated."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        store = _stored_values() if ssm_client is None else _StoredValues(ssm_client)
        values, failed = store.read(set(names.values()))
    except ClientError as error:
        reason = error.response.get("Error", {}).get("Code", "ClientError")
        raise ConfigurationError(
            f"invalid configuration: {_named(names, names)} could not be read ({reason})"
        ) from None
    except BotoCoreError as error:
        raise ConfigurationError(
            f"invalid configuration: {_named(names, names)} could not be read ({type(error).__name__})"
        ) from None
    missing = {variable: name for variable, name in names.items() if name not in values or name in failed}
    if missing:
        raise ConfigurationError(f"invalid configuration: {_named(missing, names)} was not found")
    return {variable: values[name] for variable, name in names.items()}


def parameter_label(variable: str, name: str) -> str:
    """How a problem names a stored setting: its parameter, and the variable that named the parameter."""
    return f"SSM parameter {name} ({variable})"


def _named(chosen: Mapping[str, str], names: Mapping[str, str]) -> str:
    return ", ".join(parameter_label(variable, names[variable]) for variable in sorted(chosen))
