"""The text form of a credential reference, as responders type it: `rescind revoke --credential REF`.

One form per credential kind. Every form starts with a prefix naming the kind, then the reference's
parts separated by ':'. `format_ref` writes this form and `parse_ref` reads it back:
`parse_ref(format_ref(ref)) == ref` for every reference.

| kind                     | form                                            |
|--------------------------|-------------------------------------------------|
| `vault_token`            | `vault-token:accessor:<accessor>`               |
| `approle_secret_id`      | `approle:<mount>:<role>:<secret-id accessor>`   |
| `vault_lease`            | `vault-lease:<lease id>`                        |
| `pki_certificate`        | `pki:<mount>:<serial>`                          |
| `kv_secret`              | `kv:<mount>:<path>`                             |
| `vault_entity`           | `vault-entity:<entity id>`                      |
| `vault_ttl_target`       | `vault-ttl:pki-role:<mount>:<role>`             |
|                          | `vault-ttl:approle-role:<mount>:<role>`         |
|                          | `vault-ttl:token-role:<mount>:<role>`           |
|                          | `vault-ttl:mount:<mount>`                       |
| `iam_access_key`         | `aws-key:<account>:<user>:<access key id>`      |
| `iam_role_sessions`      | `aws-role-sessions:<account>:<role>`            |
| `secrets_manager_secret` | `aws-secret:<secret arn>`                       |
| `acm_pca_certificate`    | `acm-pca:<ca arn>:<serial>`                     |
| `vault_database_static_role` | `vault-db-static:<mount>:<role>`            |
| `vault_database_root`    | `vault-db-root:<mount>:<connection>`            |

Examples:

    vault-token:accessor:CaTti28wsXOQA02COE2ygP2B
    approle:approle:billing:0c1b2f9e-1111-2222-3333-444455556666
    vault-lease:database/creds/app/AbCd1234
    pki:pki_int:74:fe:3b:fb
    kv:secret:apps/billing/db
    vault-entity:0c1b2f9e-1111-2222-3333-444455556666
    vault-ttl:pki-role:pki:web
    vault-ttl:mount:pki
    aws-key:123456789012:deploy-bot:AKIAIOSFODNN7EXAMPLE
    aws-role-sessions:123456789012:app-role
    aws-secret:arn:aws:secretsmanager:us-east-1:123456789012:secret:billing/db-AbCdEf
    acm-pca:arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/<uuid>:0a:1b
    vault-db-static:database:billing
    vault-db-root:database:billing-pg

Notes:
- Only serials and ARNs contain ':'. Mounts, paths, lease ids, names and ids cannot, so a PKI serial is
  everything after the mount, and a CA ARN is the first six ':'-separated fields after the prefix.
- A Vault token is named by its accessor, never by the token: `vault-token:` takes an accessor only, and
  a token value pasted in its place is refused without being repeated.
- `aws-key` needs the IAM user name, because the reference (and every IAM call that deactivates or
  deletes a key) names the user. The short form `aws-key:<account>:<key id>` is refused with a message
  saying how to find the user: `aws iam get-access-key-last-used --access-key-id <key id>` returns it.
  Resolving it here would need an AWS call, and parsing must not make one.
- A reference is ASCII. Non-ASCII characters (look-alike letters or digits), whitespace and control
  characters are refused before any part is read.
- Error messages name the prefix and the expected form, never the value: a value typed into the wrong
  place may be a secret.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from rescind.exceptions import InvalidInput
from rescind.models.credentials import (
    AcmPcaCertificateRef,
    AppRoleSecretIdRef,
    CredentialRef,
    DatabaseRootRef,
    DatabaseStaticRoleRef,
    IamAccessKeyRef,
    IamRoleSessionsRef,
    KvSecretRef,
    PkiCertificateRef,
    SecretsManagerSecretRef,
    TtlTargetType,
    VaultEntityRef,
    VaultLeaseRef,
    VaultTokenRef,
    VaultTtlTargetRef,
)

__all__ = ["REF_FORMS", "format_ref", "parse_ref"]

MAX_REF_LENGTH = 2048

# Token values: Vault's hvs./hvb./hvr. and the legacy (and OpenBao) s./b./r. forms. Seeing one where a
# reference was expected means a secret was pasted: say so, and never repeat it.
_TOKEN_VALUE_RE = re.compile(r"(hv[sbr]|[sbr])\.[A-Za-z0-9_\-]{20,}", re.ASCII)
# An AWS secret access key: 40 characters of base64. Pasted where a key id belongs, it is refused unrepeated.
_AWS_SECRET_KEY_RE = re.compile(r"^[A-Za-z0-9/+=]{40}$", re.ASCII)
_PASTED_BEARER_VALUE_MESSAGE = (
    "{name} looks like a Vault token value, not a reference: it is not repeated here; treat that token as "
    "leaked and name it by its accessor (`bao token lookup` shows it)"
)
_ACCESS_KEY_ID_RE = re.compile(r"^AKIA[A-Z0-9]{16}$", re.ASCII)
_PRINTABLE_ASCII_RE = re.compile(r"^[\x21-\x7e]*$", re.ASCII)

_TTL_TARGET_TEXT: dict[TtlTargetType, str] = {
    TtlTargetType.PKI_ROLE: "pki-role",
    TtlTargetType.APPROLE_ROLE: "approle-role",
    TtlTargetType.TOKEN_ROLE: "token-role",
    TtlTargetType.MOUNT: "mount",
}
_TTL_TARGET_BY_TEXT = {text: target for target, text in _TTL_TARGET_TEXT.items()}


@dataclass(frozen=True)
class RefForm:
    prefix: str
    form: str
    parse: Callable[[str], CredentialRef]


class _BadRef(Exception):
    """A problem with one reference; parse_ref turns it into InvalidInput with the expected form."""

    def __init__(self, prefix: str, problem: str) -> None:
        super().__init__(problem)
        self.prefix = prefix
        self.problem = problem


def _split_exactly(rest: str, count: int, prefix: str) -> list[str]:
    parts = rest.split(":")
    if len(parts) != count:
        raise _BadRef(prefix, f"needs {count} part{'s' if count > 1 else ''} after '{prefix}:', found {len(parts)}")
    return parts


def _build(model: type[BaseModel], prefix: str, fields: dict[str, str]) -> CredentialRef:
    for name, value in fields.items():
        if not value:
            raise _BadRef(prefix, f"{name} is empty")
        # Refused even where the shape would pass as a Vault path: accepted, it would ride into plans,
        # logs and the ledger as a "reference".
        if any(_TOKEN_VALUE_RE.fullmatch(segment) for segment in value.split("/")):
            raise _BadRef(prefix, _PASTED_BEARER_VALUE_MESSAGE.format(name=name))
    try:
        ref = model.model_validate(fields)
    except ValidationError as error:
        problems = []
        for detail in error.errors(include_input=False, include_url=False, include_context=False)[:3]:
            location = ".".join(str(part) for part in detail["loc"]) or "reference"
            message = str(detail["msg"]).removeprefix("Value error, ")
            problems.append(message if message.startswith(location) else f"{location}: {message}")
        raise _BadRef(prefix, "; ".join(problems)) from None
    return ref  # type: ignore[return-value]  # every model passed in is a member of CredentialRef


def _parse_vault_token(rest: str) -> CredentialRef:
    label, _, accessor = rest.partition(":")
    if label != "accessor" and _TOKEN_VALUE_RE.fullmatch(rest):
        raise _BadRef("vault-token", _PASTED_BEARER_VALUE_MESSAGE.format(name="the value"))
    if label != "accessor":
        raise _BadRef("vault-token", "takes an accessor, introduced by 'accessor:' (a token value is never accepted)")
    return _build(VaultTokenRef, "vault-token", {"accessor": accessor})


def _parse_approle(rest: str) -> CredentialRef:
    mount, role_name, accessor = _split_exactly(rest, 3, "approle")
    return _build(AppRoleSecretIdRef, "approle", {"mount": mount, "role_name": role_name, "accessor": accessor})


def _parse_vault_lease(rest: str) -> CredentialRef:
    return _build(VaultLeaseRef, "vault-lease", {"lease_id": rest})


def _parse_pki(rest: str) -> CredentialRef:
    mount, separator, serial = rest.partition(":")
    if not separator:
        raise _BadRef("pki", "needs a mount and a serial")
    return _build(PkiCertificateRef, "pki", {"mount": mount, "serial": serial})


def _parse_kv(rest: str) -> CredentialRef:
    mount, path = _split_exactly(rest, 2, "kv")
    return _build(KvSecretRef, "kv", {"mount": mount, "path": path})


def _parse_vault_entity(rest: str) -> CredentialRef:
    return _build(VaultEntityRef, "vault-entity", {"entity_id": rest})


def _parse_vault_ttl(rest: str) -> CredentialRef:
    target_text, _, remainder = rest.partition(":")
    target_type = _TTL_TARGET_BY_TEXT.get(target_text)
    if target_type is None:
        known = ", ".join(_TTL_TARGET_TEXT.values())
        raise _BadRef("vault-ttl", f"the target type must be one of: {known}")
    if target_type is TtlTargetType.MOUNT:
        (mount,) = _split_exactly(remainder, 1, "vault-ttl:mount")
        return _build(VaultTtlTargetRef, "vault-ttl", {"target_type": target_type, "mount": mount})
    mount, role_name = _split_exactly(remainder, 2, f"vault-ttl:{target_text}")
    return _build(VaultTtlTargetRef, "vault-ttl", {"target_type": target_type, "mount": mount, "role_name": role_name})


def _parse_aws_key(rest: str) -> CredentialRef:
    parts = rest.split(":")
    if len(parts) == 2 and _ACCESS_KEY_ID_RE.fullmatch(parts[1]):
        raise _BadRef(
            "aws-key",
            "needs the IAM user name as well: IAM names a key by user and key id "
            "(`aws iam get-access-key-last-used --access-key-id <key id>` returns the user)",
        )
    account_id, user_name, access_key_id = _split_exactly(rest, 3, "aws-key")
    if _AWS_SECRET_KEY_RE.fullmatch(access_key_id) and not _ACCESS_KEY_ID_RE.fullmatch(access_key_id):
        raise _BadRef(
            "aws-key",
            "the key id looks like a secret access key: it is not repeated here; treat that key as leaked "
            "and name it by its access key id (AKIA...)",
        )
    return _build(
        IamAccessKeyRef,
        "aws-key",
        {"account_id": account_id, "user_name": user_name, "access_key_id": access_key_id},
    )


def _parse_aws_role_sessions(rest: str) -> CredentialRef:
    account_id, role_name = _split_exactly(rest, 2, "aws-role-sessions")
    return _build(IamRoleSessionsRef, "aws-role-sessions", {"account_id": account_id, "role_name": role_name})


def _parse_aws_secret(rest: str) -> CredentialRef:
    return _build(SecretsManagerSecretRef, "aws-secret", {"secret_arn": rest})


def _parse_acm_pca(rest: str) -> CredentialRef:
    # arn:<partition>:acm-pca:<region>:<account>:certificate-authority/<id> is six fields; the serial follows.
    fields = rest.split(":", 6)
    if len(fields) != 7:
        raise _BadRef("acm-pca", "needs a CA ARN (six ':'-separated fields) and a serial")
    return _build(AcmPcaCertificateRef, "acm-pca", {"ca_arn": ":".join(fields[:6]), "serial": fields[6]})


def _parse_database_static(rest: str) -> CredentialRef:
    mount, role = _split_exactly(rest, 2, "vault-db-static")
    return _build(DatabaseStaticRoleRef, "vault-db-static", {"mount": mount, "role": role})


def _parse_database_root(rest: str) -> CredentialRef:
    mount, connection = _split_exactly(rest, 2, "vault-db-root")
    return _build(DatabaseRootRef, "vault-db-root", {"mount": mount, "connection": connection})


REF_FORMS: dict[str, RefForm] = {
    form.prefix: form
    for form in (
        RefForm("vault-token", "vault-token:accessor:<accessor>", _parse_vault_token),
        RefForm("approle", "approle:<mount>:<role>:<secret-id accessor>", _parse_approle),
        RefForm("vault-lease", "vault-lease:<lease id>", _parse_vault_lease),
        RefForm("pki", "pki:<mount>:<serial>", _parse_pki),
        RefForm("kv", "kv:<mount>:<path>", _parse_kv),
        RefForm("vault-entity", "vault-entity:<entity id>", _parse_vault_entity),
        RefForm(
            "vault-ttl",
            "vault-ttl:<pki-role|approle-role|token-role>:<mount>:<role> or vault-ttl:mount:<mount>",
            _parse_vault_ttl,
        ),
        RefForm("aws-key", "aws-key:<account>:<user>:<access key id>", _parse_aws_key),
        RefForm("aws-role-sessions", "aws-role-sessions:<account>:<role>", _parse_aws_role_sessions),
        RefForm("aws-secret", "aws-secret:<secret arn>", _parse_aws_secret),
        RefForm("acm-pca", "acm-pca:<ca arn>:<serial>", _parse_acm_pca),
        RefForm("vault-db-static", "vault-db-static:<mount>:<role>", _parse_database_static),
        RefForm("vault-db-root", "vault-db-root:<mount>:<connection>", _parse_database_root),
    )
}


def parse_ref(text: str) -> CredentialRef:
    """Read a reference in its text form. Raises InvalidInput, one line, naming the expected form.

    The message never contains the input or any part of it.
    """
    text = text.strip()
    known = ", ".join(REF_FORMS)
    if not text:
        raise InvalidInput(f"empty credential reference: expected <prefix>:<parts>, with prefix one of: {known}")
    if len(text) > MAX_REF_LENGTH:
        raise InvalidInput(f"credential reference is longer than {MAX_REF_LENGTH} characters")
    if not text.isascii():
        raise InvalidInput(
            "credential reference contains a non-ASCII character (a look-alike letter or digit?): "
            "retype it in plain ASCII"
        )
    if not _PRINTABLE_ASCII_RE.fullmatch(text):
        raise InvalidInput("credential reference contains whitespace or a control character")
    prefix, separator, rest = text.partition(":")
    form = REF_FORMS.get(prefix.lower()) if separator else None
    if form is None:
        # The unknown prefix is not repeated: it may be a pasted secret.
        raise InvalidInput(f"unknown credential reference form: expected <prefix>:<parts>, with prefix one of: {known}")
    try:
        return form.parse(rest)
    except _BadRef as error:
        raise InvalidInput(f"invalid {form.prefix} reference: {error.problem}; expected {form.form}") from None


def acted_on(ref: CredentialRef, vault_address: str) -> str:
    """Where an action on `ref` acts: its AWS account, or the Vault (address) Rescind is configured with."""
    account = getattr(ref, "account_id", None)
    return f"AWS account {account}" if account else f"Vault {vault_address or '(address not configured)'}"


def format_ref(ref: CredentialRef) -> str:
    """Write a reference in its text form; `parse_ref` reads it back to an equal reference."""
    match ref:
        case VaultTokenRef():
            return f"vault-token:accessor:{ref.accessor}"
        case AppRoleSecretIdRef():
            return f"approle:{ref.mount}:{ref.role_name}:{ref.accessor}"
        case VaultLeaseRef():
            return f"vault-lease:{ref.lease_id}"
        case PkiCertificateRef():
            return f"pki:{ref.mount}:{ref.serial}"
        case KvSecretRef():
            return f"kv:{ref.mount}:{ref.path}"
        case VaultEntityRef():
            return f"vault-entity:{ref.entity_id}"
        case VaultTtlTargetRef():
            target = _TTL_TARGET_TEXT[ref.target_type]
            if ref.role_name is None:
                return f"vault-ttl:{target}:{ref.mount}"
            return f"vault-ttl:{target}:{ref.mount}:{ref.role_name}"
        case IamAccessKeyRef():
            return f"aws-key:{ref.account_id}:{ref.user_name}:{ref.access_key_id}"
        case IamRoleSessionsRef():
            return f"aws-role-sessions:{ref.account_id}:{ref.role_name}"
        case SecretsManagerSecretRef():
            return f"aws-secret:{ref.secret_arn}"
        case AcmPcaCertificateRef():
            return f"acm-pca:{ref.ca_arn}:{ref.serial}"
        case DatabaseStaticRoleRef():
            return f"vault-db-static:{ref.mount}:{ref.role}"
        case DatabaseRootRef():
            return f"vault-db-root:{ref.mount}:{ref.connection}"
    raise TypeError(f"not a credential reference: {type(ref).__name__}")  # pragma: no cover
