"""One observability wiring for every handler (rescind.observability), and metrics CloudWatch reads as written:
one name per measured thing, what varies as a dimension."""

from __future__ import annotations

import ast
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.metrics.provider import cold_start

from rescind import observability
from rescind.observability import add_count, logger, observed_handler
from rescind.schedules.runtime import publish_report
from rescind.schedules.types import Change, ChangeStatus, SweepName, SweepReport
from rescind_local.lambdas import LocalLambdaContext
from tests.emf import counted, emf_records

REPO_ROOT = Path(__file__).resolve().parents[2]
HANDLER_FILES = sorted((REPO_ROOT / "functions").glob("*/app.py"))
LAYER_FILES = sorted((REPO_ROOT / "shared" / "rescind").rglob("*.py"))
# Its body is being rewritten on another branch; its two value-built names move to add_count there.


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _called_name(node: ast.expr) -> str:
    if not isinstance(node, ast.Call):
        return ""
    function = node.func
    return function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")


def _calls(tree: ast.AST, *names: str) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call) and _called_name(node) in names]


def _handler_id(path: Path) -> str:
    return path.parent.name


def test_there_are_handlers_to_check() -> None:
    assert len(HANDLER_FILES) >= 17  # an empty glob would make the tests below vacuous


@pytest.mark.parametrize("path", HANDLER_FILES, ids=_handler_id)
def test_the_handler_is_wired_through_the_one_observability_module(path: Path) -> None:
    tree = _tree(path)

    # It builds no logger, tracer or metrics of its own, and takes none from Powertools directly
    assert _calls(tree, "Logger", "Tracer", "Metrics", "EphemeralMetrics", "single_metric") == []
    powertools_names = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aws_lambda_powertools")
        for alias in node.names
    }
    assert not powertools_names & {"Logger", "Tracer", "Metrics", "EphemeralMetrics", "single_metric"}
    # Its entry point is decorated by observed_handler alone (it applies the three Powertools decorators)
    (handler,) = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "lambda_handler"]
    assert [ast.unparse(decorator) for decorator in handler.decorator_list] == ["observed_handler"]
    imported = {
        alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module == "rescind.observability"
        for alias in node.names
    }
    assert "observed_handler" in imported
    # The settings are still checked at import, so a configuration error fails the cold start
    module_calls = {
        _called_name(call)
        for node in tree.body
        if isinstance(node, ast.Expr | ast.Assign)
        for call in ast.walk(node.value)
        if isinstance(call, ast.Call)
    }
    assert "get_settings" in module_calls


def _metric_name_arguments(tree: ast.AST) -> list[ast.expr]:
    names: list[ast.expr] = []
    for call in _calls(tree, "add_count", "MetricPoint"):
        names.append(call.args[0])
    for call in _calls(tree, "add_metric", "single_metric"):
        names.extend(keyword.value for keyword in call.keywords if keyword.arg == "name")
        names.extend(call.args[:1])
    return names


@pytest.mark.parametrize(
    "path",
    [path for path in [*HANDLER_FILES, *LAYER_FILES]],
    ids=lambda path: str(path.relative_to(REPO_ROOT)),
)
def test_no_metric_name_is_built_from_a_value(path: Path) -> None:
    # A name per value (Action_failed, Action_succeeded, ...) is a metric per value; the value is a dimension.
    # A name is written as a literal where it is made (add_count, MetricPoint), and only passed on elsewhere.
    for name in _metric_name_arguments(_tree(path)):
        where = f"{path.relative_to(REPO_ROOT)}:{name.lineno}"
        if isinstance(name, ast.Name | ast.Attribute):
            continue
        assert isinstance(name, ast.Constant), f"{where}: metric name {ast.unparse(name)} is built from a value"
        assert isinstance(name.value, str)
        assert name.value.isidentifier(), f"{where}: {name.value!r}"


# --- what the decorator and add_count write -----------------------------------------------------------------------


@pytest.fixture
def function_environment(monkeypatch: pytest.MonkeyPatch) -> LocalLambdaContext:
    """The Powertools variables template.yaml sets, and the context Lambda passes, for one function."""
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "rescind")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Rescind")
    # This module may have been imported before any function's environment was set, as in the local stack
    monkeypatch.setattr(observability.metrics, "namespace", None)
    return LocalLambdaContext(
        function_name="rescind-ExecuteActionFunction",
        function_version="$LATEST",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:rescind-ExecuteActionFunction",
        memory_limit_in_mb=512,
        aws_request_id="c0ffee00-0000-4000-8000-000000000001",
        log_group_name="/aws/lambda/rescind-ExecuteActionFunction",
        log_stream_name="2026/01/01/[$LATEST]0",
        deadline_monotonic=time.monotonic() + 60,
    )


@observed_handler
def _counting_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    for outcome in event["outcomes"]:
        add_count("ActionOutcome", outcome=outcome, kind="vault_token")
    add_count("RequestRefused", 2)
    logger.info("counting", extra={"outcomes": len(event["outcomes"])})
    if event.get("fail"):
        raise LookupError("the handler's own error")
    return {"outcomes": event["outcomes"]}


