"""IAM access keys: deactivate (reversible containment), delete after verification and a grace period.

Only the named key of the named user is ever touched, never "all keys of the user".

A key id that exists in the account under a *different* user is refused with InvalidInput: the reference
is wrong. Reporting it "already absent" would claim success while a possibly leaked key stays active, and
acting on it would touch a credential nobody named.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from rescind.aws.errors import aws_errors, error_code
from rescind.aws.session import AwsClientFactory
from rescind.exceptions import InvalidInput, PolicyRefusal, UnsupportedAction
from rescind.models import Action, ActionKind, ActOutcome, CredentialKind, CredentialRef, Evidence, IamAccessKeyRef
from rescind.models.results import utc_now

if TYPE_CHECKING:
    from mypy_boto3_iam.client import IAMClient

DEFAULT_WORKLOAD_TAG_KEY = "rescind:workload"


class KeyState(StrEnum):
    ACTIVE = "Active"
    INACTIVE = "Inactive"
    ABSENT = "absent"  # neither the user nor anyone else in the account holds this key id
    OTHER_USER = "other_user"  # the key id exists, under another user of the account


@dataclass(frozen=True)
class KeyLookup:
    state: KeyState
    owner: str | None = None  # the actual owner when state is OTHER_USER


def _is_missing(error: ClientError) -> bool:
    return error_code(error) in ("NoSuchEntity", "NoSuchEntityException")


def _status_in_user_keys(iam: IAMClient, user_name: str, access_key_id: str) -> str | None:
    """The key's status among `user_name`'s keys; None when the user does not hold it (or does not exist)."""
    try:
        for page in iam.get_paginator("list_access_keys").paginate(UserName=user_name):
            for key in page["AccessKeyMetadata"]:
                if key.get("AccessKeyId") == access_key_id:
                    return str(key.get("Status", ""))
    except ClientError as error:
        if _is_missing(error):
            return None
        raise
    return None


def look_up_access_key(iam: IAMClient, ref: IamAccessKeyRef) -> KeyLookup:
    """Where the key stands in its account: Active/Inactive under the named user, absent, or someone else's."""
    with aws_errors(f"iam list-access-keys {ref.user_name}"):
        status = _status_in_user_keys(iam, ref.user_name, ref.access_key_id)
    if status is not None:
        return KeyLookup(KeyState(status))
    # Not the named user's: ask IAM who owns the key id, then confirm it in this account's own listing
    # (moto answers GetAccessKeyLastUsed from every account; AWS from the caller's).
    with aws_errors(f"iam get-access-key-last-used {ref.access_key_id}"):
        try:
            owner = iam.get_access_key_last_used(AccessKeyId=ref.access_key_id).get("UserName")
        except ClientError as error:
            if _is_missing(error):
                return KeyLookup(KeyState.ABSENT)
            raise
        if not owner or owner == ref.user_name:
            return KeyLookup(KeyState.ABSENT)
        if _status_in_user_keys(iam, owner, ref.access_key_id) is None:
            return KeyLookup(KeyState.ABSENT)
    return KeyLookup(KeyState.OTHER_USER, owner=owner)


def _refuse_other_user(ref: IamAccessKeyRef, lookup: KeyLookup) -> None:
    if lookup.state is KeyState.OTHER_USER:
        raise InvalidInput(
            f"access key {ref.access_key_id} belongs to user {lookup.owner!r}, not {ref.user_name!r} "
            f"in account {ref.account_id}: refusing to act on a mismatched reference"
        )


def deactivate_access_key(iam: IAMClient, ref: IamAccessKeyRef) -> ActOutcome:
    lookup = look_up_access_key(iam, ref)
    _refuse_other_user(ref, lookup)
    if lookup.state is KeyState.ABSENT:
        return ActOutcome(changed=False, absent=True, detail=f"already absent: access key {ref.access_key_id}")
    if lookup.state is KeyState.INACTIVE:
        return ActOutcome(changed=False, detail=f"already applied: access key {ref.access_key_id} is Inactive")
    with aws_errors(f"iam update-access-key {ref.access_key_id}"):
        try:
            iam.update_access_key(UserName=ref.user_name, AccessKeyId=ref.access_key_id, Status="Inactive")
        except ClientError as error:
            if _is_missing(error):  # deleted between the read and the write
                return ActOutcome(changed=False, absent=True, detail=f"already absent: access key {ref.access_key_id}")
            raise
    return ActOutcome(changed=True, detail=f"deactivated access key {ref.access_key_id} of user {ref.user_name}")


