"""`rescind vault setup --stack NAME`: write Rescind's side of Vault for a deployed stack, from code.

It reads the stack (cloudformation describe-stacks, and each function's generated role by its logical id), then
writes, idempotently, with the operator's own VAULT_ADDR and VAULT_TOKEN:

- one ACL policy per function role, `<VaultAwsAuthRole>-<role>`, rendered from `vault_policies/<role>.hcl` for
  the stack's PkiMounts, AppRoleMounts, KvMounts and LeaseMounts (see `rescind_cli.vault_access`);
- one role of the AWS auth method (`auth/<VaultAwsAuthMount>/role/<VaultAwsAuthRole>-<role>`) per function role,
  `auth_type=iam`, bound to exactly the IAM roles of the functions that play it, with that policy alone;
- the AWS auth method's client configuration (`auth/<VaultAwsAuthMount>/config/client`): the
  `iam_server_id_header_value` the functions send (the stack's VaultAwsAuthServerId), so that a login signed for
  another Vault is refused here. With no VaultAwsAuthServerId nothing is written, and a Vault that requires a
  header the functions would not send is refused, naming both. Vault checks each login by calling STS's global
  endpoint itself (the functions sign for it); the template creates no STS VPC endpoint, so `sts_endpoint` and
  `sts_region` are left as they are.

`--dry-run` prints what it would write and touches no Vault. `--policies-only` writes the policies and no AWS
auth role (OpenBao has no AWS auth method; bind the policies through the auth method you use). The operator's
token needs `sys/auth` (read), `sys/policies/acl/<prefix>-*`, `auth/<aws mount>/role/<prefix>-*` (read,
create, update) and `auth/<aws mount>/config/client` (read, update).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from rescind.exceptions import InvalidInput
from rescind_cli.options import JsonOption, ProfileOption, console_for, exit_on_typed_error
from rescind_cli.targets import DeployedStackTarget, TargetUnavailable
from rescind_cli.vault_access import (
    FUNCTION_ROLES,
    VaultMounts,
    aws_auth_role_body,
    check_mount,
    policy_name,
    render_hcl,
)

if TYPE_CHECKING:
    import hvac

vault_app = typer.Typer(
    help="Rescind's side of Vault: its policies and AWS auth roles, written from code.",
    no_args_is_help=True,
    add_completion=False,
)

_ROLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,90}$")
_DURATION = re.compile(r"^(\d+)([smh]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600}


def duration_seconds(text: str, *, option: str) -> int:
    """`900`, `900s`, `15m` or `1h` in seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise InvalidInput(f"{option} must be a duration like 15m, 1h or 900s, not {text!r}")
    return int(match[1]) * _UNIT_SECONDS[match[2]]


@dataclass(frozen=True)
class PolicyWrite:
    name: str
    role: str
    policy: str
    status: str = "to write"


@dataclass(frozen=True)
class AuthRoleWrite:
    name: str
    path: str
    role: str
    functions: tuple[str, ...]
    settings: dict[str, Any]
    status: str = "to write"


@dataclass(frozen=True)
class AuthClientConfigWrite:
    """What `auth/<aws mount>/config/client` must hold for the functions' logins (only the fields named)."""

    path: str
    settings: dict[str, Any]
    status: str = "to write"


@dataclass(frozen=True)
class VaultSetup:
    """What `vault setup` writes for one stack."""

    stack: str
    prefix: str
    auth_mount: str
    mounts: VaultMounts
    policies: tuple[PolicyWrite, ...]
    auth_roles: tuple[AuthRoleWrite, ...]
    # None with --policies-only; its settings are empty when the stack sends no server id header.
    client_config: AuthClientConfigWrite | None = None

    def document(self, *, vault: str | None, dry_run: bool) -> dict[str, Any]:
        return {
            "ok": True,
            "stack": self.stack,
            "vault": vault,
            "dry_run": dry_run,
            "mounts": {kind: list(getattr(self.mounts, kind)) for kind in ("pki", "approle", "kv", "lease")},
            "policies": [asdict(policy) for policy in self.policies],
            "aws_auth_roles": [asdict(role) for role in self.auth_roles],
            "aws_auth_client_config": asdict(self.client_config) if self.client_config else None,
            # What each function's VAULT_AWS_AUTH_ROLE must name for its login to get its policy.
            "function_login_roles": {function: role.name for role in self.auth_roles for function in role.functions},
        }


# --- reading the stack --------------------------------------------------------------------------------------


