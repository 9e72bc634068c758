"""boto3 clients for (service, account): the caller's own account directly, any other through a role.

Cross-account access assumes `arn:<partition>:iam::<account>:role/<role_name>` (the role name comes from
configuration, `RescindExecutionRole` by default) and caches the assumed session until shortly before its
credentials expire. It always presents an external id: member-account.yaml's role requires one, so a factory
without one refuses to cross accounts (ConfigurationError naming the setting) rather than fail as AccessDenied.
boto3 is imported lazily: handlers that never touch AWS don't pay for it at cold start.

Every client Rescind builds (here, and in the runtime factories) takes AWS_CLIENT_CONFIG: botocore's standard
retry mode, the one in-process retry of AWS calls. What still fails is raised typed (rescind.aws.errors) and
retried, if at all, by the state machines' Retry.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, overload

from botocore.config import Config

from rescind.aws.errors import aws_errors
from rescind.aws.external_id import EXTERNAL_ID_PATTERN, EXTERNAL_ID_RULE
from rescind.exceptions import ConfigurationError, InvalidInput
from rescind.models.results import utc_now

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_acm_pca.client import ACMPCAClient
    from mypy_boto3_iam.client import IAMClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient
    from mypy_boto3_sts.client import STSClient

DEFAULT_ROLE_NAME = "RescindExecutionRole"
DEFAULT_REGION = "us-east-1"

_ACCOUNT_RE = re.compile(r"^\d{12}$")
_ROLE_NAME_RE = re.compile(r"^[\w+=,.@\-]{1,64}$")
# RoleSessionName allows [\w+=,.@-]{2,64}; "rescind-" takes 8 of them.
_PURPOSE_RE = re.compile(r"^[\w+=,.@\-]{1,56}$")
_EXTERNAL_ID_RE = re.compile(EXTERNAL_ID_PATTERN)

# The botocore Config of every client Rescind builds. Standard mode: 3 attempts in all (botocore gives DynamoDB
# 4), exponential backoff with jitter, and a retry quota that stops retrying when most calls fail (botocore's
# default, "legacy", makes 5 attempts, DynamoDB 10, with no quota).
AWS_CLIENT_CONFIG = Config(retries={"mode": "standard"})


@dataclass(frozen=True)
class CallerIdentity:
    account_id: str
    arn: str

    @property
    def partition(self) -> str:
        return self.arn.split(":")[1]


@dataclass
class _AssumedSession:
    session: boto3.Session
    expires_at: datetime


class AwsClientFactory:
    """Gives a boto3 client for (service, account_id), assuming the execution role for other accounts.

    Thread-safe: Map and Parallel states may run handlers in threads. Clients can be injected for tests
    with `inject_client`, and the base session with `session`.
    """

    def __init__(
        self,
        *,
        role_name: str = DEFAULT_ROLE_NAME,
        external_id: str | None = None,
        purpose: str = "act",
        region_name: str | None = None,
        session: boto3.Session | None = None,
        duration_seconds: int = 3600,
        refresh_margin: timedelta = timedelta(minutes=5),
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if not _ROLE_NAME_RE.fullmatch(role_name):
            raise InvalidInput("cross-account role name is malformed")
        if not _PURPOSE_RE.fullmatch(purpose):
            raise InvalidInput("session purpose is malformed (letters, digits and +=,.@_- only, at most 56)")
        if external_id is not None and not _EXTERNAL_ID_RE.fullmatch(external_id):
            raise InvalidInput(f"cross-account external id is malformed: {EXTERNAL_ID_RULE}")
        self.role_name = role_name
        self._external_id = external_id
        self.role_session_name = f"rescind-{purpose}"
        self._base_session = session
        self._region_name = region_name
        self._duration_seconds = duration_seconds
        self._refresh_margin = refresh_margin
        self._clock = clock
        self._lock = threading.RLock()
        self._caller: CallerIdentity | None = None
        self._assumed: dict[str, _AssumedSession] = {}
        self._clients: dict[tuple[str, str, str], tuple[Any, datetime | None]] = {}
        self._injected: dict[tuple[str, str, str], Any] = {}

    # --- identity ----------------------------------------------------------------------------------

    @property
    def region_name(self) -> str:
        return self._region_name or self._session().region_name or DEFAULT_REGION

    def caller_identity(self) -> CallerIdentity:
        """Who the default credentials are (cached: it does not change during a process's life)."""
        with self._lock:
            if self._caller is None:
                sts: STSClient = self._session().client("sts", region_name=self.region_name, config=AWS_CLIENT_CONFIG)
                with aws_errors("sts get-caller-identity"):
                    answer = sts.get_caller_identity()
                self._caller = CallerIdentity(account_id=answer["Account"], arn=answer["Arn"])
            return self._caller

    def role_arn(self, account_id: str) -> str:
        _check_account(account_id)
        return f"arn:{self.caller_identity().partition}:iam::{account_id}:role/{self.role_name}"

    # --- clients -----------------------------------------------------------------------------------

    def inject_client(self, service: str, account_id: str, client: Any, *, region_name: str | None = None) -> None:
        """Use this client for (service, account, region) instead of building one."""
        _check_account(account_id)
        with self._lock:
            self._injected[(service, account_id, region_name or self.region_name)] = client

    @overload
    def client(self, service: Literal["iam"], account_id: str, *, region_name: str | None = None) -> IAMClient: ...

    @overload
    def client(
        self, service: Literal["secretsmanager"], account_id: str, *, region_name: str | None = None
    ) -> SecretsManagerClient: ...

    @overload
    def client(
        self, service: Literal["acm-pca"], account_id: str, *, region_name: str | None = None
    ) -> ACMPCAClient: ...

    @overload
    def client(self, service: Literal["sts"], account_id: str, *, region_name: str | None = None) -> STSClient: ...

    @overload
    def client(self, service: str, account_id: str, *, region_name: str | None = None) -> Any: ...

    def client(self, service: str, account_id: str, *, region_name: str | None = None) -> Any:
        """A client acting in `account_id`: the default session's own, or the assumed role's."""
        _check_account(account_id)
        region = region_name or self.region_name
        key = (service, account_id, region)
        with self._lock:
            if key in self._injected:
                return self._injected[key]
            cached = self._clients.get(key)
            if cached is not None and (cached[1] is None or self._fresh(cached[1])):
                return cached[0]
            # Typed as Any: the service name is only known at run time, the overloads above type the result.
            session: Any
            expires_at: datetime | None
            if account_id == self.caller_identity().account_id:
                session, expires_at = self._session(), None
            else:
                assumed = self._assumed_session(account_id)
                session, expires_at = assumed.session, assumed.expires_at
            built = (session.client(service, region_name=region, config=AWS_CLIENT_CONFIG), expires_at)
            self._clients[key] = built
            return built[0]

    # --- internals ---------------------------------------------------------------------------------

    def _session(self) -> boto3.Session:
        with self._lock:
            if self._base_session is None:
                import boto3

                self._base_session = boto3.Session()
            return self._base_session

    def _fresh(self, expires_at: datetime) -> bool:
        return self._clock() < expires_at - self._refresh_margin

    def _assumed_session(self, account_id: str) -> _AssumedSession:
        cached = self._assumed.get(account_id)
        if cached is not None and self._fresh(cached.expires_at):
            return cached
        import boto3

        role_arn = self.role_arn(account_id)
        if self._external_id is None:
            raise ConfigurationError(
                f"cannot act in account {account_id}: assuming {role_arn} needs an external id; set "
                "CROSS_ACCOUNT_EXTERNAL_ID (template.yaml CrossAccountExternalId) to the member stacks' ExternalId"
            )
        sts: STSClient = self._session().client("sts", region_name=self.region_name, config=AWS_CLIENT_CONFIG)
        with aws_errors(f"sts assume-role {role_arn}"):
            answer = sts.assume_role(
                RoleArn=role_arn,
                RoleSessionName=self.role_session_name,
                DurationSeconds=self._duration_seconds,
                ExternalId=self._external_id,
            )
        credentials = answer["Credentials"]
        session = boto3.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=self.region_name,
        )
        assumed = _AssumedSession(session=session, expires_at=credentials["Expiration"])
        self._assumed[account_id] = assumed
        return assumed


def _check_account(account_id: str) -> None:
    if not _ACCOUNT_RE.fullmatch(account_id):
        raise InvalidInput("account id must be 12 digits")


def region_of_arn(arn: str) -> str:
    """The region field of an ARN (`arn:partition:service:region:account:...`)."""
    return arn.split(":")[3]
