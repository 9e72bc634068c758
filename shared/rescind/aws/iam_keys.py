"""IAM access keys: deactivate (reversible containment), delete after verification and a grace period.

Only the named key of the named user is ever touched, never "all keys of the user".

A key id that exists in the account under a *different* user is refused with InvalidInput: the reference
is wrong. Reporting it "already absent" would claim success while a possibly leaked key stays active, and
acting on it would touch a credential nobody named.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from rescind.aws.errors import aws_errors, error_code
from rescind.aws.session import AwsClientFactory
from rescind.concurrent_reads import read_together
from rescind.engine.base import KindHandler, Step
from rescind.exceptions import ActionFailed, ConfigurationError, InvalidInput, PolicyRefusal
from rescind.holds import NO_GUARD_FACTS, GuardFacts, facts_from_aws_tags
from rescind.kinds import Backends, GuardRead, InventoryRow, InventoryScan, InventorySection, KindSpec, ValueLocator
from rescind.leaks.types import ACCESS_KEY_ID, LocatedLeak, SecretType, Unlocated
from rescind.models import Action, ActionKind, ActOutcome, CredentialKind, Evidence, IamAccessKeyRef
from rescind.models.refs import format_ref
from rescind.models.results import utc_now

if TYPE_CHECKING:
    from mypy_boto3_iam.client import IAMClient
    from mypy_boto3_iam.type_defs import AccessKeyMetadataTypeDef

    from rescind.discovery import DiscoveryScope
    from rescind.kinds import LeakSearch
    from rescind.leaks.types import LeakAlert

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


# A leaked key as its account lists it: its user, its status there, and the user's tags (None: unreadable).
_ListedKey = tuple[str, str, "dict[str, str] | None"]

_LISTED = frozenset({KeyState.ACTIVE.value, KeyState.INACTIVE.value})  # the statuses IAM lists a key with


def _is_missing(error: ClientError) -> bool:
    return error_code(error) in ("NoSuchEntity", "NoSuchEntityException")


# The two listings below follow IAM's Marker themselves: a botocore paginator's own work costs a few milliseconds per
# call in-process, and the user's tags are read before a leaked key is deactivated (one page, nearly always).


def _user_access_keys(iam: IAMClient, user_name: str) -> list[AccessKeyMetadataTypeDef] | None:
    """Every access key of the user (list-access-keys, every page); None when the user does not exist."""
    try:
        page = iam.list_access_keys(UserName=user_name)
        keys = list(page["AccessKeyMetadata"])
        while page.get("IsTruncated") and page.get("Marker"):
            page = iam.list_access_keys(UserName=user_name, Marker=page["Marker"])
            keys.extend(page["AccessKeyMetadata"])
        return keys
    except ClientError as error:
        if _is_missing(error):
            return None
        raise


def _status_in_user_keys(iam: IAMClient, user_name: str, access_key_id: str) -> str | None:
    """The key's status among `user_name`'s keys; None when the user does not hold it (or does not exist)."""
    for key in _user_access_keys(iam, user_name) or []:
        if key.get("AccessKeyId") == access_key_id:
            return str(key.get("Status", ""))
    return None


def read_user_tags(iam: IAMClient, user_name: str) -> dict[str, str] | None:
    """The IAM user's tags; None when the user does not exist."""
    with aws_errors(f"iam list-user-tags {user_name}"):
        try:
            page = iam.list_user_tags(UserName=user_name)
            tags = {tag["Key"]: tag["Value"] for tag in page["Tags"]}
            while page.get("IsTruncated") and page.get("Marker"):
                page = iam.list_user_tags(UserName=user_name, Marker=page["Marker"])
                tags.update((tag["Key"], tag["Value"]) for tag in page["Tags"])
            return tags
        except ClientError as error:
            if _is_missing(error):
                return None
            raise


def _users_with_tags(iam: IAMClient) -> Iterator[tuple[str, dict[str, str]]]:
    """Every IAM user of the account with its tags; a user deleted while we list is left out."""
    for page in iam.get_paginator("list_users").paginate():
        for user in page["Users"]:
            tags = read_user_tags(iam, user["UserName"])
            if tags is not None:
                yield user["UserName"], tags


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


