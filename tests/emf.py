"""Reading the metrics the handlers write to stdout in CloudWatch's embedded metric format (EMF), as CloudWatch
does: each JSON line with an `_aws` member is a record, and a record that breaks the format fails the test."""

from __future__ import annotations

import json
from typing import Any


def emf_records(output: str) -> list[dict[str, Any]]:
    """Every EMF record in `output`, each checked against the rules CloudWatch applies when it extracts metrics."""
    records = []
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "_aws" in record:
            assert_valid_emf(record)
            records.append(record)
    return records


def assert_valid_emf(record: dict[str, Any]) -> None:
    """The EMF specification: a millisecond timestamp, one namespace per directive, every dimension a top-level
    string (at most 30 in a set), every metric a top-level number or list of numbers."""
    metadata = record["_aws"]
    assert isinstance(metadata["Timestamp"], int)
    assert metadata["Timestamp"] > 1_600_000_000_000  # milliseconds, not seconds
    for directive in metadata["CloudWatchMetrics"]:
        assert isinstance(directive["Namespace"], str)
        assert directive["Namespace"]
        for dimension_set in directive["Dimensions"]:
            assert 0 < len(dimension_set) <= 30
            for dimension in dimension_set:
                assert isinstance(record[dimension], str), f"dimension {dimension!r} is not a top-level string"
                assert record[dimension]
        for metric in directive["Metrics"]:
            value = record[metric["Name"]]
            values = value if isinstance(value, list) else [value]
            assert values
            assert all(isinstance(item, int | float) for item in values), f"metric {metric['Name']!r}: {value!r}"


def counted(output: str, name: str, **dimensions: str) -> float:
    """The total of metric `name` over the records whose dimensions are exactly `dimensions` plus `service`."""
    total = 0.0
    for record in emf_records(output):
        for directive in record["_aws"]["CloudWatchMetrics"]:
            names = {metric["Name"] for metric in directive["Metrics"]}
            dimension_sets = [set(dimension_set) for dimension_set in directive["Dimensions"]]
            if name not in names or {*dimensions, "service"} not in dimension_sets:
                continue
            if all(record[key] == value for key, value in dimensions.items()):
                value = record[name]
                total += sum(value) if isinstance(value, list) else value
    return total
