"""Fingerprint index records. None of them has a field that can hold a secret value."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from rescind.deferred_builds import DEFER_MODEL_BUILDS
from rescind.models import KvSecretRef

Fingerprint = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class FingerprintHit(BaseModel):
    """Where a fingerprinted value was seen: one field of one version of one KV v2 secret."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    mount: str
    path: str
    version: Annotated[int, Field(ge=1)]
    field: Annotated[str, Field(min_length=1)]

    @property
    def ref(self) -> KvSecretRef:
        return KvSecretRef(mount=self.mount, path=self.path)


class FingerprintEntry(BaseModel):
    """One index entry: the keyed fingerprint of a field's value, and where that value is."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    fingerprint: Fingerprint
    hit: FingerprintHit


class IndexProgress(BaseModel):
    """Progress of one mount's indexing: `done` of `total` secrets, `item` the path being read."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, frozen=True)

    mount: str
    done: int
    total: int
    item: str = ""


class IndexReport(BaseModel):
    """What an indexing run wrote. Counts only: never a value, never a fingerprint."""

    model_config = ConfigDict(defer_build=DEFER_MODEL_BUILDS, extra="forbid", frozen=True)

    mounts: tuple[str, ...] = ()
    secrets: int = 0
    versions: int = 0
    fingerprints: int = 0
    # String fields shorter than the minimum (and empty ones): too guessable to index.
    fields_skipped: int = 0

    def combined_with(self, other: IndexReport) -> IndexReport:
        return IndexReport(
            mounts=(*self.mounts, *(mount for mount in other.mounts if mount not in self.mounts)),
            secrets=self.secrets + other.secrets,
            versions=self.versions + other.versions,
            fingerprints=self.fingerprints + other.fingerprints,
            fields_skipped=self.fields_skipped + other.fields_skipped,
        )
