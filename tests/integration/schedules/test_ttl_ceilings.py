"""TTL ceilings against a real OpenBao of their own (the sweep looks at every token role, live token and lease on
the server, so it must not meet other tests' credentials): over-ceiling roles, mounts and tokens are lowered and
read back, what cannot be lowered is flagged, protected and held ones are untouched, a second run changes nothing,
a dry run writes nothing, a bounded run resumes from its checkpoint."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import hvac
import pytest

from rescind.engine.factory import build_engine
from rescind.exceptions import ActionFailed
from rescind.schedules.dynamodb import DynamoDbCheckpointStore
from rescind.schedules.policy import SchedulePolicy
from rescind.schedules.ttl_ceilings import run_ttl_ceilings
from rescind.schedules.types import ChangeStatus, SweepName, SweepReport, SweepRequest
from rescind_local import LocalOpenBao

DAY = 86400
TABLE = "sweep-state"


@pytest.fixture
def bao() -> Iterator[hvac.Client]:
    with LocalOpenBao() as server:
        yield hvac.Client(url=server.addr, token=server.root_token, timeout=10)


@pytest.fixture
def checkpoints(aws: None) -> DynamoDbCheckpointStore:
    client = boto3.client("dynamodb")
    client.create_table(
        TableName=TABLE,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return DynamoDbCheckpointStore(TABLE, client)


@dataclass
class Estate:
    """What was seeded: accessors by name, and the protected path."""

    tokens: dict[str, str]


def seed_estate(bao: hvac.Client) -> Estate:
    """Over-ceiling, healthy, protected and held roles, mounts and tokens (ceilings: the policy defaults)."""
    bao.sys.enable_secrets_engine("pki", path="pki", config={"max_lease_ttl": "8760h"})  # over 30 days
    bao.write("pki/root/generate/internal", common_name="ttl.rescind", key_type="ec", key_bits=256, ttl="8760h")
    bao.write("pki/roles/web", allow_any_name=True, key_type="ec", key_bits=256, max_ttl="2160h", generate_lease=True)
    bao.write("pki/roles/short", allow_any_name=True, key_type="ec", key_bits=256, ttl="1h", max_ttl="24h")
    bao.sys.enable_secrets_engine(
        "pki", path="pki-protected", config={"max_lease_ttl": "8760h", "default_lease_ttl": "1h"}
    )
    bao.write("pki-protected/roles/ca-ops", allow_any_name=True, max_ttl="8760h")
    # A certificate lease of 30 days: PKI leases are not renewable, so it can only be flagged.
    bao.write("pki/issue/web", common_name="lease.ttl.rescind", ttl="720h")

    bao.sys.enable_auth_method("approle", path="approle", config={"default_lease_ttl": "1h", "max_lease_ttl": "720h"})
    bao.write("auth/approle/role/over", token_ttl="1h", token_max_ttl="720h", token_explicit_max_ttl="720h")
    bao.write(
        "auth/approle/role/healthy",
        token_ttl="1h",
        token_max_ttl="4h",
        token_explicit_max_ttl="4h",
        secret_id_ttl="1h",
    )
    bao.write("auth/token/roles/forever", allowed_policies="default")  # explicit max 0: unlimited
    bao.write("auth/token/roles/bounded", allowed_policies="default", token_explicit_max_ttl="1h")

    def token(**options: Any) -> str:
        return str(bao.auth.token.create(policies=["default"], **options)["auth"]["accessor"])

    tokens = {
        "over": token(ttl="720h"),
        "healthy": token(ttl="1h"),
        "periodic": token(period="720h"),
        "held": token(ttl="720h", meta={"rescind_hold": "true"}),
        "protected": token(ttl="720h"),
    }
    return Estate(tokens=tokens)


def sweep(
    bao: hvac.Client, checkpoints: DynamoDbCheckpointStore, policy: SchedulePolicy, **request: Any
) -> SweepReport:
    return run_ttl_ceilings(
        SweepRequest(**request),
        policy=policy,
        vault=bao,
        engine=build_engine(bao),
        checkpoints=checkpoints,
        pki_mounts=["pki", "pki-protected"],
        approle_mounts=["approle"],
        now=datetime.now(UTC),
    )


def policy_for(estate: Estate, **overrides: Any) -> SchedulePolicy:
    protected = ("pki-protected/", f"vault_token:{estate.tokens['protected']}")
    return SchedulePolicy(protected_paths=protected, **overrides)


def by_target(report: SweepReport) -> dict[str, list[ChangeStatus]]:
    found: dict[str, list[ChangeStatus]] = {}
    for change in report.changes:
        found.setdefault(change.target, []).append(change.status)
    return found


def token_ttl(bao: hvac.Client, accessor: str) -> int:
    return int(bao.auth.token.lookup_accessor(accessor)["data"]["ttl"])


def test_over_ceiling_targets_are_lowered_and_read_back_the_rest_untouched(
    bao: hvac.Client, checkpoints: DynamoDbCheckpointStore
) -> None:
    estate = seed_estate(bao)
    policy = policy_for(estate)
    protected_role_before = bao.read("pki-protected/roles/ca-ops")["data"]["max_ttl"]

    report = sweep(bao, checkpoints, policy)

    statuses = by_target(report)
    applied = {target for target, found in statuses.items() if ChangeStatus.APPLIED in found}
    assert applied == {
        "vault_ttl_target:mount:pki:",
        "vault_ttl_target:pki_role:pki:web",
        "vault_ttl_target:approle_role:approle:over",
        "vault_ttl_target:token_role:token:forever",
        f"vault_token:{estate.tokens['over']}",
    }
    assert statuses[f"vault_token:{estate.tokens['periodic']}"] == [ChangeStatus.FLAGGED]
    assert statuses[f"vault_token:{estate.tokens['held']}"] == [ChangeStatus.SKIPPED]
    assert statuses[f"vault_token:{estate.tokens['protected']}"] == [ChangeStatus.SKIPPED]
    assert statuses["vault_ttl_target:pki_role:pki-protected:ca-ops"] == [ChangeStatus.SKIPPED]
    assert statuses["vault_ttl_target:mount:pki-protected:"] == [ChangeStatus.SKIPPED]
    # secret_id_ttl 0 (never expires) is flagged, not lowered; the PKI lease is not renewable
    assert ChangeStatus.FLAGGED in statuses["vault_ttl_target:approle_role:approle:over"]
    (lease,) = [target for target in statuses if target.startswith("vault_lease:pki/issue/web/")]
    assert statuses[lease] == [ChangeStatus.FLAGGED]
    for healthy in (
        "mount:auth/approle:",
        "pki_role:pki:short",
        "approle_role:approle:healthy",
        "token_role:token:bounded",
    ):
        assert f"vault_ttl_target:{healthy}" not in statuses
    assert f"vault_token:{estate.tokens['healthy']}" not in statuses

    # Each change says what it was and what it became
    (role,) = [c for c in report.changes if c.target == "vault_ttl_target:pki_role:pki:web"]
    assert role.before == "max_ttl=7776000 ttl=0"
    assert role.after == f"max_ttl={7 * DAY} ttl={7 * DAY}"

    # Read back from OpenBao
    web = bao.read("pki/roles/web")["data"]
    assert (web["max_ttl"], web["ttl"]) == (7 * DAY, 7 * DAY)
    assert bao.read("pki/roles/short")["data"]["max_ttl"] == DAY
    tune = bao.sys.read_mount_configuration("pki")["data"]
    assert tune["max_lease_ttl"] == 30 * DAY
    over_role = bao.read("auth/approle/role/over")["data"]
    assert over_role["token_max_ttl"] == 7 * DAY
    assert over_role["token_explicit_max_ttl"] == 7 * DAY
    assert bao.read("auth/token/roles/forever")["data"]["token_explicit_max_ttl"] == 7 * DAY
    assert token_ttl(bao, estate.tokens["over"]) <= 7 * DAY
    for untouched in ("held", "protected", "periodic"):
        assert token_ttl(bao, estate.tokens[untouched]) > 29 * DAY
    assert bao.read("pki-protected/roles/ca-ops")["data"]["max_ttl"] == protected_role_before

    # A second run finds nothing over the ceiling that it may lower
    again = sweep(bao, checkpoints, policy)
    assert {c.status for c in again.changes} <= {ChangeStatus.FLAGGED, ChangeStatus.SKIPPED}
    # (the same flags and skips as before, and nothing else)
    first_notes = sorted((c.target, c.status) for c in report.changes if c.status is not ChangeStatus.APPLIED)
    assert sorted((c.target, c.status) for c in again.changes) == first_notes


def test_dry_run_plans_and_changes_nothing(bao: hvac.Client, checkpoints: DynamoDbCheckpointStore) -> None:
    estate = seed_estate(bao)
    before = bao.read("pki/roles/web")["data"]

    report = sweep(bao, checkpoints, policy_for(estate), dry_run=True)

    planned = [c for c in report.changes if c.status is ChangeStatus.PLANNED]
    assert len(planned) == 5
    assert {c.status for c in report.changes} <= {ChangeStatus.PLANNED, ChangeStatus.FLAGGED, ChangeStatus.SKIPPED}
    assert bao.read("pki/roles/web")["data"] == before
    assert token_ttl(bao, estate.tokens["over"]) > 29 * DAY
    assert checkpoints.load(SweepName.TTL_CEILINGS) is None


def test_a_bounded_run_resumes_from_its_checkpoint(bao: hvac.Client, checkpoints: DynamoDbCheckpointStore) -> None:
    estate = seed_estate(bao)
    policy = policy_for(estate, max_actions_per_run=3)

    first = sweep(bao, checkpoints, policy)
    assert first.count(ChangeStatus.APPLIED) == 3
    assert not first.complete
    assert checkpoints.load(SweepName.TTL_CEILINGS) == first.checkpoint

    second = sweep(bao, checkpoints, policy)
    assert second.count(ChangeStatus.APPLIED) == 2
    assert second.complete
    assert checkpoints.load(SweepName.TTL_CEILINGS) is None
    applied = {c.target for c in first.changes + second.changes if c.status is ChangeStatus.APPLIED}
    assert len(applied) == 5


def test_the_sweeps_own_token_is_never_touched(bao: hvac.Client, checkpoints: DynamoDbCheckpointStore) -> None:
    # Given the sweep runs with a long-lived token of its own (root tokens never expire, so use a child)
    seed_estate(bao)
    own = bao.auth.token.create(policies=["root"], ttl="720h")["auth"]
    client = hvac.Client(url=bao.url, token=own["client_token"], timeout=10)

    report = sweep(client, checkpoints, SchedulePolicy())

    assert f"vault_token:{own['accessor']}" not in by_target(report)
    assert token_ttl(bao, own["accessor"]) > 29 * DAY


def test_a_pki_mount_that_does_not_exist_is_refused_before_any_change(
    bao: hvac.Client, checkpoints: DynamoDbCheckpointStore
) -> None:
    estate = seed_estate(bao)

    with pytest.raises(ActionFailed, match="cannot list PKI roles of pki-missing"):
        run_ttl_ceilings(
            SweepRequest(),
            policy=policy_for(estate),
            vault=bao,
            engine=build_engine(bao),
            checkpoints=checkpoints,
            pki_mounts=["pki", "pki-missing"],
            approle_mounts=["approle"],
            now=datetime.now(UTC),
        )

    # Discovery comes before any action: nothing was lowered
    assert bao.read("pki/roles/web")["data"]["max_ttl"] == 90 * DAY
    assert token_ttl(bao, estate.tokens["over"]) > 29 * DAY