def deactivate_access_key(iam: IAMClient, ref: IamAccessKeyRef, *, listed: str | None = None) -> ActOutcome:
    """Deactivate the key. `listed`: its status under the named user in a listing made moments before (the leak
    locate's, for the kill first): then the key is not listed again, and "already applied" means that listing saw
    it Inactive. The read-back after (`verify_access_key`) lists the real state either way."""
    seen = " (as listed moments before)" if listed else ""
    lookup = KeyLookup(KeyState(listed)) if listed in _LISTED else look_up_access_key(iam, ref)
    _refuse_other_user(ref, lookup)
    if lookup.state is KeyState.ABSENT:
        return ActOutcome(changed=False, absent=True, detail=f"already absent: access key {ref.access_key_id}")
    if lookup.state is KeyState.INACTIVE:
        return ActOutcome(changed=False, detail=f"already applied: access key {ref.access_key_id} is Inactive{seen}")
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
        for user_name, tags in _users_with_tags(iam):
            if tags.get(tag_key) != workload_id:
                continue
            refs.extend(
                IamAccessKeyRef(account_id=account_id, user_name=user_name, access_key_id=key["AccessKeyId"])
                for key in _user_access_keys(iam, user_name) or []  # None: the user was deleted while we listed
                if "AccessKeyId" in key
            )
    return refs


# --- a leaked key, or a user AWS Health names --------------------------------------------------------


def in_aws_scope(search: LeakSearch, account_id: str) -> bool:
    """An account of the discovery scope, or Rescind's own."""
    aws = search.backends.require_aws()
    return account_id in search.scope.aws_account_ids or account_id == aws.caller_identity().account_id


def locate_leaked_access_key(search: LeakSearch, alert: LeakAlert, value: str | None) -> LocatedLeak | Unlocated:
    """The key id (the alert's, the value, or the one written beside a GitHub secret) → its account → its user."""
    key_id, found_by = alert.access_key_id or (value or ""), ""
    if search.backends.aws is None:
        return Unlocated(why="no AWS access is configured")
    if not ACCESS_KEY_ID.fullmatch(key_id):
        beside = _key_id_beside_github_secret(search, alert)
        if isinstance(beside, Unlocated):
            return beside
        key_id, found_by = beside, "the key id written beside the leaked secret in the alert's file; "
    aws, sole = search.backends.aws, None
    if alert.account_id is None and not key_id.startswith("ASIA"):
        # One account in sight (Rescind's own, cached by the warm function): the key is looked for there first, and
        # is located only if that account lists it under its user. Else its account is asked of STS, as before.
        sole = _sole_account(search)
        listed = None if sole is None else _user_of_key(aws.client("iam", sole), key_id)
        if sole is not None and listed is not None:
            return _located_key(sole, key_id, listed, found_by, search.scope.aws_tag_key)
    account = alert.account_id or _account_of_key(aws, key_id)
    if account is None:
        return Unlocated(why=f"access key {key_id} belongs to no account Rescind can see")
    if key_id.startswith("ASIA"):
        return Unlocated(
            why=f"{key_id} is a temporary key of a role session in account {account}; STS does not name its "
            f"role: find it in CloudTrail (lookup-events AccessKeyId={key_id}) and cut the role's sessions "
            f"(rescind revoke --credential aws-role-sessions:{account}:ROLE)"
        )
    if not in_aws_scope(search, account):
        return Unlocated(why=f"access key {key_id} is in account {account}, outside the discovery scope")
    listed = None if account == sole else _user_of_key(aws.client("iam", account), key_id)  # sole: listed above
    if listed is None:
        return Unlocated(why=f"access key {key_id} does not exist in account {account} (already deleted?)")
    return _located_key(account, key_id, listed, found_by, search.scope.aws_tag_key)


def _sole_account(search: LeakSearch) -> str | None:
    """The account, when Rescind's own is the only one in sight (the scope names no other); else None."""
    aws = search.backends.require_aws()
    own = aws.caller_identity().account_id
    return own if set(search.scope.aws_account_ids) <= {own} else None


def _located_key(account: str, key_id: str, listed: _ListedKey, found_by: str, tag_key: str) -> LocatedLeak:
    """The key as its account lists it under its user, with that user's tags (the guard's facts)."""
    user_name, status, tags = listed
    ref = IamAccessKeyRef(account_id=account, user_name=user_name, access_key_id=key_id)
    return LocatedLeak(
        credentials=(ref,),
        # The workload the user runs as (its tag): the guard refuses a protected one, as for a Vault token.
        owner=(tags or {}).get(tag_key) or None,
        evidence=f"{found_by}IAM lists access key {key_id} under user {user_name} in account {account}",
        # A key id from the alert or the value is the leaked key; one found beside a GitHub secret is a guess.
        exact=not found_by,
        guard_facts={} if tags is None else {ref.key: facts_from_aws_tags(tags, f"IAM user {user_name}")},
        key_status={ref.key: status} if status in _LISTED else {},
    )