def test_a_count_with_dimensions_is_the_emf_record_cloudwatch_expects(
    function_environment: LocalLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a warm function
    cold_start.is_cold_start = False

    # When one invocation counts two outcomes of one metric, and one count without dimensions
    answer = _counting_handler({"outcomes": ["failed", "succeeded"]}, function_environment)

    # Then the handler's answer is untouched, and each outcome is its own record with its own dimension value
    assert answer == {"outcomes": ["failed", "succeeded"]}
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    records = [json.loads(line) for line in lines]
    for record in records:
        record["_aws"]["Timestamp"] = "ms"
    assert records == [
        {
            "_aws": {
                "Timestamp": "ms",
                "CloudWatchMetrics": [
                    {
                        "Namespace": "Rescind",
                        "Dimensions": [["outcome", "kind", "service"]],
                        "Metrics": [{"Name": "ActionOutcome", "Unit": "Count"}],
                    }
                ],
            },
            "outcome": outcome,
            "kind": "vault_token",
            "service": "rescind",
            "ActionOutcome": [1.0],
        }
        for outcome in ("failed", "succeeded")
    ] + [
        {
            "_aws": {
                "Timestamp": "ms",
                "CloudWatchMetrics": [
                    {
                        "Namespace": "Rescind",
                        "Dimensions": [["service"]],
                        "Metrics": [{"Name": "RequestRefused", "Unit": "Count"}],
                    }
                ],
            },
            "service": "rescind",
            "RequestRefused": [2.0],
        }
    ]


def test_the_records_pass_the_emf_rules_and_sum_by_dimension(
    function_environment: LocalLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    cold_start.is_cold_start = False

    _counting_handler({"outcomes": ["failed", "failed", "succeeded"]}, function_environment)

    output = capsys.readouterr().out
    assert len(emf_records(output)) == 4  # each one checked against the format
    assert counted(output, "ActionOutcome", outcome="failed", kind="vault_token") == 2.0
    assert counted(output, "ActionOutcome", outcome="succeeded", kind="vault_token") == 1.0
    assert counted(output, "RequestRefused") == 2.0


def test_a_cold_start_is_counted_once_by_function_name(
    function_environment: LocalLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    cold_start.is_cold_start = True

    _counting_handler({"outcomes": []}, function_environment)
    _counting_handler({"outcomes": []}, function_environment)

    output = capsys.readouterr().out
    assert counted(output, "ColdStart", function_name="rescind-ExecuteActionFunction") == 1.0
    assert counted(output, "RequestRefused") == 4.0


def test_a_handler_error_is_raised_unchanged_and_its_counts_are_still_written(
    function_environment: LocalLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    cold_start.is_cold_start = False

    with pytest.raises(LookupError, match="the handler's own error"):
        _counting_handler({"outcomes": ["failed"], "fail": True}, function_environment)

    output = capsys.readouterr().out
    assert counted(output, "ActionOutcome", outcome="failed", kind="vault_token") == 1.0
    assert counted(output, "RequestRefused") == 2.0


def test_the_log_lines_carry_the_lambda_context_and_never_the_event(
    function_environment: LocalLambdaContext, caplog: pytest.LogCaptureFixture
) -> None:
    cold_start.is_cold_start = False
    secret = "hvs.EXAMPLE-never-logged-0000000000"

    _counting_handler({"outcomes": ["failed"], "token": secret}, function_environment)

    # The handler's line is written as Powertools formats it, with the invocation's context
    (line,) = [record for record in caplog.records if record.getMessage() == "counting"]
    written = json.loads(observability.logger.registered_formatter.format(line))
    assert written["function_name"] == "rescind-ExecuteActionFunction"
    assert written["function_request_id"] == function_environment.aws_request_id
    assert written["outcomes"] == 1
    # and no line holds the event
    for record in caplog.records:
        assert secret not in record.getMessage()
        assert secret not in str(vars(record))


def test_a_sweep_counts_its_changes_by_status_with_the_sweep_as_a_dimension(
    function_environment: LocalLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a sweep run that stopped at its bound: two changes applied, one failed
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    changes = [
        Change(target="vault-ttl:mount:pki", what="shorten_ttl max_ttl", status=ChangeStatus.APPLIED),
        Change(target="vault-ttl:mount:kv", what="shorten_ttl max_ttl", status=ChangeStatus.APPLIED),
        Change(target="vault-ttl:mount:ar", what="shorten_ttl max_ttl", status=ChangeStatus.FAILED),
    ]
    report = SweepReport(
        sweep=SweepName.TTL_CEILINGS,
        run_id="ttl_ceilings-20260101T0000",
        dry_run=False,
        started_at=moment,
        finished_at=moment,
        examined=12,
        changes=tuple(changes),
        complete=False,
    )

    # When its run is published
    publish_report(report)

    # Then one metric per measured thing, the sweep and the status as dimensions, each status counted (zeros too)
    output = capsys.readouterr().out
    assert counted(output, "SweepChanges", sweep="ttl_ceilings", status="applied") == 2.0
    assert counted(output, "SweepChanges", sweep="ttl_ceilings", status="failed") == 1.0
    assert len([record for record in emf_records(output) if "SweepChanges" in record]) == len(ChangeStatus)
    assert counted(output, "SweepExamined", sweep="ttl_ceilings") == 12.0
    assert counted(output, "SweepIncomplete", sweep="ttl_ceilings") == 1.0
