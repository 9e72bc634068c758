"""The inventory report on a seeded estate: its own OpenBao server (tokens are server-wide) and moto IAM,
Secrets Manager and S3. Every figure is asserted exactly, and no seeded value may reach the written objects."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import boto3
import hvac
import pytest

from rescind.aws.session import AwsClientFactory
from rescind.discovery import DiscoveryScope
from rescind.inventory import CloudResourceKind, WorkloadBinding
from rescind.models import AppRoleSecretIdRef, CredentialKind
from rescind.models.results import utc_now
from rescind.schedules.inventory_report import (
    InventoryReport,
    age_bucket,
    build_inventory_report,
    write_inventory_report,
)
from rescind.schedules.policy import SchedulePolicy
from rescind.schedules.runtime import inventory_report_metrics
from rescind_local import LOCAL_ACCOUNT_ID, LocalOpenBao
from tests.doubles import InMemoryInventory

WORKLOAD = "spiffe://example.org/ns/shop/sa/cart"
POLICY = SchedulePolicy(vault_requests_per_second=1000)  # default ceilings: tokens/roles 7 d, mounts 30 d
BUCKET = "rescind-reports"


@dataclass
class Seeded:
    vault: hvac.Client
    root_accessor: str
    inventory: InMemoryInventory
    scope: DiscoveryScope
    targets: dict[str, str] = field(default_factory=dict)  # name -> the reference's text form
    values: list[str] = field(default_factory=list)  # every secret value seeded: none may appear in a report


@pytest.fixture(scope="module")
def own_openbao() -> Iterator[LocalOpenBao]:
    """Tokens belong to the whole server, so this report gets a server of its own to count them exactly."""
    with LocalOpenBao() as server:
        yield server


def _seed_vault(vault: hvac.Client, seeded: Seeded) -> None:
    targets, values = seeded.targets, seeded.values
    # Tokens: the root token (never expires, no owner), plus one healthy, one over the 7-day ceiling with no
    # owner, and one non-expiring that belongs to the workload.
    for name, options in {
        "token_ok": {"ttl": "1h", "meta": {"spiffe_id": WORKLOAD}},
        "token_long": {"ttl": "720h", "policies": ["default"]},
        "token_forever": {"policies": ["root"], "meta": {"spiffe_id": WORKLOAD}},
    }.items():
        auth = vault.auth.token.create(**options)["auth"]
        targets[name] = f"vault-token:accessor:{auth['accessor']}"
        values.append(auth["client_token"])

    # AppRole: a role that leaves TTLs to the defaults, with a never-expiring secret-id of the workload; and a
    # compliant role with an expiring secret-id that only the inventory knows the owner of.
    vault.sys.enable_auth_method("approle", path="ar", config={"default_lease_ttl": "1h", "max_lease_ttl": "24h"})
    vault.write("auth/ar/role/forever", secret_id_ttl="0")
    vault.write(
        "auth/ar/role/tidy", secret_id_ttl="1h", token_ttl="1h", token_max_ttl="1h", token_explicit_max_ttl="1h"
    )
    forever = vault.write("auth/ar/role/forever/secret-id", metadata=json.dumps({"spiffe_id": WORKLOAD}))["data"]
    tidy = vault.write("auth/ar/role/tidy/secret-id")["data"]
    targets["secret_id_forever"] = f"approle:ar:forever:{forever['secret_id_accessor']}"
    targets["secret_id_inventoried"] = f"approle:ar:tidy:{tidy['secret_id_accessor']}"
    values += [forever["secret_id"], tidy["secret_id"]]
    seeded.inventory.record_credentials(
        WORKLOAD, [AppRoleSecretIdRef(mount="ar", role_name="tidy", accessor=tidy["secret_id_accessor"])]
    )

    # PKI: a healthy certificate, one living 100 days, one without URI SAN, and one revoked (not counted).
    vault.sys.enable_secrets_engine("pki", path="pki", config={"max_lease_ttl": "87600h"})
    vault.write("pki/root/generate/internal", common_name="Example Root", key_type="ec", ttl="87600h")
    vault.write("pki/roles/svc", allow_any_name=True, allowed_uri_sans="spiffe://*", key_type="ec", max_ttl="87600h")
    for name, options in {
        "cert_ok": {"ttl": "24h", "uri_sans": WORKLOAD},
        "cert_long": {"ttl": "2400h", "uri_sans": WORKLOAD},
        "cert_no_owner": {"ttl": "24h"},
        "cert_revoked": {"ttl": "24h"},
    }.items():
        data = vault.write("pki/issue/svc", common_name="svc.example.org", **options)["data"]
        targets[name] = f"pki:pki:{data['serial_number']}"
        values.append(data["private_key"])
    vault.write("pki/revoke", serial_number=targets["cert_revoked"].removeprefix("pki:pki:"))

    # KV v2: two secrets of the workload (one in a folder) and one with no owner.
    vault.sys.enable_secrets_engine("kv", path="kv", options={"version": "2"})
    for path, owner in (("shop/db", WORKLOAD), ("shop/deep/api", WORKLOAD), ("orphaned", None)):
        value = f"kv-value-{path}-{hash(path)}"
        vault.secrets.kv.v2.create_or_update_secret(path, secret={"password": value}, mount_point="kv")
        if owner:
            vault.secrets.kv.v2.update_metadata(path, custom_metadata={"spiffe_id": owner}, mount_point="kv")
        targets[f"kv_{path}"] = f"kv:kv:{path}"
        values.append(value)


def _seed_aws(seeded: Seeded) -> None:
    iam = boto3.client("iam")
    iam.create_user(UserName="cart", Tags=[{"Key": "rescind:workload", "Value": WORKLOAD}])
    iam.create_user(UserName="legacy")
    for user in ("cart", "legacy"):
        key = iam.create_access_key(UserName=user)["AccessKey"]
        seeded.targets[f"key_{user}"] = f"aws-key:{LOCAL_ACCOUNT_ID}:{user}:{key['AccessKeyId']}"
        seeded.values.append(key["SecretAccessKey"])
    inactive = iam.create_access_key(UserName="legacy")["AccessKey"]
    iam.update_access_key(UserName="legacy", AccessKeyId=inactive["AccessKeyId"], Status="Inactive")
    seeded.values.append(inactive["SecretAccessKey"])

    secrets = boto3.client("secretsmanager")
    for name, tags in (("cart/db", [{"Key": "rescind:workload", "Value": WORKLOAD}]), ("legacy/db", [])):
        value = f"sm-value-{name}-{hash(name)}"
        arn = secrets.create_secret(Name=name, SecretString=value, Tags=tags)["ARN"]
        seeded.targets[f"secret_{name}"] = f"aws-secret:{arn}"
        seeded.values.append(value)


@pytest.fixture
def seeded(own_openbao: LocalOpenBao, aws: None) -> Iterator[Seeded]:
    vault = hvac.Client(url=own_openbao.addr, token=own_openbao.root_token, timeout=10)
    root_accessor = vault.auth.token.lookup_self()["data"]["accessor"]
    inventory = InMemoryInventory()
    inventory.bind(
        WorkloadBinding(
            cloud_id="i-0123456789abcdef0",
            kind=CloudResourceKind.EC2_INSTANCE,
            workload_id=WORKLOAD,
            account_id=LOCAL_ACCOUNT_ID,
            region="us-east-1",
            seen_at=utc_now(),
        )
    )
    scope = DiscoveryScope(
        pki_mounts=("pki",), approle_mounts=("ar",), kv_mounts=("kv",), aws_account_ids=(LOCAL_ACCOUNT_ID,)
    )
    state = Seeded(vault=vault, root_accessor=root_accessor, inventory=inventory, scope=scope)
    state.targets["root_token"] = f"vault-token:accessor:{root_accessor}"
    _seed_vault(vault, state)
    _seed_aws(state)
    yield state
    for path in ("auth/ar",):
        vault.sys.disable_auth_method(path.removeprefix("auth/"))
    for mount in ("pki", "kv"):
        vault.sys.disable_secrets_engine(mount)
    for name in ("token_ok", "token_long", "token_forever"):
        vault.auth.token.revoke_accessor(state.targets[name].rsplit(":", 1)[1])


def _build(seeded: Seeded, scope: DiscoveryScope | None = None) -> InventoryReport:
    return build_inventory_report(
        policy=POLICY,
        vault=seeded.vault,
        aws=AwsClientFactory(),
        scope=scope or seeded.scope,
        inventory=seeded.inventory,
        now=utc_now(),
    )


def _targets(seeded: Seeded, *names: str) -> set[str]:
    return {seeded.targets[name] for name in names}


def test_report_figures_match_the_seeded_estate(seeded: Seeded) -> None:
    report = _build(seeded)

    # Counts by kind, all created just now
    assert report.by_kind == {
        CredentialKind.VAULT_TOKEN: 4,  # root, ok, long, forever
        CredentialKind.APPROLE_SECRET_ID: 2,
        CredentialKind.PKI_CERTIFICATE: 3,  # the CA and the revoked one are not counted
        CredentialKind.KV_SECRET: 3,
        CredentialKind.IAM_ACCESS_KEY: 2,  # the inactive key grants nothing
        CredentialKind.SECRETS_MANAGER_SECRET: 2,
    }
    assert report.total == 16
    assert report.by_age == {"lt_1d": 16, "lt_7d": 0, "lt_30d": 0, "lt_90d": 0, "ge_90d": 0}
    # No owner: no metadata, URI SAN or tag, and not recorded in the inventory
    assert {finding.target for finding in report.no_owner} == _targets(
        seeded, "root_token", "token_long", "cert_no_owner", "kv_orphaned", "key_legacy", "secret_legacy/db"
    )
    # Standing privilege: tokens and secret-ids that never expire
    assert {finding.target for finding in report.standing_privilege} == _targets(
        seeded, "root_token", "token_forever", "secret_id_forever"
    )
    # TTL violations: the 30-day token, the 100-day certificate, the PKI role and mount, the default AppRole role
    assert {finding.target for finding in report.ttl_violations} == _targets(seeded, "token_long", "cert_long") | {
        "vault-ttl:pki-role:pki:svc",
        "vault-ttl:mount:pki",
        "vault-ttl:approle-role:ar:forever",
    }
    assert report.errors == ()

    metrics = _figures(report)
    assert metrics["CredentialsTotal"] == 16.0
    assert metrics["CredentialsWithoutOwner"] == 6.0
    assert metrics["StandingPrivilege"] == 3.0
    assert metrics["TtlViolations"] == 5.0
    assert metrics["CredentialsByKind", "kind", "vault_token"] == 4.0  # one metric, the kind its dimension
    assert metrics["CredentialsByAge", "age", "lt_1d"] == 16.0
    assert metrics["ReportErrors"] == 0.0


def _figures(report: InventoryReport) -> dict[str | tuple[str, ...], float]:
    """The report's metrics by name, or by (name, dimension, value, ...) for the ones with dimensions."""
    return {
        (point.name, *(part for item in point.dimensions.items() for part in item))
        if point.dimensions
        else point.name: (point.value)
        for point in inventory_report_metrics(report)
    }