def _tags_of_user(iam: IAMClient, user_name: str) -> dict[str, str] | None:
    """The key's IAM user's tags (its workload tag, its hold): best effort, None when unreadable."""
    try:
        return read_user_tags(iam, user_name) or {}
    except ActionFailed:
        return None


def _key_id_beside_github_secret(search: LeakSearch, alert: LeakAlert) -> str | Unlocated:
    """A secret access key does not name its key id; GitHub alerts on it only beside its key id, in one file."""
    if alert.github_repository is None or alert.github_alert_number is None:
        return Unlocated(why="the alert names no access key id")
    if search.github_key_id_finder is None:
        return Unlocated(why="GitHub alerts need GITHUB_TOKEN_SECRET_ARN to read the alert's locations")
    try:
        key_ids = search.github_key_id_finder(alert.github_repository, alert.github_alert_number)
    except (InvalidInput, ActionFailed, ConfigurationError) as error:
        return Unlocated(why=f"GitHub alert {alert.github_alert_number}'s locations could not be read: {error}"[:500])
    if len(key_ids) != 1:
        found = f"{len(key_ids)} access key ids ({', '.join(key_ids[:5])})" if key_ids else "no access key id"
        return Unlocated(
            why=f"{found} written beside the secret in the alert's committed files: its pair cannot be told"[:500]
        )
    return key_ids[0]


def _account_of_key(aws: AwsClientFactory, key_id: str) -> str | None:
    sts = aws.client("sts", aws.caller_identity().account_id)
    with aws_errors("sts get-access-key-info"):
        try:
            account: str = sts.get_access_key_info(AccessKeyId=key_id)["Account"]
        except ClientError:
            return None
    return account


def _user_of_key(iam: IAMClient, key_id: str) -> _ListedKey | None:
    """The key's user, its status in that user's listing and the user's tags; None when the account does not list
    it. The listing and the tags need only the user's name: they are read together, so two round trips precede the
    kill, not three."""
    with aws_errors(f"iam get-access-key-last-used {key_id}"):
        try:
            user_name = iam.get_access_key_last_used(AccessKeyId=key_id).get("UserName")
        except ClientError:
            return None
    if not user_name:
        return None
    status, tags = read_together(  # the listing's error first, as before
        partial(_status_listed_under, iam, user_name, key_id),
        partial(_tags_of_user, iam, user_name),  # None: unreadable, then the guard reads the facts itself
    )
    return None if status is None else (user_name, status, tags)


def _status_listed_under(iam: IAMClient, user_name: str, key_id: str) -> str | None:
    """The key's status in the user's own listing (confirms it in the account itself); None when not listed there."""
    with aws_errors(f"iam list-access-keys {user_name}"):
        try:
            listed = iam.list_access_keys(UserName=user_name)["AccessKeyMetadata"]
        except ClientError:
            return None
    return next((str(item.get("Status", "")) for item in listed if item.get("AccessKeyId") == key_id), None)


def locate_user_keys(search: LeakSearch, alert: LeakAlert, value: str | None) -> LocatedLeak | Unlocated:
    """Every active key of the user AWS Health named. Inactive keys are left: they open nothing now."""
    if search.backends.aws is None:
        return Unlocated(why="no AWS access is configured")
    account, user_name = alert.account_id, alert.user_name
    if account is None or user_name is None:
        return Unlocated(why="the event names no IAM user")
    if not in_aws_scope(search, account):
        return Unlocated(why=f"IAM user {user_name} is in account {account}, outside the discovery scope")
    iam = search.backends.aws.client("iam", account)
    with aws_errors(f"iam list-access-keys {user_name}"):
        try:
            listed = iam.list_access_keys(UserName=user_name)["AccessKeyMetadata"]
        except ClientError as error:
            if error_code(error) != "NoSuchEntity":
                raise
            return Unlocated(why=f"no IAM user {user_name} in account {account}")
    keys = [str(item["AccessKeyId"]) for item in listed if item.get("Status") == "Active"]
    if not keys:
        return Unlocated(why=f"IAM user {user_name} in account {account} has no active access key")
    return LocatedLeak(
        credentials=tuple(IamAccessKeyRef(account_id=account, user_name=user_name, access_key_id=key) for key in keys),
        evidence=f"IAM lists {len(keys)} active access key(s) under user {user_name} in account {account}",
    )


