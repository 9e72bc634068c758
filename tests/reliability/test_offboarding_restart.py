"""OpenBao crashes in the middle of an offboarding, then restarts from its on-disk storage.

The run that was cut short records what failed; running the offboarding again converges: every credential
of the workload is proved dead by use, what was done before the crash comes back "already applied/absent",
and a neighbouring workload is untouched. The same holds for a KV rotation cut between (or inside) its steps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import boto3
import hvac
import hvac.exceptions
import pytest

from rescind.aws.session import AwsClientFactory
from rescind.discovery import DiscoveryScope, discover_workload_credentials, plan_to_end
from rescind.engine.executor import ActionEngine
from rescind.engine.factory import build_engine
from rescind.exceptions import UnsupportedAction, VaultUnavailable
from rescind.models import ActionParams, ActionResult, CredentialKind, KvSecretRef, Outcome, Plan
from rescind.rotation.contract import declaration_from
from rescind.vault.kv_rotation import (
    check_pending_value,
    create_pending_value,
    finish_rotation,
    rotate_kv_secret,
    set_pending_value,
)
from rescind.vault.kv_rotation_state import fingerprint, verify_kv_rotation
from rescind.vault.pki import fetch_revoked_serials
from rescind_local import LOCAL_ACCOUNT_ID, LocalOpenBao, local_aws
from rescind_local.seed import (
    APPROLE_MOUNT,
    KV_MOUNT,
    KV_ROTATION,
    PKI_MOUNT,
    SeededWorkload,
    prepare_vault,
    seed_workload,
)

TARGET = ("payments-api", "spiffe://reliability.rescind/ns/payments/sa/api")
CONTROL = ("billing-worker", "spiffe://reliability.rescind/ns/billing/sa/worker")
RUN_ID = "inc-crash-restart-1"  # the rerun belongs to the same incident, so a finished rotation is not redone
SCOPE = DiscoveryScope(aws_account_ids=(LOCAL_ACCOUNT_ID,))
ALREADY = {Outcome.ALREADY_APPLIED, Outcome.ALREADY_ABSENT}


@pytest.fixture
def openbao_on_disk() -> Iterator[LocalOpenBao]:
    with LocalOpenBao(storage="file") as server:
        yield server


def root_client(server: LocalOpenBao) -> hvac.Client:
    """A fresh client, as a new Lambda invocation would build after the restart (same root token)."""
    return hvac.Client(url=server.addr, token=server.root_token, timeout=5)


def with_fast_retries(built: ActionEngine) -> ActionEngine:
    """build_engine's own handlers, with the same bounded retries but a millisecond backoff: while the
    server is down every attempt fails, and the default backoff would only make the test slower."""
    handlers: dict[int, Any] = {}
    for kind in CredentialKind:
        with contextlib.suppress(UnsupportedAction):
            handler = built.handler_for(kind)
            handlers[id(handler)] = handler
    return ActionEngine(handlers.values(), transient_retries=3, retry_backoff_seconds=0.005)


def plan_offboarding(vault: hvac.Client, aws: AwsClientFactory, workload: SeededWorkload, plan_id: str) -> Plan:
    refs = discover_workload_credentials(vault, aws, workload.spiffe_id, SCOPE)
    return plan_to_end(
        plan_id, refs, run_id=RUN_ID, reason="reliability: workload terminated", rotated_since=datetime.now(UTC)
    )


def secret_values(workload: SeededWorkload) -> list[str]:
    values = [workload.token_value(a) for a in workload.token_accessors]
    values += [workload.secret_id_value(a) for a in workload.secret_id_accessors]
    values += [str(v) for path in workload.kv_paths for v in workload.kv_before(path).values()]
    return values


# --- proof by use ------------------------------------------------------------------------------


def token_works(addr: str, token: str) -> bool:
    try:
        hvac.Client(url=addr, token=token, timeout=5).auth.token.lookup_self()
    except hvac.exceptions.Forbidden:
        return False
    return True


def secret_id_logs_in(vault: hvac.Client, addr: str, role_name: str, secret_id: str) -> bool:
    role_id = vault.auth.approle.read_role_id(role_name, mount_point=APPROLE_MOUNT)["data"]["role_id"]
    try:
        hvac.Client(url=addr, timeout=5).auth.approle.login(
            role_id, secret_id, mount_point=APPROLE_MOUNT, use_token=False
        )
    except hvac.exceptions.InvalidRequest:
        return False
    return True


def kv_version(vault: hvac.Client, path: str, version: int | None = None) -> dict[str, Any] | None:
    try:
        response = vault.secrets.kv.v2.read_secret_version(
            path, version=version, mount_point=KV_MOUNT, raise_on_deleted_version=True
        )
    except hvac.exceptions.InvalidPath:
        return None
    data: dict[str, Any] = response["data"]["data"]
    return data


def assert_dead_by_use(vault: hvac.Client, addr: str, iam: Any, workload: SeededWorkload) -> None:
    for accessor in workload.token_accessors:
        assert not token_works(addr, workload.token_value(accessor)), f"token {accessor} still works"
    for accessor in workload.secret_id_accessors:
        secret_id = workload.secret_id_value(accessor)
        assert not secret_id_logs_in(vault, addr, workload.name, secret_id), f"secret-id {accessor} logs in"
    revoked = fetch_revoked_serials(vault, PKI_MOUNT)
    assert set(workload.certificate_serials) <= revoked
    for path in workload.kv_paths:
        current = kv_version(vault, path)
        assert current is not None, f"{path} has no current version"
        assert current != workload.kv_before(path), f"{path} was not rotated"
        assert kv_version(vault, path, version=1) is None, f"the seeded version of {path} still reads"
    assert vault.secrets.identity.read_entity(workload.entity_id)["data"]["disabled"] is True
    keys = iam.list_access_keys(UserName=workload.iam_user)["AccessKeyMetadata"]
    assert {key["AccessKeyId"] for key in keys} == set(workload.access_key_ids)
    assert {key["Status"] for key in keys} == {"Inactive"}


def assert_alive_by_use(vault: hvac.Client, addr: str, iam: Any, workload: SeededWorkload) -> None:
    for accessor in workload.token_accessors:
        assert token_works(addr, workload.token_value(accessor)), f"control token {accessor} was killed"
    for accessor in workload.secret_id_accessors:
        secret_id = workload.secret_id_value(accessor)
        assert secret_id_logs_in(vault, addr, workload.name, secret_id), f"control secret-id {accessor} died"
    assert not set(workload.certificate_serials) & fetch_revoked_serials(vault, PKI_MOUNT)
    for path in workload.kv_paths:
        assert kv_version(vault, path) == workload.kv_before(path)
        assert kv_version(vault, path, version=1) == workload.kv_before(path)
    assert vault.secrets.identity.read_entity(workload.entity_id)["data"]["disabled"] is False
    keys = iam.list_access_keys(UserName=workload.iam_user)["AccessKeyMetadata"]
    assert {key["Status"] for key in keys} == {"Active"}


# --- the offboarding ---------------------------------------------------------------------------


@pytest.mark.parametrize("crash_after", [2, 3])
def test_an_offboarding_cut_by_a_crash_converges_after_a_restart(
    openbao_on_disk: LocalOpenBao, crash_after: int
) -> None:
    server = openbao_on_disk
    with local_aws():
        # Given two seeded workloads on a server with on-disk storage
        vault, iam, aws = root_client(server), boto3.client("iam"), AwsClientFactory()
        prepare_vault(vault)
        target = seed_workload(vault, iam, *TARGET)
        control = seed_workload(vault, iam, *CONTROL)
        plan = plan_offboarding(vault, aws, target, "plan-before-crash")
        assert len(plan.actions) == 7  # entity, IAM key, KV secret, two tokens, secret-id, certificate

        # When the offboarding runs and the server crashes (SIGKILL) after the Nth result
        first: list[ActionResult] = []

        def crash_after_nth(result: ActionResult) -> None:
            first.append(result)
            if len(first) == crash_after:
                server.kill()

        with_fast_retries(build_engine(vault, aws_factory=aws)).run_plan(plan, on_result=crash_after_nth)

        # Then what ran before the crash is verified, and everything after it failed as Vault unavailable
        done, cut = first[:crash_after], first[crash_after:]
        assert all(r.outcome is Outcome.SUCCEEDED and r.evidence[0].confirmed for r in done)
        assert cut, "the crash must leave work undone"
        assert {(r.outcome, r.error_type) for r in cut} == {(Outcome.FAILED, VaultUnavailable.__name__)}
        # and no secret value reached a result, even in an error's detail
        recorded = "".join(r.model_dump_json() for r in first)
        assert not [value for value in secret_values(target) if value in recorded]

        # When the server restarts from its storage and the offboarding runs again with a new client
        server.restart()
        vault = root_client(server)
        rerun_plan = plan_offboarding(vault, aws, target, "plan-after-restart")
        second = build_engine(vault, aws_factory=aws).run_plan(rerun_plan)

        # Then every action of the rerun is verified,
        assert all(r.outcome.is_success and r.evidence and r.evidence[0].confirmed for r in second), [
            (r.target.kind, r.outcome, r.detail) for r in second
        ]
        by_id = {r.action_id: r for r in second}
        # what was done before the crash (entity, key, and the rotation of this same incident: all still
        # there, so found again) comes back already applied,
        assert all(r.action_id in by_id for r in done)
        assert {by_id[r.action_id].outcome for r in done} <= ALREADY
        # what the crash cut off is done now,
        assert {by_id[r.action_id].outcome for r in cut} == {Outcome.SUCCEEDED}
        # and a third run finds nothing left to do
        third = build_engine(vault, aws_factory=aws).run_plan(plan_offboarding(vault, aws, target, "plan-third"))
        assert third
        assert {r.outcome for r in third} <= ALREADY

        # Then, proved by use: the target's credentials are all dead, the control's all alive
        assert_dead_by_use(vault, server.addr, iam, target)
        assert_alive_by_use(vault, server.addr, iam, control)


# --- the KV rotation ---------------------------------------------------------------------------


class CrashingIndex:
    """An on_new_value callback (the fingerprint index) that records the versions it is handed and can crash the
    server: it runs inside finish, after the finish write."""

    def __init__(self, server: LocalOpenBao, *, crash: bool) -> None:
        self.server = server
        self.crash = crash
        self.versions: list[int] = []

    def __call__(self, ref: KvSecretRef, version: int, value: Mapping[str, Any]) -> None:
        self.versions.append(version)
        if self.crash:
            self.crash = False
            self.server.kill()


def destroyed_versions(vault: hvac.Client, ref: KvSecretRef) -> set[int]:
    metadata = vault.secrets.kv.v2.read_secret_metadata(ref.path, mount_point=ref.mount)["data"]
    return {int(v) for v, info in metadata["versions"].items() if info["destroyed"]}


CRASH_POINTS = [
    "after create",
    "after set",
    "after test",
    "inside finish, after the write",
]


@pytest.mark.parametrize("crash_point", CRASH_POINTS)
def test_a_kv_rotation_cut_by_a_crash_converges_after_a_restart(
    openbao_on_disk: LocalOpenBao, crash_point: str
) -> None:
    server = openbao_on_disk
    vault = root_client(server)
    # Given a secret with two versions, declared to rotate its password (no external system checks it)
    ref = KvSecretRef(mount=KV_MOUNT, path="apps/crash/database")
    old_values = [{"password": "first-old-password"}, {"password": "second-old-password"}]
    for value in old_values:
        vault.secrets.kv.v2.create_or_update_secret(ref.path, secret=value, mount_point=KV_MOUNT)
    vault.secrets.kv.v2.update_metadata(ref.path, custom_metadata=KV_ROTATION, mount_point=KV_MOUNT)
    declaration = declaration_from(KV_ROTATION, "test")
    assert declaration is not None
    rotation_id, params = "rot-crash-restart-1", ActionParams()
    on_new_value = CrashingIndex(server, crash=crash_point == "inside finish, after the write")

    # When the rotation runs step by step and the server crashes (SIGKILL) at the crash point
    steps: list[Callable[[], object]] = [
        lambda: create_pending_value(vault, ref, rotation_id, declaration),
        lambda: set_pending_value(vault, ref, rotation_id, declaration, None),
        lambda: check_pending_value(vault, ref, rotation_id, declaration, None),
        lambda: finish_rotation(vault, ref, rotation_id, params, on_new_value=on_new_value),
    ]
    # (the index crashes inside finish; otherwise the server is killed before the step that then fails)
    failing_step = {"after create": 1, "after set": 2, "after test": 3, "inside finish, after the write": 3}[
        crash_point
    ]
    for step in steps[:failing_step]:
        step()
    if crash_point.startswith("after"):
        server.kill()
    # Then the step that meets the dead server fails as Vault unavailable (a transient error, retried later)
    with pytest.raises(VaultUnavailable):
        steps[failing_step]()
    assert not server.is_running

    # When the server restarts from its storage and the rotation runs again with a new client
    server.restart()
    vault = root_client(server)
    outcome = rotate_kv_secret(vault, ref, rotation_id, params, hooks=None, on_new_value=on_new_value)

    # Then exactly one new version exists, it is current, and the old versions are destroyed
    assert outcome.changed is True
    metadata = vault.secrets.kv.v2.read_secret_metadata(ref.path, mount_point=KV_MOUNT)["data"]
    assert metadata["current_version"] == 3
    assert sorted(int(v) for v in metadata["versions"]) == [1, 2, 3]
    assert destroyed_versions(vault, ref) == {1, 2}
    current = kv_version(vault, ref.path)
    assert current is not None
    assert fingerprint(current) not in {fingerprint(v) for v in old_values}
    # and the index was only ever handed the new version
    assert set(on_new_value.versions) == {3}
    # and it is verified by reading back, and a replay of the same rotation changes nothing
    assert verify_kv_rotation(vault, ref, rotation_id, params).confirmed is True
    assert rotate_kv_secret(vault, ref, rotation_id, params, hooks=None).changed is False
    assert not [value for value in current.values() if str(value) in outcome.detail]
