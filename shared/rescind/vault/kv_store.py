"""KV v2 secrets by mount + path: their metadata, one version's data, metadata patches, destroys, and the one
walk over a mount's folders that every caller lists keys with.

Values read here stay in-process: they are handed to the caller and never logged, put in an error or returned
from Rescind.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import hvac
import hvac.exceptions
from pydantic import ValidationError

from rescind.exceptions import ActionFailed, InvalidInput
from rescind.models import KvSecretRef
from rescind.vault.client import read_data, vault_errors
from rescind.vault.common import list_keys, parse_vault_time

_NO_ROUTE = "no handler for route"
_CAS_MISMATCH = "check-and-set"  # Vault's answer when nothing is mounted at the path
# Folders found but not yet listed. A walk that would hold more stops rather than grow without bound.
MAX_PENDING_FOLDERS = 10_000
# Where a rotation stages its pending value, at the root of the same mount: `<mount>/data/_rescind-pending/<path>`.
# No application reads it; walks skip it (it is not a secret of its own).
STAGING_FOLDER = "_rescind-pending"

SecretData = dict[str, Any]


class CheckAndSetMismatch(ActionFailed):
    """A write with check-and-set found the secret at another version: a concurrent writer; nothing was written."""


@dataclass(frozen=True)
class VersionState:
    destroyed: bool
    deletion_time: str  # "" when not soft-deleted
    created_time: datetime | None = None


@dataclass(frozen=True)
class SecretMetadata:
    """What the metadata says about a secret's versions. No value is ever read for it."""

    current_version: int
    versions: dict[int, VersionState]
    custom_metadata: dict[str, str]
    created_time: datetime | None = None  # when the secret itself was first written

    @property
    def current(self) -> VersionState | None:
        return self.versions.get(self.current_version)


def is_missing_mount(error: hvac.exceptions.VaultError) -> bool:
    return any(_NO_ROUTE in str(message) for message in error.errors or [])


def _no_kv_mount(mount: str) -> ActionFailed:
    return ActionFailed(f"no KV v2 secrets engine is mounted at {mount!r}")


def where(ref: KvSecretRef) -> str:
    return f"{ref.mount}/{ref.path}"


def checked_folder(mount: str, prefix: str) -> str:
    """A folder of the mount as a relative path ('' for the whole mount), with a reference's rules: no '..'."""
    folder = prefix.strip("/")
    try:
        KvSecretRef(mount=mount, path=folder or "_")
    except ValidationError as error:
        raise InvalidInput(f"bad mount or prefix: {error.errors()[0]['msg']}") from None
    return folder


# --- reads ------------------------------------------------------------------------------------


def read_secret_metadata(client: hvac.Client, ref: KvSecretRef) -> SecretMetadata | None:
    """The secret's metadata; None when nothing is stored at the path. A missing mount raises ActionFailed."""
    with vault_errors(f"read metadata of {where(ref)}"):
        try:
            response = client.secrets.kv.v2.read_secret_metadata(ref.path, mount_point=ref.mount)
        except hvac.exceptions.InvalidPath as error:
            if is_missing_mount(error):
                raise _no_kv_mount(ref.mount) from None
            return None
    data = read_data(response)
    versions = {
        int(number): VersionState(
            destroyed=bool(info.get("destroyed")),
            deletion_time=str(info.get("deletion_time") or ""),
            created_time=parse_vault_time(info.get("created_time")),
        )
        for number, info in (data.get("versions") or {}).items()
        if isinstance(info, dict) and str(number).isdigit()
    }
    custom = {str(key): str(value) for key, value in (data.get("custom_metadata") or {}).items()}
    return SecretMetadata(
        current_version=int(data.get("current_version") or 0),
        versions=versions,
        custom_metadata=custom,
        created_time=parse_vault_time(data.get("created_time")),
    )


def read_secret_version(
    client: hvac.Client, ref: KvSecretRef, version: int, *, missing_mount_is_absent: bool = False
) -> SecretData | None:
    """The data of one version, in-process only; None when it is deleted, destroyed or missing.

    A mount that does not exist raises ActionFailed, unless `missing_mount_is_absent` (it then holds nothing).
    """
    found = read_secret_version_and_custom_metadata(
        client, ref, version, missing_mount_is_absent=missing_mount_is_absent
    )
    return found[0] if found is not None else None