# --- the inventory report -------------------------------------------------------------------------


def _inventory(scan: InventoryScan) -> list[InventorySection]:
    if scan.backends.aws is None:
        return []
    return [(f"iam keys in {account}", partial(_key_rows, scan, account)) for account in scan.scope.aws_account_ids]


def _key_rows(scan: InventoryScan, account_id: str) -> Iterator[InventoryRow]:
    """Every Active key of every user of the account (an inactive key grants nothing), owned by its user's tag."""
    iam = scan.backends.require_aws().client("iam", account_id)
    with aws_errors(f"iam list-users/list-access-keys in {account_id}"):
        for user_name, tags in _users_with_tags(iam):
            for key in _user_access_keys(iam, user_name) or []:
                if key.get("Status") != "Active":
                    continue
                ref = IamAccessKeyRef(account_id=account_id, user_name=user_name, access_key_id=key["AccessKeyId"])
                yield InventoryRow(
                    target=format_ref(ref),
                    kind=CredentialKind.IAM_ACCESS_KEY,
                    created_at=key["CreateDate"],
                    owner=tags.get(scan.scope.aws_tag_key) or None,
                )


# --- the kind -------------------------------------------------------------------------------------


class IamAccessKeyHandler(KindHandler[IamAccessKeyRef]):
    """CredentialHandler for IAM access keys: DISABLE deactivates, DELETE deletes an Inactive key. `listed`: each
    key's status as a listing moments before showed it, by reference key (the leak locate's, for the kill first):
    its deactivation lists it no more."""

    def __init__(self, factory: AwsClientFactory, *, listed: Mapping[str, str] | None = None) -> None:
        seen = dict(listed or {})

        def iam(ref: IamAccessKeyRef) -> IAMClient:
            return factory.client("iam", ref.account_id)

        super().__init__(
            CredentialKind.IAM_ACCESS_KEY,
            IamAccessKeyRef,
            {
                ActionKind.DISABLE: Step.reads_alone(
                    lambda ref, _action: deactivate_access_key(iam(ref), ref, listed=seen.get(ref.key)),
                    lambda ref, action: verify_access_key(iam(ref), ref, action.kind),
                ),
                ActionKind.DELETE: Step.reads_alone(
                    lambda ref, action: delete_access_key(iam(ref), ref, action),
                    lambda ref, action: verify_access_key(iam(ref), ref, action.kind),
                ),
            },
        )
        self._iam = iam

    def look_up(self, ref: IamAccessKeyRef) -> bool | None:
        # A key held by another user than the reference names is not the credential the reference names.
        return look_up_access_key(self._iam(ref), ref).state in (KeyState.ACTIVE, KeyState.INACTIVE)


def _guard_facts(read: GuardRead, ref: IamAccessKeyRef) -> GuardFacts:
    """The hold tag and workload tag of the key's IAM user, read once per user in a plan."""
    aws = read.backends.aws
    if aws is None:
        return NO_GUARD_FACTS
    user = (ref.account_id, ref.user_name)
    with read.iam_user_tags_lock:
        if user not in read.iam_user_tags:
            read.iam_user_tags[user] = read_user_tags(aws.client("iam", ref.account_id), ref.user_name) or {}
        tags = read.iam_user_tags[user]
    return facts_from_aws_tags(tags, f"IAM user {ref.user_name}")


def _discover(backends: Backends, workload_id: str, scope: DiscoveryScope) -> list[IamAccessKeyRef]:
    if backends.aws is None:
        return []
    found: list[IamAccessKeyRef] = []
    for account_id in scope.aws_account_ids:
        found.extend(find_access_keys_by_workload_tag(backends.aws, account_id, workload_id, tag_key=scope.aws_tag_key))
    return found


KIND = KindSpec(
    kind=CredentialKind.IAM_ACCESS_KEY,
    ref_type=IamAccessKeyRef,
    ending_action=ActionKind.DISABLE,  # reversible first; deletion after a verified disable and a grace period
    build_handler=lambda backends: IamAccessKeyHandler(backends.require_aws()),
    read_guard_facts=_guard_facts,
    discover=_discover,
    locate_leaked={
        SecretType.AWS_ACCESS_KEY: ValueLocator(locate_leaked_access_key, needs_value=False),
        SecretType.AWS_IAM_USER: ValueLocator(locate_user_keys, needs_value=False),
    },
    inventory=_inventory,
)
