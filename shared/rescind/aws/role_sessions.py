"""IAM role sessions: deny every session of a role issued before a cut-off (`aws:TokenIssueTime`).

This is what the console's "Revoke active sessions" does (inline policy `AWSRevokeOlderSessions`,
`DateLessThan aws:TokenIssueTime`); Rescind writes its own inline policy, `RescindRevokeOlderSessions`,
and leaves every other inline policy of the role alone.

The cut-off is `params.not_before` when the plan gives one (the trigger's moment: a replay is then exactly
idempotent), otherwise the moment of acting, rounded up to the whole second. The cut-off only ever moves
forward: when the existing policy's cut-off is at or after the requested one, the action is already
applied and nothing is written, so a replay can never re-admit sessions a first run revoked. A later run
without `not_before` moves the cut-off forward on purpose: it revokes sessions issued since the last one.
A cut-off more than a minute in the future is refused: it would lock the role out until then.

Only a role that opts in is ever cut: it must carry the tag `rescind:managed` = `true`. The deployed roles'
IAM policies grant `iam:PutRolePolicy` on such roles only (`aws:ResourceTag/rescind:managed`); the code
refuses the others too, before any write, so the promise holds wherever the policy is wider (the CLI on a
responder's own profile, a hand-made execution role).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from rescind.aws.errors import aws_errors, error_code
from rescind.aws.iam_keys import in_aws_scope
from rescind.aws.session import AwsClientFactory
from rescind.engine.base import KindHandler, Step
from rescind.exceptions import PolicyRefusal
from rescind.kinds import KindSpec, ValueLocator, no_guard_facts
from rescind.leaks.types import LocatedLeak, SecretType, Unlocated
from rescind.models import Action, ActionKind, ActOutcome, CredentialKind, Evidence, IamRoleSessionsRef
from rescind.models.results import utc_now

if TYPE_CHECKING:
    from mypy_boto3_iam.client import IAMClient
    from mypy_boto3_iam.type_defs import RoleTypeDef

    from rescind.kinds import LeakSearch
    from rescind.leaks.types import LeakAlert

REVOKE_POLICY_NAME = "RescindRevokeOlderSessions"
# The opt-in: template.yaml and member-account.yaml grant PutRolePolicy on roles with this tag and value only.
MANAGED_TAG = "rescind:managed"
MANAGED_TAG_VALUE = "true"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_FUTURE_SKEW = timedelta(minutes=1)


class RoleAbsent(Exception):
    """The role does not exist: none of its sessions can act (a recreated role has a new unique id)."""


def revoke_policy_document(cutoff: datetime) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Action": ["*"],
                "Resource": ["*"],
                "Condition": {"DateLessThan": {"aws:TokenIssueTime": format_cutoff(cutoff)}},
            }
        ],
    }


def format_cutoff(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def round_up_to_second(moment: datetime) -> datetime:
    whole = moment.replace(microsecond=0)
    return whole if whole == moment else whole + timedelta(seconds=1)


def _as_list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else [value]


def cutoff_in_policy(document: object) -> datetime | None:
    """The cut-off of a deny-everything-before-T statement in the document; None if there is none."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return None
    if not isinstance(document, dict):
        return None
    cutoffs: list[datetime] = []
    for statement in _as_list(document.get("Statement", [])):
        if not isinstance(statement, dict) or statement.get("Effect") != "Deny":
            continue
        if _as_list(statement.get("Action")) != ["*"] or _as_list(statement.get("Resource")) != ["*"]:
            continue
        condition = statement.get("Condition")
        if not isinstance(condition, dict) or set(condition) != {"DateLessThan"}:
            continue  # any other condition could narrow the deny
        date_less_than = condition["DateLessThan"]
        if not isinstance(date_less_than, dict) or set(date_less_than) != {"aws:TokenIssueTime"}:
            continue
        raw = date_less_than["aws:TokenIssueTime"]
        if not isinstance(raw, str):
            continue
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            continue
        cutoffs.append(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))
    return max(cutoffs) if cutoffs else None


