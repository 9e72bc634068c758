"""Proof by use: a credential is dead when using it fails, as it would for an attacker holding it.

The seeded values live only in the seeding process; these checks use them and report only references.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import hvac
import hvac.exceptions

from rescind.vault.pki import fetch_revoked_serials
from rescind_local.seed import APPROLE_MOUNT, KV_MOUNT, PKI_MOUNT, SeededWorkload


@dataclass(frozen=True)
class ProofByUse:
    """A check made by using the credential itself, as an attacker would."""

    workload: str
    credential: str
    check: str
    expected: str  # "dead" or "alive"
    observed: str
    passed: bool


def _works(call: Callable[[], object]) -> tuple[bool, str]:
    try:
        call()
    except hvac.exceptions.VaultError as error:
        return False, f"refused ({type(error).__name__})"
    return True, "accepted"


def prove_by_use(
    vault: hvac.Client, addr: str, iam: object, workload: SeededWorkload, *, expected: str
) -> list[ProofByUse]:
    want_alive = expected == "alive"
    proofs: list[ProofByUse] = []

    def add(credential: str, check: str, alive: bool, observed: str) -> None:
        proofs.append(ProofByUse(workload.name, credential, check, expected, observed, alive == want_alive))

    for accessor in workload.token_accessors:
        user = hvac.Client(url=addr, token=workload.token_value(accessor), timeout=10)
        alive, observed = _works(user.auth.token.lookup_self)
        add(f"token {accessor}", "lookup-self with the token", alive, observed)

    role_id = _role_id(vault, workload.name)
    for accessor in workload.secret_id_accessors:
        secret_id = workload.secret_id_value(accessor)

        def login(secret_id: str = secret_id) -> object:
            anonymous = hvac.Client(url=addr, timeout=10)
            return anonymous.auth.approle.login(role_id, secret_id, mount_point=APPROLE_MOUNT, use_token=False)

        alive, observed = _works(login)
        add(f"secret-id {accessor}", "AppRole login with the secret-id", alive, observed)

    revoked = fetch_revoked_serials(vault, PKI_MOUNT)
    for serial in workload.certificate_serials:
        in_crl = serial in revoked
        add(f"certificate {serial}", "serial in the parsed CRL", not in_crl, "in CRL" if in_crl else "not in CRL")

    for path in workload.kv_paths:
        current = vault.secrets.kv.v2.read_secret_version(path, mount_point=KV_MOUNT, raise_on_deleted_version=True)
        unchanged = current["data"]["data"] == workload.kv_before(path)
        add(
            f"kv {KV_MOUNT}/{path}",
            "the seeded value is still current",
            unchanged,
            "unchanged" if unchanged else "rotated",
        )

        def read_first_version(path: str = path) -> object:
            return vault.secrets.kv.v2.read_secret_version(
                path, version=1, mount_point=KV_MOUNT, raise_on_deleted_version=True
            )

        readable, observed = _works(read_first_version)
        add(f"kv {KV_MOUNT}/{path} v1", "read the seeded version", readable, "readable" if readable else observed)

    entity = vault.secrets.identity.read_entity(workload.entity_id)["data"]
    add(
        f"entity {workload.entity_id}",
        "entity read back",
        not entity["disabled"],
        "disabled" if entity["disabled"] else "enabled",
    )

    if iam is None or not workload.iam_user:  # a Vault-only workload
        return proofs
    keys = iam.list_access_keys(UserName=workload.iam_user)["AccessKeyMetadata"]  # type: ignore[attr-defined]
    for key in keys:
        active = key["Status"] == "Active"
        add(f"access key {key['AccessKeyId']}", "IAM key status", active, key["Status"])
    return proofs


def _role_id(vault: hvac.Client, role_name: str) -> str:
    role_id: str = vault.auth.approle.read_role_id(role_name, mount_point=APPROLE_MOUNT)["data"]["role_id"]
    return role_id
