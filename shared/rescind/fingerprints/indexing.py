"""Filling the fingerprint index from Vault: a whole KV v2 mount, or each new version a rotation writes.

Values are read from Vault, fingerprinted in memory and dropped. Only fingerprints and locations are stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import hvac

from rescind.exceptions import RescindError, UnsafePrefix
from rescind.fingerprints.base import FingerprintIndex, entries_for_version
from rescind.fingerprints.types import IndexProgress, IndexReport
from rescind.models import KvSecretRef
from rescind.vault.kv_rotation_state import SecretValueHook
from rescind.vault.kv_store import checked_folder, iter_kv_paths, read_secret_metadata, read_secret_version

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[IndexProgress], None]


def list_kv_secret_paths(vault: hvac.Client, mount: str, prefix: str = "") -> list[str]:
    """Every secret path under the prefix folder, sorted; refuses traversal and absolute prefixes."""
    if prefix.startswith("/") or ".." in prefix:
        raise UnsafePrefix("the prefix must be relative to the mount: no leading '/' and no '..'")
    return sorted(iter_kv_paths(vault, mount, checked_folder(mount, prefix)))


def index_kv_secret(vault: hvac.Client, index: FingerprintIndex, key: bytes, ref: KvSecretRef) -> IndexReport:
    """Index every version of one secret that is neither deleted nor destroyed."""
    metadata = read_secret_metadata(vault, ref)
    if metadata is None:
        return IndexReport(mounts=(ref.mount,))
    versions = fingerprints = skipped = 0
    for version, state in sorted(metadata.versions.items()):
        if state.destroyed:
            continue
        data = read_secret_version(vault, ref, version)
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
