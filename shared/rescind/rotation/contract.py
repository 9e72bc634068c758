"""One rotation contract for KV v2 and Secrets Manager, modelled on Secrets Manager's rotation protocol.

A secret rotates only when its owner declares how (KV custom_metadata, or Secrets Manager tags, same keys):

    rescind_rotate          the fields that rotate, comma-separated (e.g. `password`); never "every field"
    rescind_generator       how their new values are made: one of GENERATORS (default `alnum32`)
    rescind_rotation_hook   the Lambda function (ARN) that sets and tests the pending value where it is checked,
                            or `none`: the owner states that no external system checks the value, only its
                            readers (an API token Rescind's readers fetch, a test fixture). Then setSecret and
                            testSecret are a read-back of the staged value by Rescind itself. `none` is an
                            explicit opt-in the owner writes; a missing hook is never read as `none`.
    rescind_rotation_master optional: the secret (`vault:<mount>/<path>` or an SM ARN) the hook logs in with
                            instead of the secret's own current value (the PostgreSQL hook reads it)

Rescind does createSecret (stage a pending value, invisible to applications) and finishSecret (make it current)
itself, and invokes the hook for setSecret and testSecret with Secrets Manager's rotation event
(`{"Step", "SecretId", "ClientRequestToken"}`), so a team can reuse a rotation function it already has. The
event carries no value: the hook reads the pending value itself (KV: the staging path, see `kv_staged`; Secrets
Manager: the version staged AWSPENDING).

A secret without fields or without a hook is never written: its rotation "needs an owner" (see
`needs_owner_detail`), and the run goes on with everything else. A declaration that is there but malformed (an
unknown generator, a field name that is not one, a field the secret does not hold, a hook that is neither a Lambda
ARN nor `none`) is refused for that secret alone (`refused_detail`), also without writing anything.

On a Secrets Manager secret the same declaration is made with tags (TAG_OF_KEY): `rescind:rotate`,
`rescind:generator`, `rescind:rotation-hook`, `rescind:rotation-master`.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from rescind.exceptions import ActionFailed, InvalidInput

if TYPE_CHECKING:
    from rescind.aws.session import AwsClientFactory

ROTATE_FIELDS_KEY = "rescind_rotate"
GENERATOR_KEY = "rescind_generator"
HOOK_KEY = "rescind_rotation_hook"
MASTER_SECRET_KEY = "rescind_rotation_master"  # noqa: S105 - a metadata key
# The same declaration on a Secrets Manager secret, as tags in AWS's `rescind:` style.
TAG_OF_KEY = {
    ROTATE_FIELDS_KEY: "rescind:rotate",
    GENERATOR_KEY: "rescind:generator",
    HOOK_KEY: "rescind:rotation-hook",
    MASTER_SECRET_KEY: "rescind:rotation-master",
}
NO_EXTERNAL_SYSTEM = "none"  # rescind_rotation_hook=none: nothing but the secret's readers checks the value
VAULT_SECRET_ID_PREFIX = "vault:"  # noqa: S105 - a prefix

_FIELD_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
_LAMBDA_ARN_RE = re.compile(
    r"^arn:aws[a-z\-]*:lambda:[a-z0-9\-]+:\d{12}:function:[A-Za-z0-9_\-]{1,64}(:[A-Za-z0-9_\-$]{1,128})?$"
)
_ALNUM = string.ascii_letters + string.digits


def _alnum(length: int) -> Callable[[], str]:
    return lambda: "".join(secrets.choice(_ALNUM) for _ in range(length))


# The closed set of generators. Alphanumeric by default: no quoting trouble in URLs, shells or connection strings.
GENERATORS: Mapping[str, Callable[[], str]] = {
    "alnum32": _alnum(32),
    "alnum64": _alnum(64),
    "urlsafe32": lambda: secrets.token_urlsafe(32),
    "hex64": lambda: secrets.token_hex(32),
}
DEFAULT_GENERATOR = "alnum32"


class HookStep(StrEnum):
    CREATE = "createSecret"
    SET = "setSecret"
    TEST = "testSecret"
    FINISH = "finishSecret"


@dataclass(frozen=True)
class RotationDeclaration:
    """How a secret rotates, as its owner declared it."""

    fields: tuple[str, ...]
    generator: str
    hook_arn: str | None  # None: the owner declared rescind_rotation_hook=none (no external system)
    fields_key: str = ROTATE_FIELDS_KEY  # how the declaration names its fields where it was read (a tag's key)

    def pending_value(self, current: Mapping[str, Any], where: str) -> dict[str, Any]:
        """The current value with the declared fields, and only those, replaced by fresh generated values."""
        missing = [name for name in self.fields if name not in current]
        if missing:
            raise InvalidInput(f"{where} declares {self.fields_key}={','.join(missing)}, which it does not hold")
        generate = GENERATORS[self.generator]
        return {**current, **{name: generate() for name in self.fields}}


def needs_owner_detail(where: str, *, tags: bool = False) -> str:
    fields, hook = (TAG_OF_KEY[ROTATE_FIELDS_KEY], TAG_OF_KEY[HOOK_KEY]) if tags else (ROTATE_FIELDS_KEY, HOOK_KEY)
    return f"rotation needs an owner: declare {fields} and {hook} on {where}; nothing was written"


def refused_detail(where: str, problem: InvalidInput) -> str:
    """A malformed declaration, refused for this secret only: what is wrong, and that nothing was written."""
    return f"rotation declaration refused: {problem}; nothing was written to {where}"


def settings_from_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """A Secrets Manager secret's `rescind:` tags as the declaration's keys (`declaration_from` reads them)."""
    return {key: tags[tag] for key, tag in TAG_OF_KEY.items() if tag in tags}


def declaration_from(settings: Mapping[str, str], where: str, *, tags: bool = False) -> RotationDeclaration | None:
    """The declaration in a secret's custom_metadata, or its tags (`tags=True`: TAG_OF_KEY's names); None when
    fields or hook are not declared.

    A declaration that is there but malformed (an unknown generator, a field name or hook that is not one) is
    refused with InvalidInput naming the problem, before anything is written.
    """
    keys = TAG_OF_KEY if tags else {key: key for key in TAG_OF_KEY}  # the keys as the owner wrote them
    fields_key, generator_key, hook_key = keys[ROTATE_FIELDS_KEY], keys[GENERATOR_KEY], keys[HOOK_KEY]
    if tags:
        settings = settings_from_tags(settings)
    fields_text = (settings.get(ROTATE_FIELDS_KEY) or "").strip()
    hook = (settings.get(HOOK_KEY) or "").strip()
    if not fields_text or not hook:
        return None
    fields = tuple(dict.fromkeys(name.strip() for name in fields_text.split(",") if name.strip()))
    bad = [name for name in fields if not _FIELD_RE.fullmatch(name)]
    if not fields or bad:
        raise InvalidInput(f"{fields_key} on {where} must be comma-separated field names")
    generator = (settings.get(GENERATOR_KEY) or DEFAULT_GENERATOR).strip()
    if generator not in GENERATORS:
        raise InvalidInput(f"{generator_key} on {where} must be one of {', '.join(sorted(GENERATORS))}")
    if hook == NO_EXTERNAL_SYSTEM:
        return RotationDeclaration(fields=fields, generator=generator, hook_arn=None, fields_key=fields_key)
    if not _LAMBDA_ARN_RE.fullmatch(hook):
        raise InvalidInput(f"{hook_key} on {where} must be a Lambda function ARN or {NO_EXTERNAL_SYSTEM!r}")
    return RotationDeclaration(fields=fields, generator=generator, hook_arn=hook, fields_key=fields_key)


def parse_secret_object(text: str | None, where: str) -> dict[str, Any]:
    """A Secrets Manager SecretString as a JSON object (the only shape with named fields to rotate)."""
    try:
        value = json.loads(text or "")
    except ValueError:
        raise InvalidInput(f"the current value of {where} is not a JSON object: no named field to rotate") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"the current value of {where} is not a JSON object: no named field to rotate")
    return value


# --- the hook -------------------------------------------------------------------------------------------------


class RotationHookFailed(ActionFailed):
    """The rotation hook refused a step (its setSecret or testSecret raised): the current value is untouched."""


class RotationAbandoned(ActionFailed):
    """A writer made a new current value between create and finish: the pending value was dropped and nothing was
    overwritten. Not "rotated": the value the writer made is current, and the hook may have set the dropped one."""


def hook_event(step: HookStep, secret_id: str, token: str) -> dict[str, str]:
    """Secrets Manager's rotation event: no value, ever."""
    return {"Step": str(step), "SecretId": secret_id, "ClientRequestToken": token}


