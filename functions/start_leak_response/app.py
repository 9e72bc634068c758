"""EventBridge target: a secret leaked (GitHub, AWS Health, GuardDuty, or the generic event); kill the located
credential first when the guard passes, then start its response.

Invoked asynchronously by the leak rules. Every event that is a leak leaves an incident: a response per
credential it names, and one record for what resolves to nothing or asks for no action (a sample finding).
A refused event is returned rather than raised: the generic event may carry the leaked value, and a raised
event would be kept whole in the on-failure queue. One from AWS or GitHub (which never carries a value) is
also recorded as a REJECTED incident and notified; the generic one is logged by its reason and counted.
What is not a leak (another Health code or finding) is logged and counted. Transient failures are raised,
so Lambda retries them. The event body is never logged.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from rescind.exceptions import TransientError
from rescind.leaks.runtime import get_dedup_window, get_kill_first, get_leak_locator, get_leak_state_machine_arn
from rescind.leaks.start import respond_to_leak_event
from rescind.leaks.triggers import GENERIC_SOURCE, LeakAlertRejected, LeakRejectionReason, parse_leak_event
from rescind.observability import add_count, logger, observed_handler
from rescind.offboarding.runtime import get_notifier, get_sfn_client
from rescind.runtime import get_ledger, get_settings

get_settings()  # fail at cold start, not on the first alert, when configuration is wrong
get_leak_state_machine_arn()

# Refusals that are not a judgement on the event's source: it is simply not a leak.
_IGNORED = frozenset({LeakRejectionReason.NOT_A_LEAK, LeakRejectionReason.NOT_A_TRIGGER})


@observed_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        leak_event = parse_leak_event(event)
    except LeakAlertRejected as error:
        logger.warning("leak event refused", extra={"rejection": str(error.reason), "problem": str(error)})
        add_count("LeakRejected", reason=str(error.reason))
        refusal: dict[str, Any] = {"status": "rejected", "reason": str(error.reason), "problem": str(error)}
        if error.reason in _IGNORED:
            return {**refusal, "status": "ignored"}
        if isinstance(event, dict) and event.get("source") != GENERIC_SOURCE:
            from rescind.ledger.closing import record_rejected_event  # the rejection branch alone needs it

            refusal["incident_id"] = record_rejected_event(
                event, flow="leak_response", problem=str(error), ledger=get_ledger(), notify=get_notifier()
            )
        return refusal
    fields = {"source": leak_event.source, "event_id": leak_event.event_id}
    try:
        answered = respond_to_leak_event(
            leak_event,
            locator=get_leak_locator(),
            ledger=get_ledger(),
            sfn_client=get_sfn_client(),
            state_machine_arn=get_leak_state_machine_arn(),
            notify=get_notifier(),
            window=get_dedup_window(),
            kill=get_kill_first(),
        )
    except TransientError as error:
        logger.warning("leak response start failed, to be retried", extra={**fields, "error": str(error)})
        add_count("LeakStartTransientError")
        raise
    for result in (*answered.responses, *([answered.recorded] if answered.recorded else [])):
        logger.info(
            "leak response start",
            extra={
                **fields,
                "secret_type": result.secret_type,
                "status": str(result.status),
                "incident_id": result.incident_id,
                "credentials": list(result.credentials),
                "execution_arn": result.execution_arn,
                "killed_first": result.kill.killed if result.kill else False,
                "kill_first": [(step.target, str(step.outcome), step.acted_on) for step in result.kill.steps]
                if result.kill
                else [],
            },
        )
        add_count("LeakResponseStarted", status=str(result.status))
    return {"status": "accepted", **answered.model_dump(mode="json")}
