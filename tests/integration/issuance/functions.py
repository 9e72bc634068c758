"""Invoking one function's handler in process, as Lambda would, with the environment the test gives it."""

from __future__ import annotations

import time
from typing import Any

import pytest

from rescind_local.lambdas import LocalLambdaContext, load_handler, reset_rescind_caches
from tests.conftest import REPO_ROOT


def invoke_function(
    folder: str, event: dict[str, Any], environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """`functions/<folder>/app.lambda_handler(event)` under `environment`, its cached clients and settings reset."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    reset_rescind_caches()
    handler = load_handler(REPO_ROOT / "functions" / folder, "app.lambda_handler")
    name = f"rescind-{folder.replace('_', '-')}"
    context = LocalLambdaContext(
        function_name=name,
        function_version="$LATEST",
        invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
        memory_limit_in_mb=256,
        aws_request_id="c0ffee00-0000-4000-8000-000000000017",
        log_group_name=f"/aws/lambda/{name}",
        log_stream_name="2026/01/01/[$LATEST]0",
        deadline_monotonic=time.monotonic() + 60,
    )
    result: dict[str, Any] = handler(event, context)
    return result
