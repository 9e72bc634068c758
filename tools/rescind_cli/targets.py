"""Where the run commands act: the local stack (the default) or a deployed stack (`--stack NAME`).

A `Target` gives the run commands everything they touch: boto3 clients, an hvac client, the ledger, the
inventory, the state machines, the caller's identity, and the discovery scope and guard policy that the
deployed functions use, so that `rescind plan` shows the plan the state machine will make.

- `LocalStackTarget` wraps `rescind_local.target.LocalTarget`: clients on the daemon's moto server and OpenBao.
  Its scope and guard are read from the PlanOffboarding function's environment in moto (so a daemon started
  with `-p BlastRadiusCap=3` plans with a cap of 3). Its AWS identity is moto's default user, unless
  RESCIND_LOCAL_AWS_ACCESS_KEY_ID and RESCIND_LOCAL_AWS_SECRET_ACCESS_KEY name an access key created in the
  local moto: then it is that IAM user. That is how a second local principal approves a run (moto maps an
  access key it issued to its user's ARN in sts get-caller-identity):

      aws --endpoint-url $MOTO iam create-user --user-name approver
      aws --endpoint-url $MOTO iam create-access-key --user-name approver

- `DeployedStackTarget` reads the stack's Outputs (and Parameters, for the scope and guard) with
  cloudformation describe-stacks, using the usual AWS profile, region and credential chain. Vault is
  VAULT_ADDR (else the stack's VaultAddr parameter) with VAULT_TOKEN (or ~/.vault-token). Environment
  variables named like the functions' settings (BLAST_RADIUS_CAP, PROTECTED_WORKLOADS, PKI_MOUNTS, ...)
  override the stack's parameters.

Nothing here imports boto3 or hvac until a client is asked for.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from rescind.config import CrossAccountSettings, PlanSettings
from rescind.discovery import DiscoveryScope
from rescind.exceptions import InvalidInput, RescindError
from rescind.guard import GuardPolicy

if TYPE_CHECKING:
    import boto3
    import hvac

    from rescind.aws.session import AwsClientFactory
    from rescind.inventory.base import Inventory
    from rescind.ledger.base import Ledger
    from rescind.ledger.dynamodb import DynamoDbLedger
    from rescind_local.target import LocalTarget

STACK_ENV = "RESCIND_STACK"
LOCAL_ACCESS_KEY_ENV = "RESCIND_LOCAL_AWS_ACCESS_KEY_ID"
LOCAL_SECRET_KEY_ENV = "RESCIND_LOCAL_AWS_SECRET_ACCESS_KEY"
MANUAL_MACHINE = "ManualRevocationStateMachine"
OFFBOARDING_MACHINE = "OffboardingStateMachine"
LEAK_MACHINE = "LeakResponseStateMachine"
WEBHOOK_FUNCTION = "GitHubWebhookFunction"
# Every machine whose executions are incidents: `status`, `approve` and `replay` look in each.
INCIDENT_MACHINES = (MANUAL_MACHINE, OFFBOARDING_MACHINE, LEAK_MACHINE)
PLAN_FUNCTION = "PlanOffboardingFunction"
ANSWER_APPROVAL_FUNCTION = "AnswerApprovalFunction"
START_MANUAL_REVOCATION_FUNCTION = "StartManualRevocationFunction"
# Stack outputs that carry a function's URL.
_FUNCTION_URL_OUTPUTS = {
    ANSWER_APPROVAL_FUNCTION: "AnswerApprovalUrl",
    START_MANUAL_REVOCATION_FUNCTION: "StartManualRevocationUrl",
}

# The functions' settings (template Globals) that shape a plan: variable -> stack parameter.
_SETTING_PARAMETERS = {
    "PROTECTED_WORKLOADS": "ProtectedWorkloads",
    "BLAST_RADIUS_CAP": "BlastRadiusCap",
    "PKI_MOUNTS": "PkiMounts",
    "APPROLE_MOUNTS": "AppRoleMounts",
    "KV_MOUNTS": "KvMounts",
    "LEASE_MOUNTS": "LeaseMounts",
    "AWS_ACCOUNT_IDS": "DiscoveryAccountIds",
}
_STACK_OUTPUTS = {
    "LedgerTableName",
    "InventoryTableName",
    "ManualRevocationStateMachineArn",
    "OffboardingStateMachineArn",
    "NotificationTopicArn",
}


class TargetUnavailable(RescindError):
    """The chosen target cannot be used: no local stack runs, or the stack does not exist. Says what to do."""


class Target(Protocol):
    """What the run commands act on."""

    @property
    def description(self) -> str:
        """Where this is, for messages: "the local stack in /x" or "stack rescind-prod (us-east-1)"."""
        ...

    @property
    def selector(self) -> str:
        """The options that choose this target again, for hints: "--state-dir /x" or "--stack NAME"."""
        ...

    def client(self, service: str) -> Any:
        """A boto3 client for `service` in the target's account and region (cached)."""
        ...

    def vault(self) -> hvac.Client: ...

    def aws_factory(self) -> AwsClientFactory | None:
        """None when there is no AWS side (direct mode with no AWS credentials)."""
        ...

    def ledger(self) -> Ledger: ...

    def inventory(self) -> Inventory | None: ...

    def state_machine_arn(self, logical_id: str) -> str: ...

    def function_name(self, logical_id: str) -> str: ...

    def caller_arn(self) -> str: ...

    def function_url(self, logical_id: str) -> str:
        """The URL of a function with AuthType AWS_IAM (the local stack serves its own stand-in)."""
        ...

    def signing_credentials(self) -> tuple[Any, str]:
        """(botocore credentials, region) that sign requests to a function URL as this caller."""
        ...

    def discovery_scope(self) -> DiscoveryScope: ...

    def guard_policy(self) -> GuardPolicy: ...