class RotationHookInvoker(Protocol):
    def invoke(self, hook_arn: str, event: Mapping[str, str]) -> None:
        """Run the hook synchronously; raise RotationHookFailed when it fails."""
        ...


class LambdaHookInvoker:
    """Invokes the hook function (RequestResponse) in the account and region its ARN names."""

    def __init__(self, factory: AwsClientFactory) -> None:
        self._factory = factory

    def invoke(self, hook_arn: str, event: Mapping[str, str]) -> None:
        from rescind.aws.errors import aws_errors

        parts = hook_arn.split(":")
        client = self._factory.client("lambda", parts[4], region_name=parts[3])
        step = event.get("Step", "?")
        with aws_errors(f"lambda invoke {hook_arn} ({step})"):
            answer = client.invoke(FunctionName=hook_arn, InvocationType="RequestResponse", Payload=json.dumps(event))
        if answer.get("FunctionError"):
            raise RotationHookFailed(f"rotation hook {hook_arn} failed its {step}: {_error_summary(answer)}")


def _error_summary(answer: Mapping[str, Any]) -> str:
    """The error's type and a short message. Hooks must not put values in errors; this keeps it short anyway."""
    try:
        document = json.loads(answer["Payload"].read() or b"{}")
    except (ValueError, KeyError, AttributeError):
        return "no error document"
    if not isinstance(document, dict):
        return "no error document"
    return f"{document.get('errorType', 'Error')}: {str(document.get('errorMessage', ''))[:300]}"
