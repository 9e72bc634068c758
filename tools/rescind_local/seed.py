"""Seeding a small, realistic estate on the local stack: what the demo (and later the benchmarks) act on.

The seeded values stay inside this process: the seeder keeps them only so that the demo can prove, by
using them, that a revoked credential is dead and a control credential still works.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import hvac

from rescind.aws.role_sessions import MANAGED_TAG, MANAGED_TAG_VALUE
from rescind_local.aws import LOCAL_ACCOUNT_ID

PKI_MOUNT = "pki"
APPROLE_MOUNT = "approle"
KV_MOUNT = "secret"
WORKLOAD_TAG = "rescind:workload"
# The tags of a role whose sessions Rescind may cut (the opt-in the templates' PutRolePolicy grant requires).
MANAGED_ROLE_TAGS: list[dict[str, str]] = [{"Key": MANAGED_TAG, "Value": MANAGED_TAG_VALUE}]


@dataclass
class SeededWorkload:
    """What one workload holds. Values are kept for the demo's proof-by-use, never printed or returned."""

    spiffe_id: str
    name: str
    entity_id: str = ""
    token_accessors: list[str] = field(default_factory=list)
    secret_id_accessors: list[str] = field(default_factory=list)
    certificate_serials: list[str] = field(default_factory=list)
    kv_paths: list[str] = field(default_factory=list)
    iam_user: str = ""
    access_key_ids: list[str] = field(default_factory=list)
    # in-process only, for proof by use
    _token_values: dict[str, str] = field(default_factory=dict, repr=False)
    _secret_id_values: dict[str, str] = field(default_factory=dict, repr=False)
    _kv_before: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    _certificate_pems: dict[str, str] = field(default_factory=dict, repr=False)

    def token_value(self, accessor: str) -> str:
        return self._token_values[accessor]

    def secret_id_value(self, accessor: str) -> str:
        return self._secret_id_values[accessor]

    def kv_before(self, path: str) -> dict[str, Any]:
        return self._kv_before[path]

    def certificate_pem(self, serial: str) -> str:
        return self._certificate_pems[serial]


def prepare_vault(client: hvac.Client) -> None:
    """Mounts and roles shared by every seeded workload. Safe to call twice."""
    mounts = client.sys.list_mounted_secrets_engines()["data"]
    if f"{PKI_MOUNT}/" not in mounts:
        client.sys.enable_secrets_engine("pki", path=PKI_MOUNT, config={"max_lease_ttl": "87600h"})
        client.secrets.pki.generate_root(
            "internal", "rescind.demo", extra_params={"key_type": "ec", "ttl": "87600h"}, mount_point=PKI_MOUNT
        )
    client.secrets.pki.create_or_update_role(
        "workload",
        {
            "allowed_domains": "rescind.demo",
            "allow_subdomains": True,
            "allowed_uri_sans": "spiffe://*",
            "key_type": "ec",
            "ttl": "24h",
            "max_ttl": "72h",
        },
        mount_point=PKI_MOUNT,
    )
    auth = client.sys.list_auth_methods()["data"]
    if f"{APPROLE_MOUNT}/" not in auth:
        client.sys.enable_auth_method("approle", path=APPROLE_MOUNT)
    # A policy that lets a workload token read its own KV: proof by use needs a non-root token.
    client.sys.create_or_update_policy("workload", 'path "secret/data/*" { capabilities = ["read"] }')


# The owner's rotation declaration on every seeded KV secret: `password` rotates, and no database checks it (the
# local stack has none), which the owner states explicitly with rescind_rotation_hook=none.
KV_ROTATION = {"rescind_rotate": "password", "rescind_rotation_hook": "none"}


def seed_workload(
    client: hvac.Client, iam: Any | None, name: str, spiffe_id: str, *, tokens: int = 2
) -> SeededWorkload:
    """One workload's credentials, each carrying the discovery conventions of design.md (no IAM user without iam)."""
    workload = SeededWorkload(spiffe_id=spiffe_id, name=name)
    meta = {"spiffe_id": spiffe_id}

    entity = client.secrets.identity.create_or_update_entity(
        name=f"{name}-entity", metadata=meta, policies=["workload"]
    )
    workload.entity_id = entity["data"]["id"]

    for _ in range(tokens):
        created = client.auth.token.create(policies=["workload"], ttl="2h", meta=meta, entity_alias=None)
        accessor = created["auth"]["accessor"]
        workload.token_accessors.append(accessor)
        workload._token_values[accessor] = created["auth"]["client_token"]

    client.auth.approle.create_or_update_approle(
        name, token_policies=["workload"], token_ttl="1h", mount_point=APPROLE_MOUNT
    )
    secret_id = client.auth.approle.generate_secret_id(name, metadata=meta, mount_point=APPROLE_MOUNT)["data"]
    workload.secret_id_accessors.append(secret_id["secret_id_accessor"])
    workload._secret_id_values[secret_id["secret_id_accessor"]] = secret_id["secret_id"]

    issued = client.secrets.pki.generate_certificate(
        "workload", f"{name}.rescind.demo", extra_params={"uri_sans": spiffe_id}, mount_point=PKI_MOUNT
    )
    workload.certificate_serials.append(issued["data"]["serial_number"])
    workload._certificate_pems[issued["data"]["serial_number"]] = issued["data"]["certificate"]

    path = f"apps/{name}/database"
    value = {"username": f"{name}_app", "password": secrets.token_urlsafe(24)}
    client.secrets.kv.v2.create_or_update_secret(path, secret=value, mount_point=KV_MOUNT)
    client.secrets.kv.v2.update_metadata(path, custom_metadata={**meta, **KV_ROTATION}, mount_point=KV_MOUNT)
    workload.kv_paths.append(path)
    workload._kv_before[path] = value

    if iam is None:
        return workload
    workload.iam_user = f"{name}-deployer"
    iam.create_user(UserName=workload.iam_user, Tags=[{"Key": WORKLOAD_TAG, "Value": spiffe_id}])
    key = iam.create_access_key(UserName=workload.iam_user)["AccessKey"]
    workload.access_key_ids.append(key["AccessKeyId"])
    return workload


def local_account_id() -> str:
    return LOCAL_ACCOUNT_ID


def health_event_naming(event: dict[str, Any], account_id: str, key_ids: list[str]) -> dict[str, Any]:
    """The AWS Health risk sample (events/health_risk_credentials_exposed.json) aimed at these keys of this
    account, everywhere the real event names them: affectedEntities, resources and eventMetadata."""
    event["account"] = event["detail"]["affectedAccount"] = account_id
    event["resources"] = list(key_ids)
    event["detail"]["affectedEntities"] = [{"entityValue": key_id} for key_id in key_ids]
    metadata = event["detail"].setdefault("eventMetadata", {})
    metadata["accountId"] = account_id
    metadata["publicKey"] = key_ids[0]
    return event
