"""The ledger's tamper-evident copy, on the template deployed to moto: stream → LedgerArchiveFunction → locked bucket.

The local stack does not poll streams for event source mappings, so the test reads moto's real stream of the
ledger table (dynamodbstreams get_shard_iterator/get_records) and hands the records to the deployed function, as
Lambda's mapping would ({"Records": [...]}, each with its eventSourceARN). moto enforces Object Lock on versions
(COMPLIANCE: a locked version cannot be deleted) and If-None-Match on puts; it does not refuse shortening a
COMPLIANCE retention, which S3 does, so that is not asserted here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from rescind.ledger import DynamoDbLedger, IncidentClosure, IncidentRecord, IncidentStatus, Trigger
from rescind.ledger.archive import RECORDS_PREFIX, TAMPERING_PREFIX
from rescind.models import Action, Plan, VaultTokenRef
from rescind_local.stack import LocalStack, deploy_template_to_moto

ACCESSOR = "CaTti28wsXOQA02COE2ygP2B"
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture
def stack(aws: None) -> Iterator[LocalStack]:
    # The archive function never calls Vault; the settings only need to validate.
    with deploy_template_to_moto(
        parameters={"VaultAddr": "http://127.0.0.1:8200", "VaultAwsAuthRole": "rescind-local"},
        function_environment={"VAULT_AUTH_METHOD": "token", "VAULT_TOKEN": "not-used-by-the-archive"},
    ) as deployed:
        yield deployed


@pytest.fixture
def ledger(stack: LocalStack) -> DynamoDbLedger:
    return DynamoDbLedger(stack.physical_id("LedgerTable"), boto3.client("dynamodb"))


def incident(incident_id: str) -> IncidentRecord:
    action = Action(kind="revoke", target=VaultTokenRef(accessor=ACCESSOR), reason="leaked in a public repo")
    return IncidentRecord(
        incident_id=incident_id,
        trigger=Trigger(source="rescind", detail_type="Secret Leaked", event_id="evt-1", references=(action.target,)),
        plan=Plan.ordered(f"plan-{incident_id}", [action]),
        opened_at=T0,
    )


class LedgerStream:
    """moto's stream of the ledger table, read from where the last read stopped, as Lambda's poller does."""

    def __init__(self, stack: LocalStack) -> None:
        table = boto3.client("dynamodb").describe_table(TableName=stack.physical_id("LedgerTable"))["Table"]
        self.arn: str = table["LatestStreamArn"]
        # botocore 1.44 sends calls naming a stream ARN to <account>.streams-ddb.<region>.amazonaws.com, which
        # moto 5.2.5 does not serve: the regional endpoint it serves is given explicitly.
        self.client = boto3.client(
            "dynamodbstreams", endpoint_url=f"https://streams.dynamodb.{stack.region}.amazonaws.com"
        )
        (shard,) = self.client.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]
        self.iterator: str = self.client.get_shard_iterator(
            StreamArn=self.arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]

    def next_batch(self) -> dict[str, Any]:
        answer = self.client.get_records(ShardIterator=self.iterator)
        self.iterator = answer["NextShardIterator"]
        records = []
        for record in answer["Records"]:
            change = dict(record["dynamodb"])
            if isinstance(change.get("ApproximateCreationDateTime"), datetime):  # boto3 parses it; Lambda sends epoch
                change["ApproximateCreationDateTime"] = change["ApproximateCreationDateTime"].timestamp()
            records.append({**record, "dynamodb": change, "eventSourceARN": self.arn})
        return {"Records": records}


def archived(stack: LocalStack, prefix: str) -> dict[str, dict[str, Any]]:
    s3 = boto3.client("s3")
    bucket = stack.physical_id("LedgerArchiveBucket")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {item["Key"]: json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()) for item in listed}


def test_every_ledger_record_is_archived_once_in_the_locked_bucket(stack: LocalStack, ledger: DynamoDbLedger) -> None:
    stream = LedgerStream(stack)
    ledger.open_incident(incident("manual-0123456789abcdef0123"))
    ledger.close_incident(
        IncidentClosure(incident_id="manual-0123456789abcdef0123", status=IncidentStatus.COMPLETED, closed_at=T0)
    )
    ledger.open_incident(incident("manual-0123456789abcdef0123"))  # a redelivery: refused by the conditional put
    batch = stream.next_batch()
    assert [record["eventName"] for record in batch["Records"]] == ["INSERT", "INSERT"]

    payload, error = stack.invoke("LedgerArchiveFunction", batch)
    assert error is None, payload
    assert payload["archived"] == 2
    assert payload["tampering"] == []

    objects = archived(stack, RECORDS_PREFIX)
    assert len(objects) == 2
    (opened,) = [body for key, body in objects.items() if "A%23INCIDENT" in key]
    assert opened["keys"] == {"pk": "INCIDENT#manual-0123456789abcdef0123", "sk": "A#INCIDENT"}
    assert IncidentRecord.model_validate_json(opened["new_image"]["body"]["S"]) == incident(
        "manual-0123456789abcdef0123"
    )
    assert ACCESSOR in json.dumps(opened)  # a reference, as in the ledger: the accessor, never a token

    # The same batch delivered again (a retry after a timeout) writes nothing twice, and replaces nothing.
    again, error = stack.invoke("LedgerArchiveFunction", batch)
    assert error is None, again
    assert (again["archived"], again["already_archived"]) == (0, 2)


def test_a_modified_or_removed_record_is_archived_as_tampering_and_notified(
    stack: LocalStack, ledger: DynamoDbLedger
) -> None:
    stream = LedgerStream(stack)
    ledger.open_incident(incident("offboard-" + "0" * 40))
    dynamodb = boto3.client("dynamodb")
    table = stack.physical_id("LedgerTable")
    key = {"pk": {"S": "INCIDENT#offboard-" + "0" * 40}, "sk": {"S": "A#INCIDENT"}}
    # What no Rescind code does: rewrite a record, then remove it (an administrator, or a stolen role).
    dynamodb.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET record_type = :forged",
        ExpressionAttributeValues={":forged": {"S": "nothing-happened"}},
    )
    dynamodb.delete_item(TableName=table, Key=key)
    sqs = boto3.client("sqs")
    topic = stack.physical_id("NotificationTopic")
    queue = sqs.create_queue(QueueName="tampering-notices")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    payload, error = stack.invoke("LedgerArchiveFunction", stream.next_batch())

    assert error is None, payload
    assert [item["event"] for item in payload["tampering"]] == ["MODIFY", "REMOVE"]
    assert len(archived(stack, RECORDS_PREFIX)) == 1  # the original, as first written
    evidence = archived(stack, TAMPERING_PREFIX)
    assert sorted(key.split("/")[1] for key in evidence) == ["MODIFY", "REMOVE"]
    (modified,) = [body for body in evidence.values() if body["event_name"] == "MODIFY"]
    assert modified["new_image"]["record_type"] == {"S": "nothing-happened"}
    (message,) = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    notice = json.loads(message["Body"])
    assert notice["Subject"] == "Rescind Ledger: a record was modified or removed"
    assert "MODIFY of pk=INCIDENT#offboard-" in notice["Message"]


def test_an_archived_version_cannot_be_deleted_or_replaced(stack: LocalStack, ledger: DynamoDbLedger) -> None:
    stream = LedgerStream(stack)
    ledger.open_incident(incident("manual-fedcba9876543210fedc"))
    stack.invoke("LedgerArchiveFunction", stream.next_batch())
    s3 = boto3.client("s3")
    bucket = stack.physical_id("LedgerArchiveBucket")
    (key,) = archived(stack, RECORDS_PREFIX)
    version = s3.head_object(Bucket=bucket, Key=key)

    lock = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    assert lock["Rule"]["DefaultRetention"]["Mode"] == "COMPLIANCE"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert version["ObjectLockMode"] == "COMPLIANCE"
    assert version["ObjectLockRetainUntilDate"] > datetime.now(UTC)

    for bypass in (False, True):
        with pytest.raises(ClientError) as refused:
            s3.delete_object(Bucket=bucket, Key=key, VersionId=version["VersionId"], BypassGovernanceRetention=bypass)
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError) as replaced:
        s3.put_object(Bucket=bucket, Key=key, Body=b"{}", IfNoneMatch="*")
    assert replaced.value.response["Error"]["Code"] == "PreconditionFailed"
    assert s3.head_object(Bucket=bucket, Key=key, VersionId=version["VersionId"])["ETag"] == version["ETag"]


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"Records": "not a list"},
        {"Records": [{"eventName": "INSERT"}]},
        {"Records": [{"eventID": "1", "eventName": "TRUNCATE", "dynamodb": {}}]},
        {
            "Records": [
                {
                    "eventID": "1",
                    "eventName": "INSERT",
                    "dynamodb": {"Keys": {"pk": {"S": "x"}, "sk": {"S": "y"}}, "SequenceNumber": "../../etc"},
                }
            ]
        },
    ],
    ids=["empty", "records-not-a-list", "no-change", "unknown-event", "hostile-sequence"],
)
def test_a_malformed_stream_event_is_refused_and_archives_nothing(stack: LocalStack, event: dict[str, Any]) -> None:
    payload, error = stack.invoke("LedgerArchiveFunction", event)

    assert error is not None  # raised: the mapping retries, then reports the batch to its on-failure queue
    assert payload["errorType"] == "InvalidInput", payload
    assert archived(stack, "") == {}
