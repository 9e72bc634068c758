"""The closed set of credential references.

A reference names a credential by something that is not the credential: an accessor, a serial, an
ARN. None of these models has a field that can hold a secret value, and each refuses unknown fields,
so a value cannot ride along by accident.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from rescind.deferred_builds import DEFER_MODEL_BUILDS


class CredentialKind(StrEnum):
    VAULT_TOKEN = "vault_token"
    APPROLE_SECRET_ID = "approle_secret_id"
    VAULT_LEASE = "vault_lease"
    PKI_CERTIFICATE = "pki_certificate"
    KV_SECRET = "kv_secret"
    VAULT_ENTITY = "vault_entity"
    VAULT_TTL_TARGET = "vault_ttl_target"
    IAM_ACCESS_KEY = "iam_access_key"
    IAM_ROLE_SESSIONS = "iam_role_sessions"
    SECRETS_MANAGER_SECRET = "secrets_manager_secret"
    ACM_PCA_CERTIFICATE = "acm_pca_certificate"
    DATABASE_STATIC_ROLE = "vault_database_static_role"
    DATABASE_ROOT = "vault_database_root"


_SEGMENT = r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*"
_PATH_RE = re.compile(rf"^{_SEGMENT}(/{_SEGMENT})*$")
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Vault/OpenBao token accessors: 24 base62 characters, with a namespace suffix in Enterprise.
_TOKEN_ACCESSOR_RE = re.compile(r"^[A-Za-z0-9]{24}(\.[A-Za-z0-9]{5,})?$")
_SERIAL_RE = re.compile(r"^[0-9a-f]{2}([:-][0-9a-f]{2})+$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-@]{0,127}$")
_ACCOUNT_RE = re.compile(r"^\d{12}$", re.ASCII)
_ACCESS_KEY_ID_RE = re.compile(r"^AKIA[A-Z0-9]{16}$")
_IAM_ROLE_NAME_RE = re.compile(r"^[\w+=,.@\-]{1,64}$", re.ASCII)
_PARTITION = r"aws|aws-cn|aws-us-gov"
_REGION = r"[a-z]{2}(-[a-z]+)+-\d"
_SECRET_ARN_RE = re.compile(
    rf"^arn:({_PARTITION}):secretsmanager:{_REGION}:\d{{12}}:secret:[\w/+=.@\-]+-[A-Za-z0-9]{{6}}$", re.ASCII
)
_PCA_ARN_RE = re.compile(
    rf"^arn:({_PARTITION}):acm-pca:{_REGION}:\d{{12}}:certificate-authority/[0-9a-f]{{8}}(-[0-9a-f]{{4}}){{3}}-[0-9a-f]{{12}}$",
    re.ASCII,
)
_PCA_SERIAL_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2})*$")


def _vault_path(value: str, *, what: str, min_segments: int = 1) -> str:
    """A relative Vault path: no leading or trailing slash, no empty, `.` or `..` segment."""
    # Messages never echo the input: a value pasted into the wrong field must not reach a log.
    if not value:
        raise ValueError(f"{what} is empty")
    segments = value.split("/")
    if ".." in segments or "." in segments:
        raise ValueError(f"{what} contains a '.' or '..' segment (path traversal)")
    if not _PATH_RE.fullmatch(value):
        raise ValueError(
            f"{what} is not a relative Vault path (letters, digits, '_', '-', '.' and '/' only, "
            "no leading, trailing or doubled '/', no wildcard)"
        )
    if len(segments) < min_segments:
        raise ValueError(f"{what} needs at least {min_segments} path segments")
    return value


def _mount(value: str) -> str:
    return _vault_path(value, what="mount")


def _kv_path(value: str) -> str:
    return _vault_path(value, what="path")


def _lease_id(value: str) -> str:
    # <mount>/<endpoint...>/<id>: anything shorter cannot be one lease.
    return _vault_path(value, what="lease_id", min_segments=3)


def _pattern(regex: re.Pattern[str], what: str, example: str) -> AfterValidator:
    def check(value: str) -> str:
        if not regex.fullmatch(value):
            raise ValueError(f"{what} is malformed, expected something like {example!r}")
        return value

    return AfterValidator(check)


def _normalise_serial(value: str) -> str:
    value = value.strip().lower()
    if not _SERIAL_RE.fullmatch(value):
        raise ValueError("serial is malformed, expected hex pairs such as '1f:0a:...'")
    return value.replace("-", ":")


Mount = Annotated[str, AfterValidator(_mount)]
KvPath = Annotated[str, AfterValidator(_kv_path)]
LeaseId = Annotated[str, AfterValidator(_lease_id)]
TokenAccessor = Annotated[str, _pattern(_TOKEN_ACCESSOR_RE, "accessor", "hQ2k...(24 characters)")]
Uuid = Annotated[str, _pattern(_UUID_RE, "id", "0c1b2f9e-....-....-....-............")]
Serial = Annotated[str, AfterValidator(_normalise_serial)]
VaultName = Annotated[str, _pattern(_NAME_RE, "name", "my-role")]
AccountId = Annotated[str, _pattern(_ACCOUNT_RE, "account", "123456789012")]
AccessKeyId = Annotated[str, _pattern(_ACCESS_KEY_ID_RE, "access_key_id", "AKIA" + "X" * 16)]
IamRoleName = Annotated[str, _pattern(_IAM_ROLE_NAME_RE, "role_name", "app-role")]
SecretArn = Annotated[
    str,
    _pattern(_SECRET_ARN_RE, "secret_arn", "arn:aws:secretsmanager:us-east-1:123456789012:secret:n-AbCdEf"),
]
PcaArn = Annotated[
    str,
    _pattern(_PCA_ARN_RE, "ca_arn", "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/<uuid>"),
]
PcaSerial = Annotated[str, _pattern(_PCA_SERIAL_RE, "serial", "1f:0a:...")]


class _Ref(BaseModel):
    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True, str_strip_whitespace=False)

    @property
    def key(self) -> str:
        """A stable text form, used in action ids, execution names and ledger keys."""
        return _ref_key(self)


_Model = TypeVar("_Model", bound=BaseModel)
MEMOISED_PER_FUNCTION = 8192


def memoised_by_identity(derive: Callable[[_Model], str]) -> Callable[[_Model], str]:
    """`derive` once per frozen model object: a plan and its batches ask for the same reference's key and the same
    action's id many times. By identity, not by value: models equal by value can still serialise differently (two
    equal datetimes in different zones). The model is kept with its value, so its id is not reused while the entry
    lives; the store is emptied when full. Thread-safe: a dict's get and set are atomic, and a race only derives
    the same value twice."""
    entries: dict[int, tuple[_Model, str]] = {}

    @functools.wraps(derive)
    def derived(model: _Model) -> str:
        entry = entries.get(id(model))
        if entry is not None and entry[0] is model:
            return entry[1]
        value = derive(model)
        if len(entries) >= MEMOISED_PER_FUNCTION:
            entries.clear()
        entries[id(model)] = (model, value)
        return value

    return derived


@memoised_by_identity
def _ref_key(ref: _Ref) -> str:
    values = ref.model_dump(mode="json")
    return ":".join("" if values[name] is None else str(values[name]) for name in type(ref).model_fields)


class VaultTokenRef(_Ref):
    kind: Literal[CredentialKind.VAULT_TOKEN] = CredentialKind.VAULT_TOKEN
    accessor: TokenAccessor


class AppRoleSecretIdRef(_Ref):
    kind: Literal[CredentialKind.APPROLE_SECRET_ID] = CredentialKind.APPROLE_SECRET_ID
    mount: Mount = "approle"
    role_name: VaultName
    accessor: Uuid


class VaultLeaseRef(_Ref):
    kind: Literal[CredentialKind.VAULT_LEASE] = CredentialKind.VAULT_LEASE
    lease_id: LeaseId


class PkiCertificateRef(_Ref):
    kind: Literal[CredentialKind.PKI_CERTIFICATE] = CredentialKind.PKI_CERTIFICATE
    mount: Mount = "pki"
    serial: Serial


class KvSecretRef(_Ref):
    kind: Literal[CredentialKind.KV_SECRET] = CredentialKind.KV_SECRET
    mount: Mount = "secret"
    path: KvPath


class VaultEntityRef(_Ref):
    kind: Literal[CredentialKind.VAULT_ENTITY] = CredentialKind.VAULT_ENTITY
    entity_id: Uuid


class TtlTargetType(StrEnum):
    PKI_ROLE = "pki_role"
    APPROLE_ROLE = "approle_role"
    TOKEN_ROLE = "token_role"
    MOUNT = "mount"


class VaultTtlTargetRef(_Ref):
    """A role or a mount whose ttl/max_ttl can be lowered. `role_name` is empty only for a mount."""

    kind: Literal[CredentialKind.VAULT_TTL_TARGET] = CredentialKind.VAULT_TTL_TARGET
    target_type: TtlTargetType
    mount: Mount
    role_name: VaultName | None = None

    @model_validator(mode="after")
    def _role_name_matches_target_type(self) -> VaultTtlTargetRef:
        if (self.target_type is TtlTargetType.MOUNT) != (self.role_name is None):
            raise ValueError("role_name is required for a role and must be absent for a mount")
        return self


class IamAccessKeyRef(_Ref):
    kind: Literal[CredentialKind.IAM_ACCESS_KEY] = CredentialKind.IAM_ACCESS_KEY
    account_id: AccountId
    user_name: Annotated[str, _pattern(re.compile(r"^[\w+=,.@\-]{1,64}$", re.ASCII), "user_name", "deploy-bot")]
    access_key_id: AccessKeyId


class IamRoleSessionsRef(_Ref):
    kind: Literal[CredentialKind.IAM_ROLE_SESSIONS] = CredentialKind.IAM_ROLE_SESSIONS
    account_id: AccountId
    role_name: IamRoleName


class SecretsManagerSecretRef(_Ref):
    kind: Literal[CredentialKind.SECRETS_MANAGER_SECRET] = CredentialKind.SECRETS_MANAGER_SECRET
    secret_arn: SecretArn

    @property
    def account_id(self) -> str:
        return self.secret_arn.split(":")[4]


class AcmPcaCertificateRef(_Ref):
    kind: Literal[CredentialKind.ACM_PCA_CERTIFICATE] = CredentialKind.ACM_PCA_CERTIFICATE
    ca_arn: PcaArn
    serial: PcaSerial

    @property
    def account_id(self) -> str:
        return self.ca_arn.split(":")[4]


class DatabaseStaticRoleRef(_Ref):
    """A static role of a database secrets engine: one database user whose password Vault owns and rotates."""

    kind: Literal[CredentialKind.DATABASE_STATIC_ROLE] = CredentialKind.DATABASE_STATIC_ROLE
    mount: Mount = "database"
    role: VaultName


class DatabaseRootRef(_Ref):
    """The root credential of one database connection: the user Vault itself logs in with. Rotated only by a
    manual run with approval (after rotation only Vault knows the password)."""

    kind: Literal[CredentialKind.DATABASE_ROOT] = CredentialKind.DATABASE_ROOT
    mount: Mount = "database"
    connection: VaultName


CredentialRef = Annotated[
    VaultTokenRef
    | AppRoleSecretIdRef
    | VaultLeaseRef
    | PkiCertificateRef
    | KvSecretRef
    | VaultEntityRef
    | VaultTtlTargetRef
    | IamAccessKeyRef
    | IamRoleSessionsRef
    | SecretsManagerSecretRef
    | AcmPcaCertificateRef
    | DatabaseStaticRoleRef
    | DatabaseRootRef,
    Field(discriminator="kind"),
]

credential_ref_adapter: TypeAdapter[CredentialRef] = TypeAdapter(CredentialRef)


def parse_credential_ref(data: object) -> CredentialRef:
    """Validate a reference from untrusted input. Raises pydantic.ValidationError naming the field."""
    return credential_ref_adapter.validate_python(data)