def read_role(iam: IAMClient, role_name: str) -> RoleTypeDef:
    """The role, tags included (GetRole returns them). Raises RoleAbsent."""
    with aws_errors(f"iam get-role {role_name}"):
        try:
            return iam.get_role(RoleName=role_name)["Role"]
        except ClientError as error:
            if error_code(error) == "NoSuchEntity":
                raise RoleAbsent(role_name) from None
            raise


def opted_in(role: RoleTypeDef) -> bool:
    """Whether the role carries `rescind:managed` = `true`, exactly as the IAM condition compares it."""
    return any(tag["Key"] == MANAGED_TAG and tag["Value"] == MANAGED_TAG_VALUE for tag in role.get("Tags", []))


def read_revoke_cutoff(iam: IAMClient, role_name: str) -> datetime | None:
    """The cut-off of the role's Rescind revoke policy; None without one. Raises RoleAbsent."""
    read_role(iam, role_name)
    return _read_cutoff_policy(iam, role_name)


def _read_cutoff_policy(iam: IAMClient, role_name: str) -> datetime | None:
    with aws_errors(f"iam get-role-policy {role_name}/{REVOKE_POLICY_NAME}"):
        try:
            answer = iam.get_role_policy(RoleName=role_name, PolicyName=REVOKE_POLICY_NAME)
        except ClientError as error:
            if error_code(error) == "NoSuchEntity":
                return None
            raise
    return cutoff_in_policy(answer["PolicyDocument"])


def revoke_role_sessions(iam: IAMClient, ref: IamRoleSessionsRef, requested: datetime) -> tuple[ActOutcome, datetime]:
    """Write the deny policy with cut-off `requested`, unless one at or after it is already in place.

    Raises PolicyRefusal, having written nothing, when the role has not opted in (`rescind:managed`).
    """
    role = f"role {ref.role_name} in account {ref.account_id}"
    try:
        found = read_role(iam, ref.role_name)
    except RoleAbsent:
        return ActOutcome(changed=False, absent=True, detail=f"already absent: {role} does not exist"), requested
    if not opted_in(found):
        raise PolicyRefusal(
            f"{role} has not opted in to having its sessions cut: it lacks the tag "
            f"{MANAGED_TAG}={MANAGED_TAG_VALUE}, so Rescind writes nothing to it"
        )
    existing = _read_cutoff_policy(iam, ref.role_name)
    if existing is not None and existing >= requested:
        return (
            ActOutcome(
                changed=False,
                detail=f"already applied: {role} denies sessions issued before {format_cutoff(existing)}",
            ),
            existing,
        )
    document = json.dumps(revoke_policy_document(requested), separators=(",", ":"))
    with aws_errors(f"iam put-role-policy {ref.role_name}/{REVOKE_POLICY_NAME}"):
        try:
            iam.put_role_policy(RoleName=ref.role_name, PolicyName=REVOKE_POLICY_NAME, PolicyDocument=document)
        except ClientError as error:
            if error_code(error) == "NoSuchEntity":
                return ActOutcome(
                    changed=False, absent=True, detail=f"already absent: {role} does not exist"
                ), requested
            raise
    return (
        ActOutcome(changed=True, detail=f"{role} now denies sessions issued before {format_cutoff(requested)}"),
        requested,
    )


def verify_role_sessions_revoked(iam: IAMClient, ref: IamRoleSessionsRef, expected: datetime | None) -> Evidence:
    """Read the policy back: it must deny everything to sessions issued before `expected` (or any cut-off)."""
    wanted = f"at or after {format_cutoff(expected)}" if expected else "(any: none was requested or applied here)"
    check = f"inline policy {REVOKE_POLICY_NAME} denies * to sessions with aws:TokenIssueTime before a cut-off {wanted}"
    try:
        cutoff = read_revoke_cutoff(iam, ref.role_name)
    except RoleAbsent:
        return Evidence(check=check, observed=f"role {ref.role_name} does not exist", confirmed=True)
    if cutoff is None:
        return Evidence(
            check=check, observed=f"role {ref.role_name} has no deny-before-issue-time policy", confirmed=False
        )
    confirmed = expected is None or cutoff >= expected
    return Evidence(
        check=check,
        observed=f"role {ref.role_name} denies all to sessions issued before {format_cutoff(cutoff)}",
        confirmed=confirmed,
    )


