"""Filling the fingerprint index from Vault: a whole KV v2 mount, or each new version a rotation writes.

Values are read from Vault, fingerprinted in memory and dropped. Only fingerprints and locations are stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import hvac
import hvac.exceptions
from pydantic import ValidationError

from rescind.exceptions import ActionFailed, InvalidInput, RescindError, UnsafePrefix
from rescind.fingerprints.base import FingerprintIndex, entries_for_version
from rescind.fingerprints.types import IndexProgress, IndexReport
from rescind.models import KvSecretRef
from rescind.vault.client import read_data, vault_errors
from rescind.vault.kv import SecretValueHook, read_secret_metadata

logger = logging.getLogger(__name__)

_NO_ROUTE = "no handler for route"  # Vault's answer when nothing is mounted at the path

ProgressCallback = Callable[[IndexProgress], None]


def _checked_prefix(mount: str, prefix: str) -> str:
    """The prefix as a folder path ('' for the whole mount); refuses traversal and absolute paths."""
    if prefix.startswith("/") or ".." in prefix:
        raise UnsafePrefix("the prefix must be relative to the mount: no leading '/' and no '..'")
    folder = prefix.rstrip("/")
    try:  # the same mount and path rules as a reference
        KvSecretRef(mount=mount, path=folder or "_")
    except ValidationError as error:
        raise InvalidInput(f"bad mount or prefix: {error.errors()[0]['msg']}") from None
    return folder


def list_kv_folder(vault: hvac.Client, mount: str, folder: str) -> list[str]:
    """The keys of one metadata folder (sub-folders end with '/'); [] when there is nothing there."""
    with vault_errors(f"list {mount}/metadata/{folder}"):
        try:
            response = vault.secrets.kv.v2.list_secrets(folder, mount_point=mount)
        except hvac.exceptions.InvalidPath as error:
            if any(_NO_ROUTE in str(message) for message in error.errors or []):
                raise ActionFailed(f"no KV v2 secrets engine is mounted at {mount!r}") from None
            return []
    return [str(key) for key in read_data(response).get("keys") or []]


def list_kv_secret_paths(vault: hvac.Client, mount: str, prefix: str = "") -> list[str]:
    """Every secret path under the prefix folder, walking the metadata tree with LIST, sorted."""
    folders = [_checked_prefix(mount, prefix)]
    paths: list[str] = []
    while folders:
        folder = folders.pop()
        for entry in list_kv_folder(vault, mount, folder):
            path = f"{folder}/{entry}" if folder else entry
            if entry.endswith("/"):
                folders.append(path.rstrip("/"))
            else:
                paths.append(path)
    return sorted(paths)


def read_kv_version_data(vault: hvac.Client, ref: KvSecretRef, version: int) -> dict[str, Any] | None:
    """One version's data, in-process only; None when it is deleted, destroyed or missing (or the mount is)."""
    with vault_errors(f"read version {version} of {ref.mount}/{ref.path}"):
        try:
            response = vault.secrets.kv.v2.read_secret_version(
                ref.path, version=version, mount_point=ref.mount, raise_on_deleted_version=True
            )
        except hvac.exceptions.InvalidPath:
            return None  # its text is never passed on: keep value-bearing responses out of messages
    data = read_data(response).get("data")
    return dict(data) if isinstance(data, dict) else None


def index_kv_secret(vault: hvac.Client, index: FingerprintIndex, key: bytes, ref: KvSecretRef) -> IndexReport:
    """Index every version of one secret that is neither deleted nor destroyed."""
    metadata = read_secret_metadata(vault, ref)
    if metadata is None:
        return IndexReport(mounts=(ref.mount,))
    versions = fingerprints = skipped = 0
    for version, state in sorted(metadata.versions.items()):
        if state.destroyed:
            continue
        data = read_kv_version_data(vault, ref, version)
        if data is None:  # soft-deleted
            continue
        entries, too_short = entries_for_version(key, ref.mount, ref.path, version, data)
        fingerprints += index.put(entries)
        versions += 1
        skipped += too_short
    return IndexReport(
        mounts=(ref.mount,), secrets=1, versions=versions, fingerprints=fingerprints, fields_skipped=skipped
    )


def index_kv_mount(
    vault: hvac.Client,
    index: FingerprintIndex,
    key: bytes,
    mount: str,
    *,
    prefix: str = "",
    on_progress: ProgressCallback | None = None,
) -> IndexReport:
    """Index every live version of every secret under `prefix` (a folder) in a KV v2 mount. Idempotent."""
    paths = list_kv_secret_paths(vault, mount, prefix)
    report = IndexReport(mounts=(mount,))
    for done, path in enumerate(paths):
        if on_progress is not None:
            on_progress(IndexProgress(mount=mount, done=done, total=len(paths), item=path))
        report = report.combined_with(index_kv_secret(vault, index, key, KvSecretRef(mount=mount, path=path)))
    if on_progress is not None:
        on_progress(IndexProgress(mount=mount, done=len(paths), total=len(paths)))
    return report


def kv_rotation_indexer(index: FingerprintIndex, key: bytes, *, strict: bool = False) -> SecretValueHook:
    """A hook for KvSecretHandler(on_new_value=...): indexes each version a rotation writes.

    By default a failure to index is logged (reference and version only) and the rotation goes on: the leaked
    versions must still be destroyed, and `rescind index kv` rebuilds the index. `strict=True` raises instead.
    The rotation may call the hook again for the same version on a rerun; the puts are idempotent.
    """

    def index_new_version(ref: KvSecretRef, version: int, value: Mapping[str, Any]) -> None:
        entries, _skipped = entries_for_version(key, ref.mount, ref.path, version, value)
        try:
            index.put(entries)
        except RescindError as error:
            if strict:
                raise
            logger.warning(
                "fingerprint index not updated for %s/%s version %d: %s",
                ref.mount,
                ref.path,
                version,
                type(error).__name__,
            )

    return index_new_version