# --- shared helpers -----------------------------------------------------------------------------------


class _EndpointSession:
    """A boto3 session whose every client goes to one endpoint (moto): what AwsClientFactory is given locally."""

    def __init__(self, session: boto3.Session, endpoint_url: str) -> None:
        self._session = session
        self._endpoint_url = endpoint_url
        self.region_name = session.region_name

    def client(self, service: str, **kwargs: Any) -> Any:
        return self._session.client(service, endpoint_url=self._endpoint_url, **kwargs)  # type: ignore[call-overload]


@dataclass
class _ClientCache:
    clients: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


# --- the local stack ----------------------------------------------------------------------------------


class LocalStackTarget:
    """The persistent local stack that `rescind local up` started, seen from this process."""

    def __init__(self, local: LocalTarget, *, environ: Mapping[str, str] | None = None) -> None:
        self.local = local
        environ = os.environ if environ is None else environ
        self._access_key = environ.get(LOCAL_ACCESS_KEY_ENV) or None
        self._secret_key = environ.get(LOCAL_SECRET_KEY_ENV) or None
        if bool(self._access_key) != bool(self._secret_key):
            raise InvalidInput(f"set both {LOCAL_ACCESS_KEY_ENV} and {LOCAL_SECRET_KEY_ENV}, or neither")
        self._cache = _ClientCache()
        self._caller: str | None = None
        self._settings: PlanSettings | None = None

    @classmethod
    def load(cls, state_dir: Path | None) -> LocalStackTarget:
        from rescind_local.target import LocalStackNotRunning, LocalTarget

        try:
            return cls(LocalTarget.load(state_dir))
        except LocalStackNotRunning as error:
            raise TargetUnavailable(str(error)) from None

    @property
    def description(self) -> str:
        return f"the local stack in {self.local.state_dir}"

    @property
    def selector(self) -> str:
        return f"--state-dir {self.local.state_dir}"

    def _session(self) -> boto3.Session:
        if self._access_key is None:
            return cast("boto3.Session", self.local.boto3_session())
        import boto3
        import botocore.session

        # Never the caller's AWS_PROFILE: the local moto is all this session talks to.
        botocore_session = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
        return boto3.session.Session(
            botocore_session=botocore_session,
            region_name=self.local.region,
            aws_access_key_id=self._access_key,
            aws_secret_access_key=self._secret_key,
        )

    def client(self, service: str) -> Any:
        with self._cache.lock:
            if service not in self._cache.clients:
                self._cache.clients[service] = self._session().client(  # type: ignore[call-overload]
                    service, endpoint_url=self.local.moto_endpoint
                )
            return self._cache.clients[service]

    def vault(self) -> hvac.Client:
        return self.local.vault_client()

    def aws_factory(self) -> AwsClientFactory:
        from rescind.aws.session import AwsClientFactory

        session = _EndpointSession(self._session(), self.local.moto_endpoint)
        return AwsClientFactory(purpose="cli-plan", session=cast("boto3.Session", session))

    def ledger(self) -> DynamoDbLedger:
        from rescind.ledger.dynamodb import DynamoDbLedger

        return DynamoDbLedger(self.local.ledger_table, self.client("dynamodb"))

    def inventory(self) -> Inventory | None:
        from rescind.inventory.dynamodb import DynamoDbInventory

        table = self.local.inventory_table
        return DynamoDbInventory(table, self.client("dynamodb")) if table else None

    def function_name(self, logical_id: str) -> str:
        name = self.local.state.functions.get(logical_id)
        if not name:
            raise TargetUnavailable(
                f"{self.description} has no {logical_id}: restart it with `rescind local down` and `rescind local up`"
            )
        return name

    def state_machine_arn(self, logical_id: str) -> str:
        try:
            return self.local.state_machine_arn(logical_id)
        except KeyError:
            raise TargetUnavailable(
                f"{self.description} has no {logical_id}: restart it with `rescind local down` and `rescind local up`"
            ) from None

    def caller_arn(self) -> str:
        if self._caller is None:
            self._caller = str(self.client("sts").get_caller_identity()["Arn"])
        return self._caller

    def function_url(self, logical_id: str) -> str:
        url = self.local.state.function_urls.get(logical_id)
        if not url:
            raise TargetUnavailable(
                f"{self.description} serves no URL for {logical_id}: restart it with `rescind local down` and "
                "`rescind local up`"
            )
        return url

    def signing_credentials(self) -> tuple[Any, str]:
        return self._session().get_credentials(), self.local.region

    def _function_settings(self) -> PlanSettings:
        """The deployed plan function's scope and guard (never its Vault token), as moto holds them: its
        variables, and the stored settings from moto's Parameter Store."""
        if self._settings is None:
            try:
                name = self.local.function_name(PLAN_FUNCTION)
                configuration = self.client("lambda").get_function_configuration(FunctionName=name)
                variables = (configuration.get("Environment") or {}).get("Variables") or {}
            except KeyError:
                variables = {}
            wanted = {*PlanSettings.variables(), *PlanSettings.parameter_variables()}
            self._settings = PlanSettings.from_environ(
                {key: str(value) for key, value in variables.items() if key in wanted}, ssm_client=self.client("ssm")
            )
        return self._settings

    def discovery_scope(self) -> DiscoveryScope:
        return self._function_settings().discovery_scope(default_account=self.local.account_id)

    def guard_policy(self) -> GuardPolicy:
        return self._function_settings().guard_policy()