def read_secret_version_and_custom_metadata(
    client: hvac.Client, ref: KvSecretRef, version: int, *, missing_mount_is_absent: bool = False
) -> tuple[SecretData, dict[str, str]] | None:
    """One version's data and the secret's custom_metadata, from the one request (KV v2 answers a version's read
    with both); None as `read_secret_version`. The data stays in-process."""
    with vault_errors(f"read version {version} of {where(ref)}"):
        try:
            response = client.secrets.kv.v2.read_secret_version(
                ref.path, version=version, mount_point=ref.mount, raise_on_deleted_version=True
            )
        except hvac.exceptions.InvalidPath as error:
            if is_missing_mount(error) and not missing_mount_is_absent:
                raise _no_kv_mount(ref.mount) from None
            return None  # the error's text is never passed on: keep value-bearing responses out of messages
    answer = read_data(response)
    data, metadata = answer.get("data"), answer.get("metadata")
    if not isinstance(data, dict):
        return None
    custom = metadata.get("custom_metadata") if isinstance(metadata, dict) else None
    return dict(data), {str(key): str(value) for key, value in (custom or {}).items()}


# --- writes -----------------------------------------------------------------------------------


def patch_custom_metadata(client: hvac.Client, ref: KvSecretRef, changes: Mapping[str, str | None]) -> None:
    """JSON merge-patch of custom_metadata: other keys, and settings like delete_version_after, are kept.

    (hvac's update_metadata POSTs and resets delete_version_after to 0s, so it is not used.) A None
    value removes the key.
    """
    with vault_errors(f"update custom_metadata of {where(ref)}"):
        client.adapter.request(
            "patch",
            f"/v1/{ref.mount}/metadata/{ref.path}",
            json={"custom_metadata": dict(changes)},
            headers={"Content-Type": "application/merge-patch+json"},
        )


def write_secret(client: hvac.Client, ref: KvSecretRef, value: Mapping[str, Any], *, cas: int | None = None) -> int:
    """Write a new version (check-and-set on `cas` when given) and return its number. The value is never logged."""
    with vault_errors(f"write a new version of {where(ref)}"):
        try:
            response = client.secrets.kv.v2.create_or_update_secret(
                ref.path, secret=dict(value), cas=cas, mount_point=ref.mount
            )
        except hvac.exceptions.InvalidRequest as error:
            if any(_CAS_MISMATCH in str(message) for message in error.errors or []):
                raise CheckAndSetMismatch(
                    f"concurrent writer: {where(ref)} is no longer at version {cas}; nothing was written"
                ) from None
            raise ActionFailed(f"write of a new version of {where(ref)} refused") from None
    return int(read_data(response).get("version") or 0)


def delete_secret(client: hvac.Client, ref: KvSecretRef) -> None:
    """Delete the secret's metadata and every version (the staging copy once a rotation is finished)."""
    with vault_errors(f"delete {where(ref)}"):
        client.secrets.kv.v2.delete_metadata_and_all_versions(ref.path, mount_point=ref.mount)


def destroy_versions(client: hvac.Client, ref: KvSecretRef, versions: list[int]) -> None:
    """Destroy the versions' data for good (their metadata stays, marked destroyed)."""
    if versions:
        with vault_errors(f"destroy versions {versions} of {where(ref)}"):
            client.secrets.kv.v2.destroy_secret_versions(ref.path, versions, mount_point=ref.mount)


# --- the walk ---------------------------------------------------------------------------------


def iter_kv_paths(
    client: hvac.Client,
    mount: str,
    folder: str = "",
    *,
    before_request: Callable[[], None] | None = None,
    max_pending_folders: int = MAX_PENDING_FOLDERS,
) -> Iterator[str]:
    """Every secret path under `folder` of a KV v2 mount, walking its metadata folders breadth-first.

    Each folder is one LIST of its metadata, followed page by page where the server paginates (OpenBao does, with
    `after` and `limit`). At most `max_pending_folders` folders wait to be listed: a wider tree stops the walk
    with ActionFailed rather than grow the queue without bound. A missing mount raises ActionFailed; a folder
    that vanished meanwhile is empty. Paths come folder by folder, each folder's keys sorted: sort them for a
    total order. `before_request` runs before each LIST (a rate limit).
    """
    pending = deque([folder.strip("/")])
    while pending:
        current = pending.popleft()
        for key in _list_folder(client, mount, current, before_request):
            path = f"{current}/{key}" if current else key
            if not current and key == f"{STAGING_FOLDER}/":
                continue  # pending rotation values: never a secret of their own
            if not key.endswith("/"):
                yield path
                continue
            if len(pending) >= max_pending_folders:
                raise ActionFailed(
                    f"KV v2 mount {mount!r} has more than {max_pending_folders} folders waiting to be listed; "
                    "walk a narrower prefix"
                )
            pending.append(path.rstrip("/"))


def _list_folder(client: hvac.Client, mount: str, folder: str, before_request: Callable[[], None] | None) -> list[str]:
    if before_request is not None:
        before_request()
    with vault_errors(f"list {mount}/metadata/{folder}"):
        try:
            return sorted(list_keys(client, f"/v1/{mount}/metadata/{folder}"))
        except hvac.exceptions.InvalidPath as error:
            if is_missing_mount(error):
                raise ActionFailed(f"cannot list {mount!r}: {_no_kv_mount(mount)}") from None
            return []
