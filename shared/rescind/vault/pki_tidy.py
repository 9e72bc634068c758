"""A PKI mount's tidy: start it, and read its status back (tidy runs in the background)."""

from __future__ import annotations

from dataclasses import dataclass

import hvac
import hvac.exceptions

from rescind.vault.client import read_data, vault_errors
from rescind.vault.common import as_int


@dataclass(frozen=True)
class TidyStatus:
    state: str
    time_started: str
    cert_store_deleted: int
    revoked_deleted: int
    tidy_cert_store: bool
    tidy_revoked_certs: bool
    safety_buffer_seconds: int
    error: str


def read_tidy_status(client: hvac.Client, mount: str) -> TidyStatus:
    with vault_errors(f"read {mount}/tidy-status"):
        data = read_data(client.adapter.get(f"/v1/{mount}/tidy-status"))
    return TidyStatus(
        state=str(data.get("state") or ""),
        time_started=str(data.get("time_started") or ""),
        cert_store_deleted=as_int(data.get("cert_store_deleted_count")),
        revoked_deleted=as_int(data.get("revoked_cert_deleted_count")),
        tidy_cert_store=bool(data.get("tidy_cert_store")),
        tidy_revoked_certs=bool(data.get("tidy_revoked_certs")),
        safety_buffer_seconds=as_int(data.get("safety_buffer")),
        error=str(data.get("error") or "")[:200],
    )


def start_tidy(client: hvac.Client, mount: str, *, safety_buffer_seconds: int) -> str | None:
    """Ask the mount to tidy its certificate store and revoked list. None when accepted, else Vault's refusal."""
    body = {"tidy_cert_store": True, "tidy_revoked_certs": True, "safety_buffer": f"{safety_buffer_seconds}s"}
    with vault_errors(f"tidy {mount}"):
        try:
            client.adapter.post(f"/v1/{mount}/tidy", json=body)
        except hvac.exceptions.InvalidRequest as error:
            return str(error)
    return None
