"""A rotation hook for PostgreSQL roles: setSecret and testSecret of the rotation contract (contract.py).

The secret holds `username` and `password` (the declared field), plus `host`, and optionally `port` (5432) and
`dbname` (postgres). The event is Secrets Manager's: `SecretId` is `vault:<mount>/<path>` (the pending value is
at the KV staging path, see kv_rotation) or a Secrets Manager ARN (the pending value is the version
`ClientRequestToken`, staged AWSPENDING). The hook reads both values itself; the event carries none.

- setSecret: nothing to do when the pending password already logs in (a rerun). Otherwise log in as the
  secret's own user with its CURRENT password (or as the master secret named in `rescind_rotation_master`) and
  run `ALTER ROLE <username> WITH PASSWORD <pending>`, the role name quoted as an identifier and the password as
  a literal by pg8000 (no SQL injection through either).
- testSecret: log in as the user with the pending password and run `SELECT 1`.

Driver: pg8000 (pure Python), packaged with the function (functions/rotate_postgres/requirements.txt), not in
the layer. Errors name the SQLSTATE and PostgreSQL's message, never a value.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from rescind.exceptions import InvalidInput
from rescind.models import KvSecretRef
from rescind.rotation.contract import (
    MASTER_SECRET_KEY,
    VAULT_SECRET_ID_PREFIX,
    HookStep,
    RotationHookFailed,
    parse_secret_object,
    settings_from_tags,
)

if TYPE_CHECKING:
    import hvac
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

_LOGIN_FAILED = {"28P01", "28000"}  # invalid_password, invalid_authorization_specification


@dataclass(frozen=True)
class RotationValues:
    """What the hook reads for one step: the current and pending values, and the master's, if one is named."""

    current: Mapping[str, Any]
    pending: Mapping[str, Any]
    master: Mapping[str, Any] | None


# --- reading the values ---------------------------------------------------------------------------------------


def _kv_ref(secret_id: str) -> KvSecretRef:
    mount, _, path = secret_id.removeprefix(VAULT_SECRET_ID_PREFIX).partition("/")
    try:
        return KvSecretRef(mount=mount, path=path)
    except ValueError:
        raise InvalidInput("SecretId must be vault:<mount>/<path> or a Secrets Manager ARN") from None


def read_kv_values(vault: hvac.Client, secret_id: str, token: str) -> RotationValues:
    """The KV secret's current value and the pending one at its staging path, checked to be this rotation's."""
    from rescind.vault.kv_rotation_state import ROTATION_ID_KEY, staging_ref
    from rescind.vault.kv_store import read_secret_metadata, read_secret_version, where

    ref = _kv_ref(secret_id)
    metadata = read_secret_metadata(vault, ref)
    staging = staging_ref(ref)
    staged = read_secret_metadata(vault, staging)
    if metadata is None or staged is None or staged.custom_metadata.get(ROTATION_ID_KEY) != token:
        raise RotationHookFailed(f"no pending value of rotation {token} is staged for {where(ref)}")
    current = read_secret_version(vault, ref, metadata.current_version)
    pending = read_secret_version(vault, staging, staged.current_version)
    if not current or not pending:
        raise RotationHookFailed(f"the current or pending value of {where(ref)} does not read")
    master_id = metadata.custom_metadata.get(MASTER_SECRET_KEY)
    master = None
    if master_id:
        master_ref = _kv_ref(master_id)
        master_meta = read_secret_metadata(vault, master_ref)
        master = read_secret_version(vault, master_ref, master_meta.current_version) if master_meta else None
        if not master:
            raise RotationHookFailed(f"the master secret {master_id} of {where(ref)} does not read")
    return RotationValues(current=current, pending=pending, master=master)


def read_secrets_manager_values(sm: SecretsManagerClient, arn: str, token: str) -> RotationValues:
    """AWSCURRENT and the version `token` (which must be AWSPENDING), and the master secret's AWSCURRENT (the tag
    `rescind:rotation-master`). AWS errors are typed (rescind.aws.errors): a missing version is AwsNotFound."""
    from rescind.aws.errors import aws_errors

    with aws_errors(f"secretsmanager read the current and pending values of {arn}"):
        current = sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")
        pending = sm.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
        tags = {tag.get("Key", ""): tag.get("Value", "") for tag in sm.describe_secret(SecretId=arn).get("Tags", [])}
        master_arn = settings_from_tags(tags).get(MASTER_SECRET_KEY)
        master = None
        if master_arn:
            answer = sm.get_secret_value(SecretId=master_arn, VersionStage="AWSCURRENT")
            master = parse_secret_object(answer.get("SecretString"), "the master secret")
    return RotationValues(
        current=parse_secret_object(current.get("SecretString"), arn),
        pending=parse_secret_object(pending.get("SecretString"), arn),
        master=master,
    )