def test_report_is_written_to_s3_as_json_and_markdown_without_any_value(seeded: Seeded) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    report = _build(seeded)

    keys = write_inventory_report(report, s3, BUCKET)

    moment = report.generated_at
    assert keys == [
        f"reports/inventory/{moment:%Y/%m/%d}/inventory-{moment:%Y%m%dT%H%M%SZ}.json",
        f"reports/inventory/{moment:%Y/%m/%d}/inventory-{moment:%Y%m%dT%H%M%SZ}.md",
    ]
    listed = {item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert listed == set(keys)
    as_json = s3.get_object(Bucket=BUCKET, Key=keys[0])["Body"].read().decode()
    as_markdown = s3.get_object(Bucket=BUCKET, Key=keys[1])["Body"].read().decode()
    assert InventoryReport.model_validate_json(as_json).model_dump() == report.model_dump()
    assert json.loads(as_json)["total"] == 16
    assert "16 credentials; 6 with no owner; 3 standing privilege; 5 TTL violations." in as_markdown
    assert f"`{seeded.targets['token_long']}`" in as_markdown
    for value in seeded.values:
        assert value not in as_json
        assert value not in as_markdown

    # Written again, the same report lands on the same keys
    assert write_inventory_report(report, s3, BUCKET) == keys
    assert s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 2


def test_an_unreadable_mount_is_listed_and_the_rest_still_counted(seeded: Seeded) -> None:
    scope = DiscoveryScope(pki_mounts=("pki",), approle_mounts=(), kv_mounts=("kv", "no-such-kv"), aws_account_ids=())

    report = _build(seeded, scope)

    assert len(report.errors) == 1
    assert "no-such-kv" in report.errors[0]
    assert report.by_kind[CredentialKind.KV_SECRET] == 3
    assert report.by_kind[CredentialKind.PKI_CERTIFICATE] == 3
    assert CredentialKind.IAM_ACCESS_KEY not in report.by_kind
    assert _figures(report)["ReportErrors"] == 1.0


def test_age_buckets() -> None:
    now = utc_now()
    ages = [timedelta(hours=23), timedelta(days=1), timedelta(days=6), timedelta(days=29), timedelta(days=89)]
    assert [age_bucket(now - age, now) for age in ages] == ["lt_1d", "lt_7d", "lt_7d", "lt_30d", "lt_90d"]
    assert age_bucket(now - timedelta(days=90), now) == "ge_90d"
