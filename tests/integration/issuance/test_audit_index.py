"""The issuance index fed by a real OpenBao's file audit device, through the CloudWatch Logs envelope, into the
IndexAuditLog handler with moto DynamoDB.

Given an OpenBao whose audit device has hmac_accessor=false, and mounts tuned so references are logged in the clear,
When tokens, a child token, an AppRole secret-id and a PKI certificate (with its lease) are issued, one child token
revoked, and the audit lines handed to the handler as a subscription filter delivers them,
Then the index holds each issuance under the workload, the child under its parent, the revoked one as revoked, and
no plain secret value anywhere in the table.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import hvac
import pytest

from rescind.issuance import parse_audit_line
from rescind.issuance.audit import LOG_RAW_REFUSAL
from rescind.issuance.dynamodb import DynamoDbIssuanceIndex
from rescind.models import CredentialKind
from rescind_local import LocalOpenBao, audit_subscription
from tests.conftest import load_event
from tests.integration.issuance.functions import invoke_function

WORKLOAD = "spiffe://prod.example/ns/billing/sa/api"
TABLE = "rescind-issuance-test"
ISSUER_POLICY = """
path "auth/token/create" { capabilities = ["update"] }
path "pki/issue/web" { capabilities = ["update"] }
path "auth/approle/role/api/secret-id" { capabilities = ["update"] }
"""


@pytest.fixture(scope="module")
def bao() -> Iterator[LocalOpenBao]:
    with LocalOpenBao(audit_options={"hmac_accessor": "false"}) as server:
        yield server


def create_table(name: str = TABLE) -> DynamoDbIssuanceIndex:
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(
        TableName=name,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return DynamoDbIssuanceIndex(name, client)


def subscription_event(lines: list[str], log_group: str = "/vault/audit") -> dict[str, Any]:
    """The CloudWatch Logs subscription envelope (events/cloudwatch_logs_vault_audit.md), at a fixed time."""
    return audit_subscription.subscription_event(lines, log_group, timestamp_ms=1796428633000)


def invoke(event: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    environment = {
        "LEDGER_TABLE_NAME": "rescind-ledger",
        "VAULT_ADDR": "http://127.0.0.1:8200",
        "VAULT_AUTH_METHOD": "token",
        "VAULT_TOKEN": "unused-by-the-indexer",
        "ISSUANCE_TABLE_NAME": TABLE,
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_METRICS_NAMESPACE": "Rescind",
        "POWERTOOLS_SERVICE_NAME": "rescind",
    }
    return invoke_function("index_audit_log", event, environment, monkeypatch)


def audit_lines(log: Path, since: int = 0) -> list[str]:
    with log.open("rb") as handle:
        handle.seek(since)
        return [line.decode() for line in handle.read().splitlines() if line.strip()]


class Issued:
    def __init__(self) -> None:
        self.values: list[str] = []  # every secret value issued: none may reach the table
        self.refs: dict[str, str] = {}


def issue_estate(vault: hvac.Client, addr: str) -> Issued:
    issued = Issued()
    vault.sys.create_or_update_policy("issuer", ISSUER_POLICY)
    vault.sys.enable_auth_method("approle")
    vault.sys.tune_auth_method("approle", audit_non_hmac_response_keys=["secret_id_accessor"])
    vault.sys.tune_auth_method("token", audit_non_hmac_request_keys=["accessor"])
    vault.write("auth/approle/role/api", token_policies="default", secret_id_ttl="1h")
    vault.sys.enable_secrets_engine("pki", path="pki", config={"audit_non_hmac_response_keys": ["serial_number"]})
    vault.sys.tune_mount_configuration("pki", max_lease_ttl="87600h", audit_non_hmac_response_keys=["serial_number"])
    vault.write("pki/root/generate/internal", common_name="example", ttl="87600h")
    vault.write("pki/roles/web", allow_any_name=True, generate_lease=True, max_ttl="72h", allowed_uri_sans="spiffe://*")

    token = vault.auth.token.create(policies=["issuer"], meta={"spiffe_id": WORKLOAD}, ttl="1h")["auth"]
    issued.values.append(token["client_token"])
    issued.refs["token"] = f"vault-token:accessor:{token['accessor']}"
    workload = hvac.Client(url=addr, token=token["client_token"])
    for name in ("child", "revoked_child"):
        child = workload.auth.token.create(policies=["default"], ttl="30m")["auth"]
        issued.values.append(child["client_token"])
        issued.refs[name] = f"vault-token:accessor:{child['accessor']}"
    cert = workload.write("pki/issue/web", common_name="api.example", uri_sans=WORKLOAD, ttl="1h")
    issued.values.append(cert["data"]["private_key"])
    issued.refs["lease"] = f"vault-lease:{cert['lease_id']}"
    issued.refs["cert"] = f"pki:pki:{cert['data']['serial_number']}"
    # Asked for by the workload's own token: the audit log names the requester, not the secret-id's metadata.
    secret_id = workload.write("auth/approle/role/api/secret-id", metadata=json.dumps({"spiffe_id": WORKLOAD}))["data"]
    issued.values.append(secret_id["secret_id"])
    issued.refs["secret_id"] = f"approle:approle:api:{secret_id['secret_id_accessor']}"
    vault.write("auth/token/revoke-accessor", accessor=issued.refs["revoked_child"].rsplit(":", 1)[1])
    return issued


def test_the_index_holds_what_each_workload_was_issued_and_no_value(
    bao: LocalOpenBao, aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = hvac.Client(url=bao.addr, token=bao.root_token, timeout=10)
    start = bao.audit_log.stat().st_size
    issued = issue_estate(vault, bao.addr)
    index = create_table()

    report = invoke(subscription_event(audit_lines(bao.audit_log, start)), monkeypatch)

    assert report["refused"] == 0
    assert report["revocations_matched"] == 1
    by_ref = {record.reference: record for record in index.by_workload(WORKLOAD)}
    for name in ("token", "cert", "lease", "secret_id"):
        assert issued.refs[name] in by_ref, name
    assert by_ref[issued.refs["secret_id"]].kind is CredentialKind.APPROLE_SECRET_ID
    assert all(record.unactionable is None for record in by_ref.values())
    token_accessor = issued.refs["token"].rsplit(":", 1)[1]
    children = {record.reference: record for record in index.by_parent(token_accessor)}
    assert {issued.refs["child"], issued.refs["revoked_child"], issued.refs["lease"]} <= set(children)
    assert children[issued.refs["revoked_child"]].revoked_at is not None
    assert children[issued.refs["child"]].revoked_at is None
    # The token's value, hashed by the device, leads back to its issuance.
    token_hmac = vault.write("sys/audit-hash/to-file", input=issued.values[0])["data"]["hash"]
    assert [record.reference for record in index.by_hmac(token_hmac)] == [issued.refs["token"]]

    scanned = json.dumps(boto3.client("dynamodb", region_name="us-east-1").scan(TableName=TABLE)["Items"])
    for value in issued.values:
        assert value not in scanned

    again = invoke(subscription_event(audit_lines(bao.audit_log, start)), monkeypatch)
    assert again["issuances"] == 0  # idempotent: nothing new, the revocation stands
    reread = {record.reference: record for record in index.by_parent(token_accessor)}
    assert reread[issued.refs["revoked_child"]].revoked_at == children[issued.refs["revoked_child"]].revoked_at


def test_with_hmac_accessor_left_on_a_token_record_keeps_only_the_hmac_and_says_so(
    openbao: LocalOpenBao, vault: hvac.Client
) -> None:
    start = openbao.audit_log.stat().st_size
    token = vault.auth.token.create(policies=["default"], meta={"spiffe_id": WORKLOAD}, ttl="5m")["auth"]
    results = [parse_audit_line(line) for line in audit_lines(openbao.audit_log, start)]
    records = [record for result in results for record in result.issuances if record.workload_id == WORKLOAD]

    assert len(records) == 1
    assert records[0].reference is None
    assert records[0].credential_ref() is None
    assert records[0].reference_hmac == vault.write("sys/audit-hash/to-file", input=token["accessor"])["data"]["hash"]
    assert "hmac_accessor" in (records[0].unactionable or "")
    assert token["client_token"] not in records[0].model_dump_json()


def test_a_line_with_a_secret_in_the_clear_is_refused_and_nothing_of_it_kept() -> None:
    event = load_event("cloudwatch_logs_vault_audit.json")
    data = json.loads(gzip.decompress(base64.b64decode(event["awslogs"]["data"])))
    line = json.loads(data["logEvents"][0]["message"])
    assert parse_audit_line(json.dumps(line)).issuances  # the real line indexes
    line["response"]["auth"]["client_token"] = "s.AbCdEfGhIjKlMnOpQrStUvWx"  # as log_raw=true writes it

    result = parse_audit_line(json.dumps(line))

    assert result.refused == LOG_RAW_REFUSAL
    assert not result.issuances
    assert "s.AbCdEf" not in result.model_dump_json()


def test_the_sample_event_decodes_to_a_token_and_a_certificate_of_its_workload() -> None:
    event = load_event("cloudwatch_logs_vault_audit.json")
    data = json.loads(gzip.decompress(base64.b64decode(event["awslogs"]["data"])))
    kinds = {
        record.kind
        for log_event in data["logEvents"]
        for record in parse_audit_line(log_event["message"]).issuances
        if record.workload_id == "spiffe://ex/app"
    }
    assert {CredentialKind.VAULT_TOKEN, CredentialKind.VAULT_LEASE} <= kinds
