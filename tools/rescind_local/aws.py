"""moto as the local AWS, with Step Functions executing the real ASL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from unittest import mock

from moto import mock_aws

LOCAL_REGION = "us-east-1"
LOCAL_ACCOUNT_ID = "123456789012"  # moto's default account

_FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": LOCAL_REGION,
    "AWS_REGION": LOCAL_REGION,
}


@contextmanager
def local_aws() -> Iterator[None]:
    """Every boto3 call inside goes to moto. Real credentials in the environment are hidden first. moto's
    TransactWriteItems keeps a copy of the items it names, not of whole tables, to roll back with
    (rescind_local.dynamodb_transactions), its Query reads
    one partition (rescind_local.dynamodb_queries), and its Step Functions parses a definition once, not once per
    execution, each JSONPath once, not at each use, and keeps the SDK client of each service integration rather than
    building one per task, and starts a Map's workers only for its items (rescind_local.asl_programs)."""
    from rescind_local.asl_programs import (
        idle_worker_patches,
        json_path_cache_patches,
        program_cache_patches,
        sdk_client_cache_patches,
    )
    from rescind_local.dynamodb_queries import query_patches
    from rescind_local.dynamodb_transactions import transaction_patches

    hidden = {name: "" for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE") if name in os.environ}
    with (
        mock.patch.dict(os.environ, {**_FAKE_CREDENTIALS}),
        mock_aws(config={"stepfunctions": {"execute_state_machine": True}}),
        ExitStack() as patches,
    ):
        for patch in (
            *transaction_patches(),
            *query_patches(),
            *program_cache_patches(),
            *json_path_cache_patches(),
            *sdk_client_cache_patches(),
            *idle_worker_patches(),
        ):
            patches.enter_context(patch)
        for name in hidden:
            os.environ.pop(name, None)
        yield