def function_role_arn(target: DeployedStackTarget, logical_id: str) -> str:
    """The ARN of the stack's role with this logical id (a function's generated `<Function>Role`)."""
    from botocore.exceptions import ClientError

    role_name = target.function_name(logical_id)  # describe-stack-resource: the role's physical id is its name
    try:
        return str(target.client("iam").get_role(RoleName=role_name)["Role"]["Arn"])
    except ClientError as error:
        raise TargetUnavailable(
            f"stack {target.stack_name!r}: its {logical_id} ({role_name}) cannot be read: "
            f"{error.response.get('Error', {}).get('Message', error)}"
        ) from None


def plan_vault_setup(
    target: DeployedStackTarget, *, token_ttl_seconds: int, token_max_ttl_seconds: int, policies_only: bool
) -> VaultSetup:
    """Everything to write, from the stack's parameters and roles; refuses bad input before any Vault call."""
    parameters = target.parameters
    prefix = parameters.get("VaultAwsAuthRole", "").strip()
    if not _ROLE_NAME.fullmatch(prefix):
        raise InvalidInput(
            f"stack {target.stack_name!r}: its VaultAwsAuthRole {prefix!r} cannot prefix Vault role and policy names "
            "(letters, digits, '_', '-', '.')"
        )
    auth_mount = (parameters.get("VaultAwsAuthMount") or "aws").strip().strip("/").removeprefix("auth/")
    check_mount(auth_mount, "VaultAwsAuthMount")
    if not 60 <= token_ttl_seconds <= token_max_ttl_seconds:
        raise InvalidInput("--token-ttl must be at least 1m and at most --token-max-ttl")
    mounts = VaultMounts.from_parameters(parameters)
    policies = tuple(
        PolicyWrite(name=policy_name(prefix, role), role=role.name, policy=render_hcl(role, mounts))
        for role in FUNCTION_ROLES
    )
    auth_roles: tuple[AuthRoleWrite, ...] = ()
    client_config = None
    if not policies_only:
        server_id = (parameters.get("VaultAwsAuthServerId") or "").strip()
        client_config = AuthClientConfigWrite(
            path=f"auth/{auth_mount}/config/client",
            settings={"iam_server_id_header_value": server_id} if server_id else {},
        )
        auth_roles = tuple(
            AuthRoleWrite(
                name=policy_name(prefix, role),
                path=f"auth/{auth_mount}/role/{policy_name(prefix, role)}",
                role=role.name,
                functions=role.functions,
                settings=aws_auth_role_body(
                    policy_name(prefix, role),
                    [function_role_arn(target, logical_id) for logical_id in role.iam_role_logical_ids()],
                    token_ttl_seconds=token_ttl_seconds,
                    token_max_ttl_seconds=token_max_ttl_seconds,
                ),
            )
            for role in FUNCTION_ROLES
            if role.functions
        )
    return VaultSetup(target.stack_name, prefix, auth_mount, mounts, policies, auth_roles, client_config)


# --- writing Vault ------------------------------------------------------------------------------------------


def _same(current: Any, wanted: Any) -> bool:
    if isinstance(wanted, list):
        return isinstance(current, list) and sorted(map(str, current)) == sorted(map(str, wanted))
    return bool(current == wanted)


def apply_vault_setup(setup: VaultSetup, vault: hvac.Client) -> VaultSetup:
    """Write what differs; each item's status says created, updated or unchanged."""
    import hvac.exceptions

    from rescind.vault.client import read_data, vault_errors

    if setup.auth_roles:
        with vault_errors("read Vault's auth methods"):
            methods = read_data(vault.sys.list_auth_methods())
    if setup.auth_roles and (methods.get(f"{setup.auth_mount}/") or {}).get("type") != "aws":
        raise TargetUnavailable(
            f"this Vault has no AWS auth method at auth/{setup.auth_mount}/ (the stack's VaultAwsAuthMount): "
            f"enable and configure it (`vault auth enable -path={setup.auth_mount} aws`, see the README), "
            "or pass --policies-only to write the policies alone"
        )
    client_config = _apply_client_config(setup.client_config, vault) if setup.client_config else None
    policies = []
    for policy in setup.policies:
        with vault_errors(f"write policy {policy.name}"):
            try:
                current = read_data(vault.sys.read_acl_policy(policy.name)).get("policy")
            except hvac.exceptions.InvalidPath:
                current = None
            if current != policy.policy:
                vault.sys.create_or_update_acl_policy(policy.name, policy.policy)
        status = "unchanged" if current == policy.policy else "updated" if current is not None else "created"
        policies.append(PolicyWrite(policy.name, policy.role, policy.policy, status))
    roles = []
    for role in setup.auth_roles:
        with vault_errors(f"write {role.path}"):
            existing = vault.read(role.path)
            current = read_data(existing) if existing is not None else None
            unchanged = current is not None and all(_same(current.get(k), v) for k, v in role.settings.items())
            if not unchanged:
                vault.write_data(role.path, data=role.settings)
        status = "unchanged" if unchanged else "updated" if current is not None else "created"
        roles.append(AuthRoleWrite(role.name, role.path, role.role, role.functions, role.settings, status))
    return VaultSetup(
        setup.stack, setup.prefix, setup.auth_mount, setup.mounts, tuple(policies), tuple(roles), client_config
    )


