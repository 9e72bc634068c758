"""The incident report: every format, every attempt in time order, values escaped, and an unfinished run."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from pydantic import ValidationError

from rescind.ledger import (
    ActionAttemptRecord,
    CredentialState,
    IncidentClosure,
    IncidentRecord,
    IncidentStatus,
    IncidentView,
    Trigger,
)
from rescind.ledger.closing import CloseRequest, RunOutcome, close_incident, describe_alive
from rescind.ledger.report import NOT_FINISHED, ExecutionSummary, render_report
from rescind.models import (
    Action,
    ActionKind,
    ActionParams,
    AppRoleSecretIdRef,
    Evidence,
    IamAccessKeyRef,
    KvSecretRef,
    Outcome,
    PkiCertificateRef,
    Plan,
    TtlTargetType,
    VaultEntityRef,
    VaultTokenRef,
    VaultTtlTargetRef,
)
from rescind.models.refs import format_ref
from tests.records import attempt_record

pytestmark = pytest.mark.unit

T0 = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
INCIDENT = "inc-20250314-billing"
HOSTILE_REASON = "leak in PR <script>alert('x')</script> | see #42"
HOSTILE_REQUESTER = "arn:aws:sts::123456789012:assumed-role/Responder/alice|<b>bob</b>"
HOSTILE_OBSERVED = "lookup-accessor: 400 <img src=x onerror=alert(1)> | invalid accessor"
BIDI_DETAIL = "revoked \u202etxt.exe"

ENTITY = VaultEntityRef(entity_id="0c1b2f9e-1111-2222-3333-444455556666")
TOKEN = VaultTokenRef(accessor="CaTti28wsXOQA02COE2ygP2B")
CERT = PkiCertificateRef(mount="pki_int", serial="74:fe:3b:fb")
SECRET_ID = AppRoleSecretIdRef(mount="approle", role_name="billing", accessor="9d2c1f00-aaaa-bbbb-cccc-ddddeeeeffff")
KEY = IamAccessKeyRef(account_id="123456789012", user_name="billing-ci", access_key_id="AKIA" + "Q" * 16)
KV = KvSecretRef(mount="secret", path="apps/billing/db")
TTL = VaultTtlTargetRef(target_type=TtlTargetType.PKI_ROLE, mount="pki_int", role_name="billing")


def _action(kind: ActionKind, target: object, **params: object) -> Action:
    return Action.model_validate(
        {"kind": kind, "target": target, "reason": "workload terminated", "params": ActionParams(**params)}
    )


def _attempt(
    action: Action,
    attempt_id: str,
    *,
    start_s: float,
    outcome: Outcome,
    evidence: tuple[Evidence, ...],
    detail: str = "",
    error_type: str | None = None,
) -> ActionAttemptRecord:
    started = T0 + timedelta(seconds=start_s)
    return attempt_record(
        INCIDENT,
        attempt_id,
        action,
        outcome,
        evidence=evidence,
        started_at=started,
        took_ms=180,
        detail=detail,
        error_type=error_type,
        act_ms=120.25,
        verify_ms=55.5,
    )


def sample_view(*, closed: bool = True) -> IncidentView:
    """An offboarding with a retry, a failure, an attempt without evidence, hostile text, and one action never run."""
    actions = [
        _action(ActionKind.DISABLE, ENTITY),
        _action(ActionKind.REVOKE, TOKEN),
        _action(ActionKind.REVOKE, CERT),
        _action(ActionKind.REVOKE, SECRET_ID),
        _action(ActionKind.DISABLE, KEY),
        _action(ActionKind.ROTATE, KV, run_id=INCIDENT),
        _action(ActionKind.SHORTEN_TTL, TTL, ttl_seconds=300),
    ]
    plan = Plan.ordered(f"plan-{INCIDENT}", actions)
    by_target = {action.target.key: action for action in plan.actions}
    trigger = Trigger(
        source="rescind.cli",
        detail_type="Manual Revocation Requested",
        event_id="5f1e2d3c-0000-4000-8000-000000000001",
        workload_id="spiffe://prod.example/ns/billing/sa/api",
        references=(TOKEN, CERT),
        requested_by=HOSTILE_REQUESTER,
        reason=HOSTILE_REASON,
    )

    def confirmed(check: str, observed: str) -> tuple[Evidence, ...]:
        return (Evidence(check=check, observed=observed, confirmed=True),)

    # Deliberately out of time order: the report sorts by start time.
    attempts = (
        _attempt(
            by_target[CERT.key],
            "exec-1:revoke-cert:0",
            start_s=4.0,
            outcome=Outcome.FAILED,
            evidence=(Evidence(check="serial in CRL", observed="serial absent from the parsed CRL", confirmed=False),),
            detail="certificate still valid after revoke",
            error_type="CredentialStillAlive",
        ),
        _attempt(
            by_target[ENTITY.key],
            "exec-1:disable-entity:0",
            start_s=0.0,
            outcome=Outcome.SUCCEEDED,
            evidence=confirmed("entity read", "disabled=true"),
        ),
        _attempt(
            by_target[TOKEN.key],
            "exec-1:revoke-token:1",
            start_s=3.0,
            outcome=Outcome.SUCCEEDED,
            evidence=confirmed("lookup-accessor", HOSTILE_OBSERVED),
            detail=BIDI_DETAIL,
        ),
        _attempt(
            by_target[TOKEN.key],
            "exec-1:revoke-token:0",
            start_s=1.0,
            outcome=Outcome.FAILED,
            evidence=(),
            detail="Vault answered 503",
            error_type="VaultUnavailable",
        ),
        _attempt(
            by_target[KV.key],
            "exec-1:rotate-kv:0",
            start_s=2.0,
            outcome=Outcome.SUCCEEDED,
            evidence=(
                Evidence(check="current version", observed="version 4 is current", confirmed=True),
                Evidence(check="old versions", observed="versions 1-3 destroyed", confirmed=True),
            ),
        ),
        _attempt(
            by_target[SECRET_ID.key],
            "exec-1:revoke-secret-id:0",
            start_s=5.0,
            outcome=Outcome.ALREADY_ABSENT,
            evidence=confirmed("secret-id accessor lookup", "accessor not found"),
            detail="already absent",
        ),
        _attempt(
            by_target[KEY.key],
            "exec-1:disable-key:0",
            start_s=0.5,
            outcome=Outcome.SUCCEEDED,
            evidence=confirmed("key status", "Inactive"),
        ),
    )
    closure = IncidentClosure(
        incident_id=INCIDENT,
        status=IncidentStatus.PARTIAL,
        still_alive=(CERT,),
        closed_at=T0 + timedelta(seconds=9),
        summary="incident inc-20250314-billing (manual) for billing: partial; still alive: 1",
    )
    return IncidentView(
        incident=IncidentRecord(incident_id=INCIDENT, trigger=trigger, plan=plan, opened_at=T0),
        attempts=attempts,
        closure=closure if closed else None,
    )


EXECUTION = ExecutionSummary(
    execution_arn="arn:aws:states:us-east-1:123456789012:execution:rescind-manual:inc-20250314-billing",
    status="FAILED",
    started_at=T0 - timedelta(seconds=30),
    stopped_at=T0 + timedelta(seconds=10),
    approved_by="arn:aws:sts::123456789012:assumed-role/Approver/carol",
)


def _attempts_in_time_order(view: IncidentView) -> list[ActionAttemptRecord]:
    return sorted(view.attempts, key=lambda attempt: attempt.result.started_at)


# --- Markdown ------------------------------------------------------------------------------------


def _markdown_cells(line: str) -> list[str]:
    # Split a table row on unescaped pipes only.
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def _markdown_tables(text: str) -> list[list[list[str]]]:
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(_markdown_cells(line))
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def test_markdown_lists_every_attempt_in_time_order_with_its_timings() -> None:
    view = sample_view()
    text = render_report(view, fmt="md", execution=EXECUTION)
    timeline = next(table for table in _markdown_tables(text) if table[0][:2] == ["#", "Started (UTC)"])
    rows = timeline[2:]
    expected = _attempts_in_time_order(view)
    assert len(rows) == len(view.attempts) == 7
    for row, attempt in zip(rows, expected, strict=True):
        assert row[3] == f"`{format_ref(attempt.result.target)}`"
        assert row[4] == attempt.result.outcome
        assert row[5:8] == ["120.2", "55.5", "180.0"]
    assert "VaultUnavailable: Vault answered 503" in text


def test_markdown_tables_are_well_formed_and_escape_pipes_and_markup() -> None:
    text = render_report(sample_view(), fmt="md", execution=EXECUTION)
    for table in _markdown_tables(text):
        # every row has as many cells as the header: an unescaped '|' in a value would add one
        assert {len(row) for row in table} == {len(table[0])}
    # no '<' reaches the text unescaped, so no value can open a tag
    assert re.search(r"(?<!\\)<", text) is None
    assert "\\<script\\>" in text
    assert "\\| see #42" in text
    assert "alice\\|\\<b\\>bob\\</b\\>" in text


def test_markdown_has_the_trigger_plan_counts_approval_and_still_alive() -> None:
    text = render_report(sample_view(), fmt="md", execution=EXECUTION)
    for heading in (
        "# Rescind incident report: inc-20250314-billing",
        "## Trigger",
        "## Plan",
        "## Timeline",
        "## Execution and approval",
        "## Still alive",
        "## Final status",
    ):
        assert heading in text
    assert "`rescind.cli`" in text
    assert "Manual Revocation Requested" in text
    assert "`5f1e2d3c-0000-4000-8000-000000000001`" in text
    assert "spiffe://prod.example/ns/billing/sa/api" in text
    assert "| `vault_token` | 1 |" in text
    assert "| `pki_certificate` | 1 |" in text
    assert "approved by arn:aws:sts::123456789012:assumed-role/Approver/carol" in text
    assert f"`{format_ref(CERT)}`" in text.split("## Still alive")[1]
    assert "**Status: partial**" in text
    # the shorten_ttl action was planned and never attempted
    assert f"`{format_ref(TTL)}`" in text.split("## Still alive")[1]


def test_evidence_is_listed_for_every_attempt_with_check_observed_and_confirmed() -> None:
    view = sample_view()
    text = render_report(view, fmt="md")
    evidence = next(table for table in _markdown_tables(text) if table[0] == ["#", "Check", "Observed", "Confirmed"])
    numbers = [row[0] for row in evidence[2:]]
    assert sorted(set(numbers), key=int) == [str(n) for n in range(1, 8)]
    assert ["1", "entity read", "disabled=true", "yes"] in evidence
    assert any(row[1] == "serial in CRL" and row[3] == "no" for row in evidence)
    assert any(row[1] == "none recorded" for row in evidence)  # the 503 attempt read nothing back


def test_control_and_bidi_characters_are_shown_not_obeyed() -> None:
    view = sample_view()
    for fmt in ("md", "html"):
        text = render_report(view, fmt=fmt)
        assert "\u202e" not in text
        assert "\\u202etxt.exe" in text


# --- HTML ----------------------------------------------------------------------------------------


class _Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[dict[str, str | None]] = []
        self.rows: list[dict[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.append(dict(attrs))
        if tag == "tr":
            self.rows.append(dict(attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_is_a_standalone_document_with_a_row_for_every_attempt() -> None:
    view = sample_view()
    document = render_report(view, fmt="html", execution=EXECUTION)
    assert document.startswith('<!DOCTYPE html>\n<html lang="en">')
    assert '<meta charset="utf-8">' in document
    dom = _Dom()
    dom.feed(document)
    # no script, no external resource of any kind
    assert "script" not in dom.tags
    assert not {"link", "img", "iframe", "object", "embed", "base", "form"} & set(dom.tags)
    assert not any(key in attrs for attrs in dom.attrs for key in ("src", "href", "onerror", "onload"))
    policies = [a["content"] for a in dom.attrs if a.get("http-equiv") == "Content-Security-Policy"]
    assert policies == [
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; form-action 'none'; base-uri 'none'"
    ]
    # a row per attempt, in time order, and a header for every table
    attempt_rows = [row for row in dom.rows if row.get("class") == "attempt"]
    assert [row["id"] for row in attempt_rows] == [f"attempt-{n}" for n in range(1, 8)]
    assert dom.tags.count("table") == dom.tags.count("thead") >= 7
    text = "".join(dom.text)
    for attempt in view.attempts:
        assert format_ref(attempt.result.target) in text


def test_html_escapes_every_value_from_the_event() -> None:
    document = render_report(sample_view(), fmt="html", execution=EXECUTION)
    assert "<script>" not in document
    assert "<img src" not in document
    assert "<b>bob" not in document
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in document
    assert "&lt;img src=x onerror=alert(1)&gt;" in document
    dom = _Dom()
    dom.feed(document)
    # the hostile values survive as text, exactly
    text = "".join(dom.text)
    assert HOSTILE_REASON in text
    assert HOSTILE_REQUESTER in text
    assert HOSTILE_OBSERVED in text


# --- JSON ----------------------------------------------------------------------------------------


def test_json_carries_the_view_and_the_execution_machine_readably() -> None:
    view = sample_view()
    document = json.loads(render_report(view, fmt="json", execution=EXECUTION))
    assert document["report"] == "rescind-incident-report"
    assert document["incident_id"] == INCIDENT
    assert document["finished"] is True
    assert document["status"] == "partial"
    assert document["still_alive"] == [format_ref(CERT)]
    assert document["timeline"] == [attempt.attempt_id for attempt in _attempts_in_time_order(view)]
    assert IncidentView.model_validate(document["view"]) == view
    assert ExecutionSummary.model_validate(document["execution"]) == EXECUTION


# --- an unfinished run, and thin views -----------------------------------------------------------


def test_a_run_without_a_closure_says_it_is_not_finished_in_every_format() -> None:
    view = sample_view(closed=False)
    markdown = render_report(view, fmt="md")
    assert "**Status: not finished**" in markdown
    assert NOT_FINISHED in markdown
    document = render_report(view, fmt="html")
    assert 'id="status">not finished</span>' in document
    assert NOT_FINISHED in document
    data = json.loads(render_report(view, fmt="json"))
    assert data["finished"] is False
    assert data["status"] == "not_finished"
    assert data["still_alive"] is None
    assert "No execution summary was given" in markdown


def test_a_view_with_only_attempts_still_renders() -> None:
    full = sample_view(closed=False)
    view = IncidentView(incident=None, attempts=full.attempts[:1], closure=None)
    markdown = render_report(view, fmt="md")
    assert "inc-20250314-billing" in markdown
    assert "No incident record: the trigger is not known." in markdown
    assert format_ref(CERT) in markdown


def test_an_empty_closed_run_says_nothing_is_alive() -> None:
    full = sample_view()
    assert full.incident is not None
    empty_plan = Plan(plan_id="plan-empty", actions=())
    view = IncidentView(
        incident=full.incident.model_copy(update={"plan": empty_plan}),
        attempts=(),
        closure=IncidentClosure(
            incident_id=INCIDENT, status=IncidentStatus.COMPLETED, closed_at=T0 + timedelta(seconds=1)
        ),
    )
    markdown = render_report(view, fmt="md")
    assert "No action attempt has been recorded." in markdown
    assert "Nothing is still alive: every planned action was verified." in markdown


def test_a_denied_run_names_who_denied() -> None:
    denied = ExecutionSummary(
        execution_arn=EXECUTION.execution_arn, status="SUCCEEDED", denied_by="arn:aws:iam::123456789012:user/dave"
    )
    markdown = render_report(sample_view(), fmt="md", execution=denied)
    assert "denied by arn:aws:iam::123456789012:user/dave" in markdown


def test_an_execution_cannot_be_both_approved_and_denied() -> None:
    with pytest.raises(ValidationError):
        ExecutionSummary(execution_arn="arn:x", status="RUNNING", approved_by="a", denied_by="b")


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="use md, html or json"):
        render_report(sample_view(), fmt="pdf")  # type: ignore[arg-type]


# --- a failed run: what is dead, alive, or never read back -------------------------------------------


class _ViewLedger:
    """The two calls closing makes: read the incident, append the closure (kept here to be looked at)."""

    def __init__(self, view: IncidentView) -> None:
        self.view = view
        self.closures: list[IncidentClosure] = []

    def read_incident(self, incident_id: str) -> IncidentView:
        return self.view

    def close_incident(self, closure: IncidentClosure) -> bool:
        self.closures.append(closure)
        return True


def test_a_failed_run_closes_with_each_planned_credential_dead_alive_or_unknown() -> None:
    view = sample_view(closed=False)
    ledger = _ViewLedger(view)

    result = close_incident(
        CloseRequest(incident_id=INCIDENT, subject="billing", outcome=RunOutcome.FAILED, error_type="VaultUnavailable"),
        ledger,  # type: ignore[arg-type]
    )

    (closure,) = ledger.closures
    states = {standing.target.key: standing.state for standing in closure.credentials}
    # The newest attempt decides: the token's retry succeeded; the certificate was read back alive; the TTL
    # target has no attempt at all
    assert states == {
        ENTITY.key: CredentialState.DEAD,
        KEY.key: CredentialState.DEAD,
        KV.key: CredentialState.DEAD,
        TOKEN.key: CredentialState.DEAD,
        CERT.key: CredentialState.ALIVE,
        SECRET_ID.key: CredentialState.DEAD,
        TTL.key: CredentialState.UNKNOWN,
    }
    assert closure.status is IncidentStatus.PARTIAL
    assert closure.still_alive == (CERT,)
    assert closure.alive_is_unknown
    assert result.unknown_count == 1
    assert result.event_detail["unknown"] == [TTL.key]
    assert TTL.key in result.notification.message.split("Not read back, may be alive:")[1]
    assert "still alive: " + format_ref(CERT) in describe_alive(closure)


def test_a_failed_run_that_read_nothing_back_never_says_nothing_is_alive_in_any_format() -> None:
    full = sample_view(closed=False)
    view = full.model_copy(update={"attempts": ()})
    ledger = _ViewLedger(view)
    close_incident(CloseRequest(incident_id=INCIDENT, outcome=RunOutcome.FAILED), ledger)  # type: ignore[arg-type]
    (closure,) = ledger.closures
    assert view.incident is not None
    assert {ref.key for ref in closure.in_state(CredentialState.UNKNOWN)} == {
        action.target.key for action in view.incident.plan.actions
    }
    assert closure.status is IncidentStatus.FAILED
    assert "still alive: unknown" in closure.summary

    closed = view.model_copy(update={"closure": closure})
    markdown = render_report(closed, fmt="md")
    assert "were never read back: they may be alive" in markdown
    assert "Nothing is still alive" not in markdown
    assert "unknown (not everything was read back)" in markdown
    data = json.loads(render_report(closed, fmt="json"))
    assert data["alive_is_unknown"] is True
    assert len(data["unknown"]) == len(view.incident.plan.actions)


def test_a_failed_closure_recorded_without_standings_still_says_alive_is_unknown() -> None:
    # Closures written before standings existed: a FAILED one never read anything back
    closure = IncidentClosure(incident_id=INCIDENT, status=IncidentStatus.FAILED, closed_at=T0)
    assert closure.alive_is_unknown
    assert describe_alive(closure).startswith("still alive: unknown")