def locate_role_sessions(search: LeakSearch, alert: LeakAlert, value: str | None) -> LocatedLeak | Unlocated:
    """GuardDuty's role, confirmed to exist in its account (in scope): its sessions are what was exfiltrated."""
    if search.backends.aws is None:
        return Unlocated(why="no AWS access is configured")
    if alert.account_id is None or alert.role_name is None:
        return Unlocated(why="the finding names no role")
    if not in_aws_scope(search, alert.account_id):
        return Unlocated(why=f"role {alert.role_name} is in account {alert.account_id}, outside the scope")
    iam = search.backends.aws.client("iam", alert.account_id)
    with aws_errors(f"iam get-role {alert.role_name}"):
        try:
            iam.get_role(RoleName=alert.role_name)
        except ClientError:
            return Unlocated(why=f"role {alert.role_name} does not exist in account {alert.account_id}")
    return LocatedLeak(
        credentials=(IamRoleSessionsRef(account_id=alert.account_id, role_name=alert.role_name),),
        evidence=f"GuardDuty named role {alert.role_name} in account {alert.account_id}",
    )


class IamRoleSessionsHandler(KindHandler[IamRoleSessionsRef]):
    """CredentialHandler for IAM role sessions: REVOKE attaches a deny-older-sessions inline policy."""

    def __init__(self, factory: AwsClientFactory, *, clock: Callable[[], datetime] = utc_now) -> None:
        super().__init__(
            CredentialKind.IAM_ROLE_SESSIONS,
            IamRoleSessionsRef,
            {ActionKind.REVOKE: Step.reads_alone(self._revoke, self._verify_revoked)},
        )
        self._factory = factory
        self._clock = clock
        self._lock = threading.Lock()
        # The cut-off act applied or found, per action id, so verify can check exactly that one.
        self._cutoffs: dict[str, datetime] = {}

    def _revoke(self, ref: IamRoleSessionsRef, action: Action) -> ActOutcome:
        if ref.role_name == self._factory.role_name:
            raise PolicyRefusal(
                f"role {ref.role_name} is Rescind's own execution role: revoking its sessions would lock Rescind out"
            )
        now = self._clock()
        requested = round_up_to_second(action.params.not_before or now)
        if requested > now + _FUTURE_SKEW:
            raise PolicyRefusal(
                f"cut-off {format_cutoff(requested)} is in the future: it would deny new sessions of "
                f"role {ref.role_name} until then"
            )
        outcome, applied = revoke_role_sessions(self._factory.client("iam", ref.account_id), ref, requested)
        with self._lock:
            self._cutoffs[action.action_id] = applied
        return outcome

    def _verify_revoked(self, ref: IamRoleSessionsRef, action: Action) -> Evidence:
        with self._lock:
            applied = self._cutoffs.get(action.action_id)
        not_before = action.params.not_before
        expected = round_up_to_second(not_before) if not_before is not None else applied
        return verify_role_sessions_revoked(self._factory.client("iam", ref.account_id), ref, expected)

    def look_up(self, ref: IamRoleSessionsRef) -> bool | None:
        try:
            read_revoke_cutoff(self._factory.client("iam", ref.account_id), ref.role_name)
        except RoleAbsent:
            return False
        return True


KIND = KindSpec(
    kind=CredentialKind.IAM_ROLE_SESSIONS,
    ref_type=IamRoleSessionsRef,
    ending_action=ActionKind.REVOKE,
    build_handler=lambda backends: IamRoleSessionsHandler(backends.require_aws()),
    read_guard_facts=no_guard_facts,
    discover=None,  # none by convention: a leak finding or a responder names the role
    locate_leaked={SecretType.AWS_ROLE_SESSIONS: ValueLocator(locate_role_sessions, needs_value=False)},
    inventory=None,
)