# --- PostgreSQL -----------------------------------------------------------------------------------------------


def _field(value: Mapping[str, Any], name: str) -> str:
    found = value.get(name)
    if not isinstance(found, str | int) or str(found) == "":
        raise InvalidInput(f"the secret has no {name!r} field, which the PostgreSQL hook needs")
    return str(found)


@dataclass(frozen=True)
class PostgresConnection:
    """How the hook reaches PostgreSQL (RotationHookSettings): TLS verified or not, and the connect timeout."""

    tls: Literal["verify-full", "disable"] = "verify-full"
    timeout_seconds: int = 10

    def connect(self, value: Mapping[str, Any], user: str, password: str) -> Any:
        import pg8000.native

        return pg8000.native.Connection(
            user,
            password=password,
            host=_field(value, "host"),
            port=int(value.get("port") or 5432),
            database=str(value.get("dbname") or "postgres"),
            timeout=self.timeout_seconds,
            ssl_context=ssl.create_default_context() if self.tls == "verify-full" else None,
        )


def _sqlstate(error: Exception) -> tuple[str, str]:
    details = error.args[0] if error.args and isinstance(error.args[0], dict) else {}
    return str(details.get("C", "?")), str(details.get("M", type(error).__name__))[:200]


def _logs_in(postgres: PostgresConnection, value: Mapping[str, Any], user: str, password: str) -> bool:
    import pg8000.exceptions

    try:
        connection = postgres.connect(value, user, password)
    except pg8000.exceptions.DatabaseError as error:
        if _sqlstate(error)[0] in _LOGIN_FAILED:
            return False
        raise
    try:
        connection.run("SELECT 1")
    finally:
        connection.close()
    return True


def set_postgres_password(postgres: PostgresConnection, values: RotationValues) -> str:
    """setSecret: make PostgreSQL accept the pending password for the secret's user. Idempotent."""
    from pg8000.native import identifier, literal

    user = _field(values.pending, "username")
    pending_password = _field(values.pending, "password")
    if _logs_in(postgres, values.pending, user, pending_password):
        return f"role {user} already accepts the pending password"
    admin = values.master if values.master is not None else values.current
    connection = postgres.connect(values.pending, _field(admin, "username"), _field(admin, "password"))
    try:
        connection.run(f"ALTER ROLE {identifier(user)} WITH PASSWORD {literal(pending_password)}")
    finally:
        connection.close()
    return f"set the pending password of role {user}"


def check_postgres_password(postgres: PostgresConnection, values: RotationValues) -> str:
    """testSecret: the pending password logs in."""
    user = _field(values.pending, "username")
    if not _logs_in(postgres, values.pending, user, _field(values.pending, "password")):
        raise RotationHookFailed(f"role {user} does not log in with the pending password")
    return f"role {user} logs in with the pending password"


def handle_rotation_event(
    event: Mapping[str, Any],
    *,
    vault: Callable[[], hvac.Client],
    secretsmanager: Callable[[], SecretsManagerClient],
    postgres: PostgresConnection,
) -> dict[str, str]:
    """The hook: one setSecret or testSecret. createSecret and finishSecret are Rescind's, so refused here."""
    import pg8000.exceptions

    step, secret_id, token = (event.get(key) for key in ("Step", "SecretId", "ClientRequestToken"))
    if not isinstance(secret_id, str) or not isinstance(token, str) or not secret_id or not token:
        raise InvalidInput("the rotation event needs SecretId and ClientRequestToken")
    if step not in (HookStep.SET, HookStep.TEST):
        raise InvalidInput(f"this hook runs setSecret and testSecret only, not {step!r}")
    if secret_id.startswith(VAULT_SECRET_ID_PREFIX):
        values = read_kv_values(vault(), secret_id, token)
    elif secret_id.startswith("arn:") and ":secretsmanager:" in secret_id:
        client = secretsmanager()
        if secret_id.split(":")[3] != client.meta.region_name:
            region = client.meta.region_name
            raise InvalidInput(
                f"this hook rotates secrets of {region} only, as Secrets Manager's rotation functions do"
            )
        values = read_secrets_manager_values(client, secret_id, token)
    else:
        raise InvalidInput("SecretId must be vault:<mount>/<path> or a Secrets Manager ARN")
    try:
        done = (set_postgres_password if step == HookStep.SET else check_postgres_password)(postgres, values)
    except pg8000.exceptions.DatabaseError as error:
        code, message = _sqlstate(error)
        raise RotationHookFailed(f"{step} of {secret_id}: PostgreSQL refused (SQLSTATE {code}): {message}") from None
    except (OSError, pg8000.exceptions.InterfaceError) as error:
        raise RotationHookFailed(f"{step} of {secret_id}: cannot reach PostgreSQL ({type(error).__name__})") from None
    return {"Step": str(step), "SecretId": secret_id, "result": done}
