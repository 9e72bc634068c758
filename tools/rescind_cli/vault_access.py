"""Rescind's side of Vault as code: one policy per function role, rendered for the stack's mounts, and the AWS auth
role that binds each function role's IAM roles to its policy.

The policies live in `vault_policies/<role>.hcl` beside this module (with `session.hcl` in every role's), as
`path "..." { capabilities = [...] }` stanzas and comments, nothing else. A path may name a mount kind in braces,
`{pki}`, `{approle}`, `{kv}` or `{lease}`: the stanza is repeated for each mount of that kind the stack is
configured with (PkiMounts, AppRoleMounts, KvMounts, LeaseMounts), and dropped when there is none.

| role      | functions (template logical ids)                                  |
|-----------|-------------------------------------------------------------------|
| planner   | PlanOffboardingFunction, PlanLeakResponseFunction                 |
| actor     | ExecuteActionFunction                                             |
| verifier  | VerifyResponseFunction                                         |
| locator   | StartLeakResponseFunction (locates, and kills first: locator + kill_first) |
| sweeper   | RotationByAgeFunction, TtlCeilingsFunction, PkiHygieneFunction    |
| reporter  | InventoryReportFunction                                           |
| drift     | IndexDriftFunction                                                |
| rotation-hook | RotatePostgresFunction (reads the secret it rotates and its staging copy) |
| responder | none: a responder's own token for `rescind revoke --direct` (planner + actor + verifier + locator) |

The other functions never call Vault, so no Vault role admits their IAM roles.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from rescind.exceptions import InvalidInput
from rescind.models.credentials import Mount

POLICY_DIR = Path(__file__).resolve().parent / "vault_policies"
SESSION_POLICY = "session"
CAPABILITIES = frozenset({"create", "read", "update", "patch", "delete", "list", "sudo"})
MOUNT_KINDS = ("pki", "approle", "kv", "lease")
# The stack parameter that holds each kind's mounts, and the template's default.
MOUNT_PARAMETERS = {"pki": "PkiMounts", "approle": "AppRoleMounts", "kv": "KvMounts", "lease": "LeaseMounts"}
MOUNT_DEFAULTS = {"pki": "pki", "approle": "approle", "kv": "secret", "lease": ""}
_MOUNT: TypeAdapter[str] = TypeAdapter(Mount)
_STANZA = re.compile(r'path\s+"(?P<path>[^"\n]+)"\s*\{\s*capabilities\s*=\s*\[(?P<caps>[^\]]*)\]\s*\}')
_COMMENT = re.compile(r"#[^\n]*")
_PLACEHOLDER = re.compile(r"\{([a-z]+)\}")


@dataclass(frozen=True)
class FunctionRole:
    """A Vault role of Rescind's: the template functions that log in as it, and the policy files it gets."""

    name: str
    functions: tuple[str, ...]
    policy_files: tuple[str, ...]

    def templates(self) -> tuple[str, ...]:
        """Its policy files, after the one every role has (its own token: `session.hcl`)."""
        return (SESSION_POLICY, *self.policy_files)

    def iam_role_logical_ids(self) -> tuple[str, ...]:
        """SAM names a function's generated role `<function logical id>Role`."""
        return tuple(f"{function}Role" for function in self.functions)


FUNCTION_ROLES: tuple[FunctionRole, ...] = (
    FunctionRole("planner", ("PlanOffboardingFunction", "PlanLeakResponseFunction"), ("planner",)),
    FunctionRole("actor", ("ExecuteActionFunction",), ("actor",)),
    FunctionRole("verifier", ("VerifyResponseFunction",), ("verifier",)),
    FunctionRole("locator", ("StartLeakResponseFunction",), ("locator", "kill_first")),
    FunctionRole("sweeper", ("RotationByAgeFunction", "TtlCeilingsFunction", "PkiHygieneFunction"), ("sweeper",)),
    FunctionRole("reporter", ("InventoryReportFunction",), ("reporter",)),
    FunctionRole("drift", ("IndexDriftFunction",), ("drift",)),
    FunctionRole("rotation-hook", ("RotatePostgresFunction",), ("rotation-hook",)),
    FunctionRole("responder", (), ("planner", "actor", "verifier", "locator")),
)


def function_role(name: str) -> FunctionRole:
    for role in FUNCTION_ROLES:
        if role.name == name:
            return role
    raise KeyError(f"no Vault function role {name!r}")


def role_of_function(logical_id: str) -> FunctionRole | None:
    """The Vault role a template function logs in as; None for a function that never calls Vault."""
    return next((role for role in FUNCTION_ROLES if logical_id in role.functions), None)


def check_mount(mount: str, setting: str) -> str:
    """A mount as every reference names one (rescind.models' Mount: plain segments, no wildcard): nothing a
    policy's glob or HCL would read as syntax."""
    try:
        return str(_MOUNT.validate_python(mount))
    except ValidationError as error:
        raise InvalidInput(f"{setting}: {error.errors()[0]['msg'].removeprefix('Value error, ')}") from None


