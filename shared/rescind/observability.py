"""One wiring for every Lambda handler: Powertools' logger, tracer and metrics, and the decorator that applies them.

A handler imports `logger`, `tracer`, `add_count` and `observed_handler` from here and builds none of its own. The
service name and the metrics namespace are the function's POWERTOOLS_SERVICE_NAME and POWERTOOLS_METRICS_NAMESPACE
(template.yaml's Globals).

Metrics: one name per measured thing; what varies (an outcome, a reason, a kind) is a dimension, never part of
the name. CloudWatch's embedded metric format (EMF) gives every metric of one record the same dimensions, so a
count with dimensions is written at once as a record of its own (Powertools' `single_metric`), and a count without
them joins the handler's record, written when the handler returns or raises.
"""

from __future__ import annotations

import functools
import gc
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import wrapt
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

import rescind
from rescind.runtime import TRACED_AT_IMPORT, TRACED_LIBRARIES

SERVICE_VARIABLE = "POWERTOOLS_SERVICE_NAME"
NAMESPACE_VARIABLE = "POWERTOOLS_METRICS_NAMESPACE"

logger = Logger()
tracer = Tracer(patch_modules=TRACED_AT_IMPORT)
metrics = Metrics()


def _patch_when_imported(library: str) -> None:
    # wrapt (aws_xray_sdk's own dependency) runs the hook right after the library's first import, or at once if it
    # is already imported: the patch is in place before any call through it.
    wrapt.when_imported(library)(lambda _module: tracer.patch((library,)))


for _library in TRACED_LIBRARIES:
    if _library not in TRACED_AT_IMPORT:
        _patch_when_imported(_library)

# A handler whose counts all carry dimensions leaves the batched record empty, and Powertools warns about it at
# every flush; here that is the expected case (pyproject.toml filters it for the tests too).
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

HandlerT = TypeVar("HandlerT", bound=Callable[..., Any])


@dataclass(frozen=True)
class MetricPoint:
    """One value of a measured thing: its name, the count, and the dimensions that say which one it is."""

    name: str
    value: float
    dimensions: Mapping[str, str] = field(default_factory=dict)


def add_count(name: str, value: float = 1, /, **dimensions: str) -> None:
    """Count `value` of `name` (unit Count). With dimensions it is its own EMF record, written now; without, it
    joins the handler's record (dimension `service` only)."""
    if not dimensions:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        return
    # single_metric reads the namespace and the `service` dimension from the environment, as `metrics` does.
    with single_metric(name=name, unit=MetricUnit.Count, value=value) as metric:
        for dimension, dimension_value in dimensions.items():
            metric.add_dimension(name=dimension, value=dimension_value)


def _resume_collector() -> None:
    if rescind.PAUSED_COLLECTOR_AT_IMPORT and not gc.isenabled():
        gc.freeze()  # what the import loaded lives as long as the process: later collections skip it
        gc.enable()


def _follow_function_environment() -> None:
    # The local stack runs every function in one process, and this module may be imported before a function's
    # environment is in place; the shared record takes its namespace and service from the function that runs.
    metrics.namespace = os.environ.get(NAMESPACE_VARIABLE)
    metrics.service = os.environ.get(SERVICE_VARIABLE)


def observed_handler(handler: HandlerT) -> HandlerT:
    """A Lambda handler with the logger's context (the event is never logged), an X-Ray segment (the response is
    never captured: it can name credentials) and its metrics flushed, plus a ColdStart count on its first run.
    Applied as the handler module's import ends: the collector paused for the import (rescind/__init__.py) resumes."""
    _resume_collector()
    observed = logger.inject_lambda_context(log_event=False)(
        tracer.capture_lambda_handler(capture_response=False)(
            metrics.log_metrics(capture_cold_start_metric=True)(handler),
        ),
    )

    @functools.wraps(handler)
    def run(event: Any, context: Any) -> Any:
        _follow_function_environment()
        return observed(event, context)

    return cast(HandlerT, run)