# --- a deployed stack ----------------------------------------------------------------------------------


class DeployedStackTarget:
    """A stack deployed with `sam deploy`, found by name with the usual AWS profile and region."""

    def __init__(
        self,
        stack_name: str,
        session: boto3.Session,
        outputs: Mapping[str, str],
        parameters: Mapping[str, str],
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.stack_name = stack_name
        self._session = session
        self.outputs = dict(outputs)
        self.parameters = dict(parameters)
        self._environ = dict(os.environ if environ is None else environ)
        self._cache = _ClientCache()
        self._factory: AwsClientFactory | None = None

    @classmethod
    def load(cls, stack_name: str, *, profile: str | None = None) -> DeployedStackTarget:
        import boto3
        from botocore.exceptions import ClientError, ProfileNotFound

        try:
            session = boto3.Session(profile_name=profile)
        except ProfileNotFound:
            raise InvalidInput(f"AWS profile {profile!r} is not configured: check --profile or AWS_PROFILE") from None
        region = session.region_name
        if not region:
            raise InvalidInput("no AWS region is set: export AWS_REGION (or set one in your AWS profile)")
        cloudformation = session.client("cloudformation")
        try:
            stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
        except ClientError as error:
            message = error.response.get("Error", {}).get("Message", "")
            if "does not exist" in message:
                raise TargetUnavailable(
                    f"stack {stack_name!r} does not exist in {region}: check --stack (or {STACK_ENV}) and "
                    "AWS_REGION/AWS_PROFILE, deploy it with `sam deploy`, or omit --stack to use the local stack"
                ) from None
            raise
        if not stacks:
            raise TargetUnavailable(f"stack {stack_name!r} was not found in {region}: check --stack and AWS_REGION")
        stack = stacks[0]
        outputs = {item["OutputKey"]: item.get("OutputValue", "") for item in stack.get("Outputs", [])}
        missing = sorted(_STACK_OUTPUTS - {"NotificationTopicArn", "InventoryTableName"} - set(outputs))
        if missing:
            raise TargetUnavailable(
                f"stack {stack_name!r} is not a Rescind stack (its outputs lack {', '.join(missing)}): check --stack"
            )
        parameters = {item["ParameterKey"]: item.get("ParameterValue", "") for item in stack.get("Parameters", [])}
        return cls(stack_name, session, outputs, parameters)

    @property
    def description(self) -> str:
        return f"stack {self.stack_name} ({self._session.region_name})"

    @property
    def selector(self) -> str:
        return f"--stack {self.stack_name}"

    def client(self, service: str) -> Any:
        with self._cache.lock:
            if service not in self._cache.clients:
                self._cache.clients[service] = self._session.client(service)  # type: ignore[call-overload]
            return self._cache.clients[service]

    def vault(self) -> hvac.Client:
        from rescind.vault.client import build_vault_client

        addr = self._environ.get("VAULT_ADDR") or self.parameters.get("VaultAddr", "")
        token = self._environ.get("VAULT_TOKEN", "")
        token_file = Path.home() / ".vault-token"
        if not token and token_file.is_file():
            token = token_file.read_text().strip()
        if not addr:
            raise InvalidInput("set VAULT_ADDR to the Vault or OpenBao the stack acts on")
        if not token:
            raise InvalidInput("set VAULT_TOKEN (or log in with `bao login` / `vault login`) to read Vault")
        return build_vault_client(addr, token, namespace=self._environ.get("VAULT_NAMESPACE") or None)

    def aws_factory(self) -> AwsClientFactory:
        from rescind.aws.session import AwsClientFactory

        if self._factory is None:
            self._factory = AwsClientFactory(
                role_name=self.parameters.get("CrossAccountRoleName") or "RescindExecutionRole",
                external_id=CrossAccountSettings.from_environ(self._environ).cross_account_external_id,
                purpose="cli-plan",
                session=self._session,
            )
        return self._factory

    def ledger(self) -> DynamoDbLedger:
        from rescind.ledger.dynamodb import DynamoDbLedger

        return DynamoDbLedger(self.outputs["LedgerTableName"], self.client("dynamodb"))

    def inventory(self) -> Inventory | None:
        from rescind.inventory.dynamodb import DynamoDbInventory

        table = self.outputs.get("InventoryTableName")
        return DynamoDbInventory(table, self.client("dynamodb")) if table else None

    def function_name(self, logical_id: str) -> str:
        cloudformation = self.client("cloudformation")
        try:
            resource = cloudformation.describe_stack_resource(StackName=self.stack_name, LogicalResourceId=logical_id)
        except Exception:
            raise TargetUnavailable(f"stack {self.stack_name!r} has no {logical_id}: update the stack") from None
        return str(resource["StackResourceDetail"]["PhysicalResourceId"])

    def state_machine_arn(self, logical_id: str) -> str:
        arn = self.outputs.get(f"{logical_id}Arn")
        if not arn:
            raise TargetUnavailable(f"stack {self.stack_name!r} has no output {logical_id}Arn: update the stack")
        return arn

    def caller_arn(self) -> str:
        return self.aws_factory().caller_identity().arn

    def function_url(self, logical_id: str) -> str:
        url = self.outputs.get(_FUNCTION_URL_OUTPUTS.get(logical_id, f"{logical_id}Url"))
        if not url:
            raise TargetUnavailable(f"stack {self.stack_name!r} has no URL for {logical_id}: update the stack")
        return url

    def signing_credentials(self) -> tuple[Any, str]:
        return self._session.get_credentials(), str(self._session.region_name)

    def _settings(self) -> PlanSettings:
        """The stack's parameters, each overridden by the variable of the same setting when it is set."""
        settings = {variable: self.parameters.get(parameter, "") for variable, parameter in _SETTING_PARAMETERS.items()}
        settings.update(
            {variable: self._environ[variable] for variable in PlanSettings.variables() if self._environ.get(variable)}
        )
        return PlanSettings.from_environ(settings)

    def discovery_scope(self) -> DiscoveryScope:
        return self._settings().discovery_scope(default_account=self.aws_factory().caller_identity().account_id)

    def guard_policy(self) -> GuardPolicy:
        return self._settings().guard_policy()


TARGET_RULE = (
    "Where a command acts, first match wins: --stack NAME (or RESCIND_STACK) a deployed stack; --state-dir DIR "
    "the local stack there; --direct, or VAULT_ADDR set, the Vault at VAULT_ADDR directly (no stack; AWS from "
    "the usual chain; the record in a local ledger); otherwise the running local stack (`rescind local up`)."
)


def resolve_target(
    *,
    stack: str | None,
    state_dir: Path | None,
    profile: str | None = None,
    direct: bool = False,
    protected: tuple[str, ...] = (),
    environ: Mapping[str, str] | None = None,
) -> tuple[Target, str]:
    """The target, and why it was chosen (TARGET_RULE), for the line every run prints first."""
    source = os.environ if environ is None else environ
    if stack is not None and not stack.strip():
        stack = None
    chosen = [name for name, given in (("--stack", stack), ("--state-dir", state_dir), ("--direct", direct)) if given]
    if len(chosen) > 1:
        raise InvalidInput(f"give one of --stack, --state-dir and --direct, not {' and '.join(chosen)}")
    if stack:
        return DeployedStackTarget.load(stack.strip(), profile=profile), "--stack was given"
    if state_dir is not None:
        return LocalStackTarget.load(state_dir), "--state-dir was given"
    if direct or source.get("VAULT_ADDR", "").strip():
        from rescind_cli.direct import DirectTarget

        why = "--direct was given" if direct else "VAULT_ADDR is set and no --stack or --state-dir was given"
        return DirectTarget.load(profile=profile, protected=protected, environ=source), why
    return LocalStackTarget.load(None), "no --stack, --state-dir, --direct or VAULT_ADDR: the running local stack"