@dataclass(frozen=True)
class VaultMounts:
    """The mounts the stack's functions act on, by kind."""

    pki: tuple[str, ...] = ("pki",)
    approle: tuple[str, ...] = ("approle",)
    kv: tuple[str, ...] = ("secret",)
    lease: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for kind in MOUNT_KINDS:
            for mount in getattr(self, kind):
                check_mount(mount, MOUNT_PARAMETERS[kind])

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, str]) -> VaultMounts:
        """From the stack's parameters (comma-separated, as the functions read them); `auth/` and slashes trimmed."""

        def mounts(kind: str) -> tuple[str, ...]:
            raw = parameters.get(MOUNT_PARAMETERS[kind], MOUNT_DEFAULTS[kind])
            names = (item.strip().strip("/") for item in raw.split(","))
            return tuple(dict.fromkeys(name.removeprefix("auth/") for name in names if name))

        return cls(**{kind: mounts(kind) for kind in MOUNT_KINDS})

    def describe(self) -> str:
        return ", ".join(f"{MOUNT_PARAMETERS[kind]}={','.join(getattr(self, kind)) or '-'}" for kind in MOUNT_KINDS)


@dataclass(frozen=True)
class PolicyRule:
    path: str
    capabilities: frozenset[str]


def read_policy_template(name: str) -> list[PolicyRule]:
    """The rules of `vault_policies/<name>.hcl`, placeholders kept. Anything but stanzas and comments is refused."""
    source = POLICY_DIR / f"{name}.hcl"
    text = _COMMENT.sub("", source.read_text())
    rules = []
    for match in _STANZA.finditer(text):
        capabilities = frozenset(item.strip().strip('"') for item in match["caps"].split(",") if item.strip())
        unknown = capabilities - CAPABILITIES
        if unknown or not capabilities:
            raise ValueError(f"{source.name}: {match['path']}: unknown or no capabilities {sorted(unknown)}")
        kinds = set(_PLACEHOLDER.findall(match["path"]))
        if kinds - set(MOUNT_KINDS):
            raise ValueError(f"{source.name}: {match['path']}: unknown placeholder {sorted(kinds - set(MOUNT_KINDS))}")
        rules.append(PolicyRule(match["path"], capabilities))
    if _STANZA.sub("", text).strip():
        raise ValueError(f'{source.name}: only `path "..." {{ capabilities = [...] }}` stanzas and comments')
    return rules


def expand(rule: PolicyRule, mounts: VaultMounts) -> list[PolicyRule]:
    """The rule once per combination of the mounts it names; none when a kind it names has no mount."""
    kinds = sorted(set(_PLACEHOLDER.findall(rule.path)))
    expanded = []
    for choice in itertools.product(*(getattr(mounts, kind) for kind in kinds)):
        path = rule.path
        for kind, mount in zip(kinds, choice, strict=True):
            path = path.replace(f"{{{kind}}}", mount)
        expanded.append(PolicyRule(path, rule.capabilities))
    return expanded


def render_rules(role: FunctionRole, mounts: VaultMounts) -> list[PolicyRule]:
    """The role's rules for these mounts: its files' rules expanded, merged by path, sorted."""
    merged: dict[str, set[str]] = {}
    for name in role.templates():
        for rule in read_policy_template(name):
            for concrete in expand(rule, mounts):
                merged.setdefault(concrete.path, set()).update(concrete.capabilities)
    return [PolicyRule(path, frozenset(capabilities)) for path, capabilities in sorted(merged.items())]


def render_hcl(role: FunctionRole, mounts: VaultMounts) -> str:
    """The policy document Vault is given for the role."""
    files = ", ".join(f"vault_policies/{name}.hcl" for name in role.templates())
    lines = [f"# Rescind {role.name}: rendered by `rescind vault setup` from {files}", f"# for {mounts.describe()}"]
    for rule in render_rules(role, mounts):
        capabilities = ", ".join(f'"{cap}"' for cap in sorted(rule.capabilities))
        lines.append(f'path "{rule.path}" {{\n  capabilities = [{capabilities}]\n}}')
    return "\n".join(lines) + "\n"


def policy_name(prefix: str, role: FunctionRole) -> str:
    """`<VaultAwsAuthRole>-<role>`: the stack's VaultAwsAuthRole parameter names its policies and roles."""
    return f"{prefix}-{role.name}"


def aws_auth_role_body(
    policy: str, principal_arns: Sequence[str], *, token_ttl_seconds: int, token_max_ttl_seconds: int
) -> dict[str, Any]:
    """What `auth/<aws mount>/role/<name>` is written with: IAM auth, bound to exactly these principals, the
    role's own policy and no default policy (each policy grants lookup-self and renew-self itself)."""
    return {
        "auth_type": "iam",
        "bound_iam_principal_arn": sorted(principal_arns),
        "token_policies": [policy],
        "token_no_default_policy": True,
        "token_type": "service",
        "token_ttl": token_ttl_seconds,
        "token_max_ttl": token_max_ttl_seconds,
    }