def delete_access_key(iam: IAMClient, ref: IamAccessKeyRef, action: Action) -> ActOutcome:
    """Delete only an Inactive key, and only once the grace period (`params.not_before`) is over."""
    lookup = look_up_access_key(iam, ref)
    _refuse_other_user(ref, lookup)
    if lookup.state is KeyState.ABSENT:
        return ActOutcome(changed=False, absent=True, detail=f"already absent: access key {ref.access_key_id}")
    if lookup.state is KeyState.ACTIVE:
        raise PolicyRefusal(
            f"access key {ref.access_key_id} is still Active: deactivate and verify first, "
            "delete after the grace period"
        )
    not_before = action.params.not_before
    if not_before is not None and utc_now() < not_before:
        raise PolicyRefusal(
            f"access key {ref.access_key_id} may not be deleted before {not_before.isoformat()} (grace period)"
        )
    with aws_errors(f"iam delete-access-key {ref.access_key_id}"):
        try:
            iam.delete_access_key(UserName=ref.user_name, AccessKeyId=ref.access_key_id)
        except ClientError as error:
            if _is_missing(error):
                return ActOutcome(changed=False, absent=True, detail=f"already absent: access key {ref.access_key_id}")
            raise
    return ActOutcome(changed=True, detail=f"deleted access key {ref.access_key_id} of user {ref.user_name}")


def verify_access_key(iam: IAMClient, ref: IamAccessKeyRef, kind: ActionKind) -> Evidence:
    """Read the key back: Inactive (or gone) for a disable, gone for a delete."""
    lookup = look_up_access_key(iam, ref)
    key = f"access key {ref.access_key_id}"
    seen = f"{key} of user {ref.user_name} is {'absent' if lookup.state is KeyState.ABSENT else lookup.state}"
    if lookup.state is KeyState.OTHER_USER:
        return Evidence(
            check="status of the key among the named user's keys (list-access-keys)",
            observed=f"{key} belongs to user {lookup.owner!r}, not {ref.user_name!r}",
            confirmed=False,
        )
    if kind is ActionKind.DELETE:
        return Evidence(
            check="the key is absent from the named user's keys and from the account",
            observed=seen,
            confirmed=lookup.state is KeyState.ABSENT,
        )
    return Evidence(
        check="status of the key among the named user's keys (list-access-keys)",
        observed=seen,
        confirmed=lookup.state in (KeyState.INACTIVE, KeyState.ABSENT),
    )


def find_access_keys_by_workload_tag(
    factory: AwsClientFactory,
    account_id: str,
    workload_id: str,
    tag_key: str = DEFAULT_WORKLOAD_TAG_KEY,
) -> list[IamAccessKeyRef]:
    """Every access key (Active or Inactive) of the IAM users tagged `tag_key=workload_id` in the account."""
    iam = factory.client("iam", account_id)
    refs: list[IamAccessKeyRef] = []
    with aws_errors(f"iam discovery of users tagged {tag_key} in {account_id}"):
        for page in iam.get_paginator("list_users").paginate():
            for user in page["Users"]:
                user_name = user["UserName"]
                try:
                    tags = [
                        tag
                        for tag_page in iam.get_paginator("list_user_tags").paginate(UserName=user_name)
                        for tag in tag_page["Tags"]
                    ]
                    if not any(tag["Key"] == tag_key and tag["Value"] == workload_id for tag in tags):
                        continue
                    for key_page in iam.get_paginator("list_access_keys").paginate(UserName=user_name):
                        refs.extend(
                            IamAccessKeyRef(
                                account_id=account_id, user_name=user_name, access_key_id=key["AccessKeyId"]
                            )
                            for key in key_page["AccessKeyMetadata"]
                            if "AccessKeyId" in key
                        )
                except ClientError as error:
                    if _is_missing(error):  # the user was deleted while we listed
                        continue
                    raise
    return refs


class IamAccessKeyHandler:
    """CredentialHandler for IAM access keys: DISABLE deactivates, DELETE deletes an Inactive key."""

    kinds: frozenset[CredentialKind] = frozenset({CredentialKind.IAM_ACCESS_KEY})

    def __init__(self, factory: AwsClientFactory) -> None:
        self._factory = factory

    def act(self, action: Action) -> ActOutcome:
        ref = _target(action)
        iam = self._factory.client("iam", ref.account_id)
        if action.kind is ActionKind.DISABLE:
            return deactivate_access_key(iam, ref)
        if action.kind is ActionKind.DELETE:
            return delete_access_key(iam, ref, action)
        raise UnsupportedAction(f"action {action.kind!s} does not apply to an IAM access key")

    def verify(self, action: Action) -> Evidence:
        ref = _target(action)
        return verify_access_key(self._factory.client("iam", ref.account_id), ref, action.kind)

    def exists(self, ref: CredentialRef) -> bool | None:
        # A key held by another user than the reference names is not the credential the reference names.
        if not isinstance(ref, IamAccessKeyRef):
            return False
        state = look_up_access_key(self._factory.client("iam", ref.account_id), ref).state
        return state in (KeyState.ACTIVE, KeyState.INACTIVE)


def _target(action: Action) -> IamAccessKeyRef:
    if not isinstance(action.target, IamAccessKeyRef):
        raise UnsupportedAction(f"IamAccessKeyHandler cannot act on {action.target.kind!s}")
    return action.target
