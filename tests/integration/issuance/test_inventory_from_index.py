"""The inventory report with the issuance index: per workload what it holds, who issued it, its age and TTL, and
which credentials have no owner, from the index.

Given a real OpenBao whose audit device logs references in the clear, a workload token that made child tokens (no
metadata of their own), a certificate with its lease and a secret-id, the audit lines indexed through the
IndexAuditLog handler, and the index back-filled,
When the inventory report is built with the index,
Then each of the workload's credentials is listed under it with its issuer (the parent token's accessor for what the
token asked for), age and TTL, the lease included; the children are owned (the live scan alone finds no owner for
them); a lease the index files under no workload is listed with no owner; and the Markdown has the section.
"""

from __future__ import annotations

import boto3
import hvac
import pytest

from rescind.discovery import DiscoveryScope
from rescind.issuance.backfill import backfill_index
from rescind.issuance.reading import IssuanceTableReader
from rescind.issuance.state import DynamoDbIndexState
from rescind.models.results import utc_now
from rescind.schedules.inventory_report import build_inventory_report, render_markdown
from rescind.schedules.policy import SchedulePolicy
from rescind_local import LocalOpenBao
from tests.integration.issuance.test_audit_index import (
    TABLE,
    WORKLOAD,
    audit_lines,
    bao,  # noqa: F401  (the module's OpenBao, hmac_accessor=false)
    create_table,
    invoke,
    issue_estate,
    subscription_event,
)

SCOPE = DiscoveryScope(pki_mounts=("pki",), approle_mounts=("approle",), kv_mounts=())
POLICY = SchedulePolicy(vault_requests_per_second=1000)


def test_the_report_lists_each_workloads_holdings_with_issuer_age_and_ttl_from_the_index(
    bao: LocalOpenBao,  # noqa: F811
    aws: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vault = hvac.Client(url=bao.addr, token=bao.root_token, timeout=10)
    start = bao.audit_log.stat().st_size
    issued = issue_estate(vault, bao.addr)
    create_table()
    invoke(subscription_event(audit_lines(bao.audit_log, start)), monkeypatch)
    client = boto3.client("dynamodb", region_name="us-east-1")
    reader = IssuanceTableReader(TABLE, client)
    # A lease no workload asked for, on a mount the back-fill walks: the index files it as unattributed
    orphan_lease = vault.write("pki/issue/web", common_name="nobody.example", ttl="1h")["lease_id"]
    scope = DiscoveryScope(**{**SCOPE.__dict__, "lease_mounts": ("pki",)})
    backfill_index(vault, reader, DynamoDbIndexState(TABLE, client), scope, now=utc_now, requests_per_second=10_000)

    without = build_inventory_report(policy=POLICY, vault=vault, aws=None, scope=scope, inventory=None, now=utc_now())
    report = build_inventory_report(
        policy=POLICY, vault=vault, aws=None, scope=scope, inventory=None, now=utc_now(), issuance=reader
    )

    (holding,) = [holding for holding in report.holdings if holding.workload_id == WORKLOAD]
    held = {credential.target: credential for credential in holding.credentials}
    for name in ("token", "child", "cert", "lease", "secret_id"):
        assert issued.refs[name] in held, name
    assert issued.refs["revoked_child"] not in held
    parent = issued.refs["token"].rsplit(":", 1)[1]
    assert held[issued.refs["child"]].issued_by == f"token accessor {parent}"
    assert held[issued.refs["lease"]].issued_by == f"token accessor {parent}"
    assert held[issued.refs["child"]].ttl_seconds == 1800
    assert held[issued.refs["child"]].source == "audit log"
    assert 0 <= held[issued.refs["cert"]].age_days < 1
    # The child token carries no metadata: the live scan alone finds no owner, the index does
    assert issued.refs["child"] in {finding.target for finding in without.no_owner}
    assert issued.refs["child"] not in {finding.target for finding in report.no_owner}
    no_owner = {finding.target: finding for finding in report.no_owner}
    assert f"vault-lease:{orphan_lease}" in no_owner
    assert "unattributed" in no_owner[f"vault-lease:{orphan_lease}"].detail
    assert f"issuance index {TABLE}" in report.index
    markdown = render_markdown(report)
    assert "## What each workload holds (from the issuance index)" in markdown
    assert f"### `{WORKLOAD}`" in markdown
    assert without.holdings == ()
    assert without.index == "no issuance index"