def _apply_client_config(config: AuthClientConfigWrite, vault: hvac.Client) -> AuthClientConfigWrite:
    """Write the fields that differ (Vault keeps the others). Refuses, before any policy or role is written, a
    Vault that requires a server id header the functions would not send: every login would fail."""
    from rescind.vault.client import read_data, vault_errors

    with vault_errors(f"read {config.path}"):
        existing = vault.read(config.path)
    current = read_data(existing) if existing is not None else {}
    required = str(current.get("iam_server_id_header_value") or "")
    if required and not config.settings:
        raise TargetUnavailable(
            f"{config.path} requires an X-Vault-AWS-IAM-Server-ID header (iam_server_id_header_value) that the "
            "stack's functions do not send: set the stack's VaultAwsAuthServerId to it (sam deploy) and run this again"
        )
    if all(_same(current.get(key), value) for key, value in config.settings.items()):
        return AuthClientConfigWrite(config.path, config.settings, "unchanged")
    with vault_errors(f"write {config.path}"):
        vault.write_data(config.path, data=config.settings)
    return AuthClientConfigWrite(config.path, config.settings, "updated" if existing is not None else "created")


# --- the command --------------------------------------------------------------------------------------------


@vault_app.callback()
def vault_main() -> None:
    """Rescind's Vault policies and AWS auth roles."""


@vault_app.command("setup")
def setup_command(
    stack: Annotated[str, typer.Option("--stack", help="The deployed stack whose functions log in to Vault.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be written; touch no Vault.")] = False,
    policies_only: Annotated[
        bool, typer.Option("--policies-only", help="Write the policies, no AWS auth role (e.g. on OpenBao).")
    ] = False,
    ttl: Annotated[str, typer.Option("--token-ttl", help="The functions' token TTL (renewed).")] = "15m",
    max_ttl: Annotated[
        str, typer.Option("--token-max-ttl", help="The functions' token max TTL (then a new login).")
    ] = "1h",
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Write Rescind's policies and AWS auth roles for STACK to the Vault at VAULT_ADDR (with VAULT_TOKEN).

    Idempotent: what already matches is left alone and reported unchanged.
    """
    with exit_on_typed_error(json_output):
        target = DeployedStackTarget.load(stack, profile=profile)
        setup = plan_vault_setup(
            target,
            token_ttl_seconds=duration_seconds(ttl, option="--token-ttl"),
            token_max_ttl_seconds=duration_seconds(max_ttl, option="--token-max-ttl"),
            policies_only=policies_only,
        )
        vault_addr = None
        if not dry_run:
            vault = target.vault()
            vault_addr = str(vault.url)
            setup = apply_vault_setup(setup, vault)
    if json_output:
        typer.echo(json.dumps(setup.document(vault=vault_addr, dry_run=dry_run), indent=2))
        return
    _print(setup, vault_addr, dry_run)


def _print(setup: VaultSetup, vault_addr: str | None, dry_run: bool) -> None:
    out = console_for(highlight=False)
    where = "dry run: nothing written" if dry_run else f"Vault {vault_addr}"
    out.print(f"stack {escape(setup.stack)}, {escape(setup.mounts.describe())}; {escape(where)}")
    if dry_run:
        for policy in setup.policies:
            out.print(f"\n# policy {escape(policy.name)}\n{escape(policy.policy)}")
        for role in setup.auth_roles:
            out.print(f"# {escape(role.path)}\n{escape(json.dumps(role.settings, indent=2))}\n")
        if setup.client_config and setup.client_config.settings:
            config = setup.client_config
            out.print(f"# {escape(config.path)}\n{escape(json.dumps(config.settings, indent=2))}\n")
    table = Table(title="Vault side", title_justify="left")
    for column in ("kind", "name", "for", "status"):
        table.add_column(column, overflow="fold")
    for policy in setup.policies:
        table.add_row("policy", escape(policy.name), escape(policy.role), escape(policy.status))
    for role in setup.auth_roles:
        table.add_row("aws auth role", escape(role.path), escape(", ".join(role.functions)), escape(role.status))
    if setup.client_config and setup.client_config.settings:
        config = setup.client_config
        table.add_row("aws auth config", escape(config.path), "every login", escape(config.status))
    out.print(table)
    if setup.auth_roles:
        out.print("Each function logs in with VAULT_AWS_AUTH_ROLE set to its role's name:")
        for role in setup.auth_roles:
            out.print(f"  {escape(role.name)}: {escape(', '.join(role.functions))}")
