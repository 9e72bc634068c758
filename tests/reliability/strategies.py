"""Hypothesis strategies for hostile input: malformed events built from the real samples in events/ and from the
pydantic models, plus the hand-written cases the issue lists (path traversal, empty/root/wildcard prefixes, huge
payloads, the wrong account or region, mixed unicode, wrong types, a missing `detail`).

Malformed documents are invalid by construction: each entry point's documents have a contract written here
(`Contract`: which fields are required, of what JSON type, and values each field must refuse, taken from the
README and the event formats, not from the parsers), and `broken` draws one to three breakages of a real, valid
document against it: a required field dropped, a field of the wrong type, a refused value (traversal, wildcard,
another account), an unknown key where the format is closed, or the document grown past its size limit. Every
one must be refused; the parsers are never asked which are invalid. `mutated` (random changes that may leave a
document valid) remains for test_handler_fuzz.py, which only asks that nothing crashes.

Every planted value (PLANTED_SECRETS) looks like a secret; no refusal may repeat one.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from tests.conftest import load_task_input

REPO_ROOT = Path(__file__).resolve().parents[2]
EVENTS_DIR = REPO_ROOT / "events"

# Scales every fuzz test: small in the fast run, >= 10,000 per entry-point family in `pytest -m slow`.
FAST_EXAMPLES = int(os.environ.get("RESCIND_FUZZ_FAST_EXAMPLES", "40"))
SLOW_EXAMPLES = int(os.environ.get("RESCIND_FUZZ_EXAMPLES", "10000"))

# Secret-looking values: a Vault token, an AWS secret key, a GitHub token, a private key line, a password.
PLANTED_SECRETS = (
    "hvs.PLANTED0vault0token0value0ZZ9q8w7e6r5t",
    "wJalrXUtnFEMI/K7MDENG/PLANTEDsecretKEYzz99",
    "ghp_PLANTED0github0token0value0000000000aa",
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC-PLANTED-pk",
    "s.PLANTEDlegacyVaultToken0000aa",
)

TERMINATION_SAMPLES = (
    "ec2_instance_terminated.json",
    "ecs_task_stopped.json",
    "lambda_function_deleted.json",
    "autoscaling_instance_terminating.json",
    "workload_terminated.json",
)
LEAK_SAMPLES = (
    "secret_leaked.json",
    "health_risk_credentials_exposed.json",
    "guardduty_instance_credential_exfiltration.json",
)


def load_sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text())
    return loaded


# --- hostile values -----------------------------------------------------------------------------------------

TRAVERSALS = (
    "..",
    "../..",
    "../../etc/passwd",
    "secret/../sys/seal",
    "apps/./billing",
    "..%2f..%2fsys",
    "spiffe://td/../../admin",
    "pki/../../sys/leases/revoke-force/",
    "\\..\\..\\windows",
)
PREFIXES = (
    "",
    " ",
    "/",
    "//",
    "*",
    "**",
    "?",
    "%",
    "secret/",
    "pki/",
    "auth/",
    "auth/token/",
    "sys/",
    "[a-z]*",
    "{a,b}",
)
MIXED_UNICODE = (
    "spiffe://td/\u0455vc",  # Cyrillic s
    "i-\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17",  # fullwidth digits
    "arn:aws:ec2:us-east-1:١٢٣٤٥٦٧٨٩٠١٢:instance/i-1",  # Arabic-Indic digits
    "app\u202eexe.txt",  # bidi override
    "a\u200bb",  # zero-width space
    "x\x00y",  # NUL
    "line\nbreak",
    "tab\tin",
    "😀🔑",
    "e\u0301",  # combining accent
)
WRONG_ACCOUNTS = ("", "12345", "1234567890123", "abcdefghijkl", "12345678901O", "-12345678901", "123456789012 ")
WRONG_REGIONS = ("", "US-EAST-1", "us_east_1", "us-east-1; rm -rf /", "mars-north-1x", "us-east-")


def huge_text(size: int = 300 * 1024) -> str:
    return "A" * size


def deep_nesting(depth: int = 200) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"n": value}
    return value


WRONG_TYPES: tuple[Any, ...] = (None, 0, -1, 1.5, True, [], {}, [1, 2], {"a": 1}, "", "0", 2**70)

hostile_strings = st.one_of(
    st.sampled_from(TRAVERSALS + PREFIXES + MIXED_UNICODE + WRONG_ACCOUNTS + WRONG_REGIONS),
    st.sampled_from(PLANTED_SECRETS),
    st.text(min_size=0, max_size=40),
    st.text(alphabet=st.characters(codec="ascii"), max_size=40),
)
wrong_type_values = st.one_of(
    st.sampled_from(WRONG_TYPES),
    st.integers(),
    st.floats(allow_nan=False),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


# --- mutating a real document -------------------------------------------------------------------------------

JsonPath = tuple[str | int, ...]


def all_paths(document: Any, prefix: JsonPath = ()) -> list[JsonPath]:
    """Every node of a JSON document below the root, parents before children."""
    paths: list[JsonPath] = []
    if isinstance(document, dict):
        for key, value in document.items():
            paths.append((*prefix, key))
            paths.extend(all_paths(value, (*prefix, key)))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            paths.append((*prefix, index))
            paths.extend(all_paths(value, (*prefix, index)))
    return paths


def _parent(document: Any, path: JsonPath) -> Any:
    node = document
    for part in path[:-1]:
        node = node[part]
    return node


def set_at(document: Any, path: JsonPath, value: Any) -> None:
    # A copy: a drawn value may be a shared constant ([] or {}), which a later mutation must not change.
    _parent(document, path)[path[-1]] = copy.deepcopy(value)


def delete_at(document: Any, path: JsonPath) -> None:
    del _parent(document, path)[path[-1]]


@st.composite
def mutated(draw: st.DrawFn, base: Any, *, max_mutations: int = 3) -> Any:
    """`base` with one to three nodes deleted or replaced by a wrong type, a hostile string or a planted secret."""
    document = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, max_mutations))):
        paths = all_paths(document)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        operation = draw(st.sampled_from(("delete", "wrong_type", "hostile", "planted", "extra")))
        if operation == "delete":
            delete_at(document, path)
        elif operation == "wrong_type":
            set_at(document, path, draw(wrong_type_values))
        elif operation == "hostile":
            set_at(document, path, draw(hostile_strings))
        elif operation == "planted":
            set_at(document, path, draw(st.sampled_from(PLANTED_SECRETS)))
        else:
            parent = _parent(document, path)
            if isinstance(parent, dict):
                parent[draw(st.sampled_from(("unexpected", "__proto__", "$ref", "../x")))] = draw(hostile_strings)
    return document


# --- invalid by construction: what each document must hold, and every way to break it -------------------------

# Values of another JSON type than a field's, that no lax coercion turns into it (no numeric strings for numbers,
# no 0/1 for booleans, no numbers for datetimes, which pydantic reads as Unix times).
WRONG_TYPE_VALUES: dict[str, tuple[Any, ...]] = {
    "string": (0, -1, 1.5, True, [], ["x"], {}, {"a": "b"}),
    "integer": ("x", "", 1.5, [], [1], {}, {"a": 1}),
    "boolean": ("maybe", "", 2, 1.5, [], {}, {"a": 1}),
    "datetime": ("yesterday", "2026-11-24T09:15:02", "", [], {}, {"a": 1}),
    "list": ("x", 0, 1.5, True, {}, {"a": 1}),
    "object": ("x", "", 0, 1.5, True, [], ["a"]),
}


UNKNOWN_KEYS = ("unexpected", "__proto__", "../x")


@dataclass(frozen=True)
class FieldRule:
    """One field of a document: where it is, its JSON type, whether it must be there, values it must refuse."""

    path: JsonPath
    type: str  # a key of WRONG_TYPE_VALUES
    required: bool = True
    nullable: bool = False  # null is a valid value (an optional field typed `X | None`)
    refused: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Contract:
    """What a valid document holds. `closed`: objects that refuse a key they do not know. `max_bytes`: the size
    above which the whole document is refused, grown at `padding_at` (an object)."""

    name: str
    valid: Callable[[], Any]
    fields: tuple[FieldRule, ...]
    closed: tuple[JsonPath, ...] = ()
    max_bytes: int | None = None
    padding_at: JsonPath = ()

    def rule(self, path: JsonPath) -> FieldRule:
        return next(rule for rule in self.fields if rule.path == path)


_MISSING = object()


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict) and isinstance(part, str):
        return node.get(part, _MISSING)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return _MISSING


def _node_at(document: Any, path: JsonPath) -> Any:
    node = document
    for part in path:
        node = _child(node, part)
    return node


def _holds(document: Any, path: JsonPath) -> bool:
    """True when `path` names a key of an object, or an item of a list, present in the document."""
    return isinstance(_node_at(document, path[:-1]), dict | list) and _node_at(document, path) is not _MISSING


def _is_object(document: Any, path: JsonPath) -> bool:
    return isinstance(_node_at(document, path), dict)


def breakages(contract: Contract, document: Any) -> list[tuple[str, JsonPath, Any]]:
    """Every single change that makes `document` (valid, or already broken by this) refused: (what, where, value)."""
    found: list[tuple[str, JsonPath, Any]] = []
    for rule in contract.fields:
        present = _holds(document, rule.path)
        # An optional field the document leaves out is broken by adding it with a bad value.
        addable = not rule.required and _is_object(document, rule.path[:-1])
        if not (present or addable):
            continue
        if present and rule.required:
            found.append(("drop", rule.path, None))
        wrong = WRONG_TYPE_VALUES[rule.type] + (() if rule.nullable else (None,))
        found.extend(("wrong_type", rule.path, value) for value in wrong)
        found.extend(("refused_value", rule.path, value) for value in rule.refused)
    for path in contract.closed:
        if _is_object(document, path):
            found.extend(
                ("unknown_key", (*path, key), PLANTED_SECRETS[2]) for key in ("unexpected", "__proto__", "../x")
            )
    if contract.max_bytes is not None and _is_object(document, contract.padding_at):
        found.append(("oversized", (*contract.padding_at, "padding"), huge_text(contract.max_bytes + 1)))
    return found


def apply_breakage(document: Any, breakage: tuple[str, JsonPath, Any]) -> None:
    what, path, value = breakage
    if what == "drop":
        delete_at(document, path)
    else:
        set_at(document, path, value)


@st.composite
def broken(draw: st.DrawFn, contract: Contract, *, max_breakages: int = 3) -> Any:
    """A valid document of `contract` broken in one to `max_breakages` ways, each of which alone is refused."""
    document = copy.deepcopy(contract.valid())
    for _ in range(draw(st.integers(1, max_breakages))):
        choices = breakages(contract, document)
        if not choices:
            break  # broken already: the root lost everything the contract names
        apply_breakage(document, draw(st.sampled_from(choices)))
    return document


def refused_everywhere(contract: Contract) -> list[Any]:
    """Each single breakage of the valid document, once: the hand-enumerable part of what `broken` draws."""
    cases = []
    for breakage in breakages(contract, contract.valid()):
        document = copy.deepcopy(contract.valid())
        apply_breakage(document, breakage)
        cases.append(document)
    return cases


EVENT_IDS_REFUSED = ("", "../x", "a b", "x" * 201, "../../" + PLANTED_SECRETS[0])


def envelope_rules(*, detail_type_refused: tuple[str, ...]) -> tuple[FieldRule, ...]:
    """EventBridge's envelope, every field required (README: events in their real format)."""
    return (
        FieldRule(("version",), "string", refused=("1", "", "0 ")),
        FieldRule(("id",), "string", refused=EVENT_IDS_REFUSED),
        FieldRule(("detail-type",), "string", refused=("", *detail_type_refused)),
        FieldRule(("source",), "string", refused=("", "aws.ec2\u200b", "aws.s3")),
        FieldRule(("account",), "string", refused=WRONG_ACCOUNTS),
        FieldRule(("time",), "datetime"),
        FieldRule(("region",), "string", refused=WRONG_REGIONS),
        FieldRule(("resources",), "list", refused=(["x" * 3000],)),
        FieldRule(("detail",), "object"),
    )


INSTANCE_IDS_REFUSED = ("", "i-*", "i-../..", "i-0123456789ABCDEF0", "i-123", "i-0123456789abcdef0/../")
TERMINATION_LIMIT = 256 * 1024
LEAK_LIMIT = 64 * 1024


def _termination(sample: str, *detail: FieldRule, closed: bool = False) -> Contract:
    return Contract(
        name=sample,
        valid=lambda: load_sample(sample),
        fields=(*envelope_rules(detail_type_refused=("EC2 INSTANCE STATE-CHANGE NOTIFICATION", "x")), *detail),
        closed=(("detail",),) if closed else (),
        max_bytes=TERMINATION_LIMIT,
        padding_at=("detail",),
    )


def _detail(name: str, type_: str = "string", **kwargs: Any) -> FieldRule:
    return FieldRule(("detail", *name.split(".")), type_, **kwargs)


TERMINATION_CONTRACTS: tuple[Contract, ...] = (
    _termination(
        "ec2_instance_terminated.json",
        _detail("instance-id", refused=INSTANCE_IDS_REFUSED),
        _detail("state", refused=("", "Terminated", "../x", "x" * 33)),
    ),
    _termination(
        "ecs_task_stopped.json",
        _detail(
            "taskArn",
            refused=(
                "",
                "arn:aws:ecs:us-east-1:999999999999:task/payments/0f8e3c5a7b2d4e6f9a1b3c5d7e9f1a2b",
                "arn:aws:ecs:eu-west-3:123456789012:task/payments/0f8e3c5a7b2d4e6f9a1b3c5d7e9f1a2b",
                "arn:aws:ecs:us-east-1:123456789012:task/../../x",
                "arn:aws:ecs:us-east-1:123456789012:task/*",
            ),
        ),
        _detail("clusterArn", refused=("",)),
        _detail("lastStatus", refused=("", "stopped", "../x")),
        _detail("stoppedAt", "datetime", required=False, nullable=True),
    ),
    _termination(
        "lambda_function_deleted.json",
        _detail("eventSource", refused=("s3.amazonaws.com", "")),
        _detail("eventName", refused=("", "Delete Function", "../x")),
        _detail("eventTime", "datetime"),
        _detail("awsRegion", refused=(*WRONG_REGIONS, "eu-west-3")),
        _detail("recipientAccountId", required=False, nullable=True, refused=("999999999999", "12345")),
        _detail("requestParameters", "object"),
        _detail(
            "requestParameters.functionName",
            refused=("", "*", "../x", "a b", "arn:aws:lambda:eu-west-3:999999999999:function:x", "x" * 257),
        ),
    ),
    _termination(
        "autoscaling_instance_terminating.json",
        _detail("EC2InstanceId", refused=INSTANCE_IDS_REFUSED),
        _detail("AutoScalingGroupName", refused=("", "x\n", "x" * 256)),
        _detail("LifecycleHookName", refused=("", "a b", "x" * 256)),
        _detail("LifecycleTransition", refused=("", "a b")),
        _detail("LifecycleActionToken", refused=("", "a b", "x" * 65)),
        _detail("Destination", required=False, nullable=True, refused=("", "EC2 ", "../x")),
    ),
    _termination(
        "workload_terminated.json",
        _detail(
            "workload_id",
            refused=(*TRAVERSALS, "", " ", "*", "spiffe://td/*", *MIXED_UNICODE[:6], "spiffe://", "x" * 501),
        ),
        _detail("reason", refused=("", " ", "a\u202eb", "tab\tin", "x" * 501)),
        _detail("terminated_at", "datetime", required=False, nullable=True),
        closed=True,
    ),
)

SECRET_TYPES_REFUSED = ("", "*", "slack_token", "VAULT_TOKEN", "vault_token\u200b", "../vault_token")
LEAK_CONTRACTS: tuple[Contract, ...] = (
    Contract(
        name="secret_leaked.json",
        valid=lambda: load_sample("secret_leaked.json"),
        fields=(
            *envelope_rules(detail_type_refused=("SECRET LEAKED", "x")),
            _detail(
                "secret_type", refused=("", "*", "slack_token", "VAULT_TOKEN", "vault_token\u200b", "../vault_token")
            ),
            _detail("secret", nullable=True, refused=("", "x" * (16 * 1024 + 1))),
            _detail("source_url", refused=("", "x" * 2001)),
            _detail("scanner", refused=("", "x" * 201)),
            _detail("found_at", "datetime"),
            _detail("account_id", required=False, nullable=True, refused=WRONG_ACCOUNTS[1:]),
        ),
        closed=(("detail",),),
        max_bytes=LEAK_LIMIT,
        padding_at=("detail",),
    ),
    Contract(
        name="health_risk_credentials_exposed.json",
        valid=lambda: load_sample("health_risk_credentials_exposed.json"),
        fields=(
            *envelope_rules(detail_type_refused=("AWS HEALTH EVENT", "x")),
            _detail("eventArn", refused=("x" * 1601,)),
            _detail("service", refused=("x" * 101,)),
            _detail("eventTypeCode", refused=("", "aws_risk_credentials_exposed", "../x")),
            _detail("affectedAccount", required=False, nullable=True, refused=WRONG_ACCOUNTS[1:]),
            _detail("affectedEntities", "list", required=False, refused=([{"entityValue": ""}], ["AKIA"])),
            _detail("page", "integer", required=False, nullable=True, refused=(0, -1)),
        ),
        max_bytes=LEAK_LIMIT,
        padding_at=("detail",),
    ),
    Contract(
        name="guardduty_instance_credential_exfiltration.json",
        valid=lambda: load_sample("guardduty_instance_credential_exfiltration.json"),
        fields=(
            *envelope_rules(detail_type_refused=("GUARDDUTY FINDING", "x")),
            _detail("id", refused=("", "../x", "a-b")),
            _detail("accountId", refused=WRONG_ACCOUNTS),
            _detail("type", refused=("x" * 201,)),
            _detail("resource", "object"),
            _detail("resource.resourceType", refused=("x" * 65,)),
            _detail("resource.accessKeyDetails.userName", refused=("", "a b", "../admin", "x" * 65)),
            _detail("resource.accessKeyDetails.userType", refused=("x" * 65,)),
            _detail("createdAt", "datetime"),
        ),
        max_bytes=LEAK_LIMIT,
        padding_at=("detail",),
    ),
)


def envelope_breakage(base: dict[str, Any]) -> list[dict[str, Any]]:
    """Hand-written: the EventBridge envelope broken in each of the ways the issue names."""
    cases: list[dict[str, Any]] = []

    def case(change: Callable[[dict[str, Any]], None]) -> None:
        document = copy.deepcopy(base)
        change(document)
        cases.append(document)

    def replaced(key: str, value: Any) -> None:
        document = copy.deepcopy(base)
        document[key] = value
        cases.append(document)

    case(lambda e: e.pop("detail"))
    for wrong in (None, "detail", 1, [], ["a"], True):
        replaced("detail", wrong)
    for account in WRONG_ACCOUNTS:
        replaced("account", account)
    for region in WRONG_REGIONS:
        replaced("region", region)
    case(lambda e: e.__setitem__("detail", {**e["detail"], "padding": huge_text()}))
    case(lambda e: e.__setitem__("detail", deep_nesting()))
    case(lambda e: e.__setitem__("source", "aws.ec2\u200b"))
    case(lambda e: e.__setitem__("detail-type", e["detail-type"].upper()))
    case(lambda e: e.__setitem__("time", "yesterday"))
    case(lambda e: e.__setitem__("time", "2026-11-24T09:15:02"))  # naive: no zone
    case(lambda e: e.__setitem__("id", "../../" + PLANTED_SECRETS[0]))
    case(lambda e: e.__setitem__("version", 0))
    return cases


NOT_AN_EVENT: tuple[Any, ...] = (None, "", "{}", PLANTED_SECRETS[0], 0, 1.5, True, [], [{}], {}, {"detail": {}})


# Termination samples: hand-written values that must be refused in the fields naming what ended.
def termination_field_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    generic = load_sample("workload_terminated.json")
    # An id ending in "/" ("secret/") is an odd but exact name, never a prefix, so only the wildcard-like ones.
    bad_ids = [value for value in PREFIXES if not value.endswith("/") or value.strip("/") == ""]
    for value in (*TRAVERSALS, *bad_ids, *MIXED_UNICODE, "spiffe://", "arn:aws:", huge_text(600)):
        document = copy.deepcopy(generic)
        document["detail"]["workload_id"] = value
        cases.append(document)
    ecs = load_sample("ecs_task_stopped.json")
    document = copy.deepcopy(ecs)  # a task in another account than the event's
    document["detail"]["taskArn"] = document["detail"]["taskArn"].replace(document["account"], "999999999999")
    cases.append(document)
    document = copy.deepcopy(ecs)  # and in another region
    document["detail"]["taskArn"] = document["detail"]["taskArn"].replace(document["region"], "eu-west-3")
    cases.append(document)
    deleted = load_sample("lambda_function_deleted.json")
    document = copy.deepcopy(deleted)
    document["detail"]["awsRegion"] = "eu-west-3"
    cases.append(document)
    document = copy.deepcopy(deleted)
    document["detail"]["requestParameters"]["functionName"] = "arn:aws:lambda:eu-west-3:999999999999:function:x"
    cases.append(document)
    for value in ("i-*", "i-../..", "", "i-0123456789abcdef0/../", "i-0123456789ABCDEF0"):
        document = load_sample("ec2_instance_terminated.json")
        document["detail"]["instance-id"] = value
        cases.append(document)
    for sample in TERMINATION_SAMPLES:
        cases.extend(envelope_breakage(load_sample(sample)))
    return cases


def leak_field_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    generic = load_sample("secret_leaked.json")
    for secret_type in ("", "*", "slack_token", "VAULT_TOKEN", "vault_token\u200b", "../vault_token", 1, None):
        document = copy.deepcopy(generic)
        document["detail"]["secret_type"] = secret_type
        cases.append(document)
    for secret in ("", None, 7, ["x"], huge_text(70 * 1024)):
        document = copy.deepcopy(generic)
        document["detail"]["secret"] = secret
        cases.append(document)
    for account in WRONG_ACCOUNTS[1:]:
        document = copy.deepcopy(generic)
        document["detail"]["account_id"] = account
        cases.append(document)
    guardduty = load_sample("guardduty_instance_credential_exfiltration.json")
    for account in WRONG_ACCOUNTS:
        document = copy.deepcopy(guardduty)
        document["detail"]["accountId"] = account
        cases.append(document)
    health = load_sample("health_risk_credentials_exposed.json")
    for account in WRONG_ACCOUNTS[1:]:
        document = copy.deepcopy(health)
        document["detail"]["affectedAccount"] = account
        cases.append(document)
    for sample in LEAK_SAMPLES:
        cases.extend(envelope_breakage(load_sample(sample)))
    return cases


# --- Step Functions task inputs: valid documents, and what breaks them ----------------------------------------

TOKEN_ACCESSOR = "CaTti28wsXOQA02COE2ygP2B"
EXECUTION_ARN = "arn:aws:states:us-east-1:123456789012:execution:rescind-offboarding:offboard-0123abcd"


def valid_offboarding_request() -> dict[str, Any]:
    return {
        "incident_id": "offboard-0123456789abcdef",
        "workload_id": "spiffe://demo.rescind/ns/payments/sa/api",
        "reason": "workload terminated",
        "trigger": {"source": "rescind", "detail_type": "Workload Terminated", "event_id": "evt-1"},
        "terminated_at": "2026-11-24T09:15:02Z",
    }


def valid_action() -> dict[str, Any]:
    return {"kind": "revoke", "target": {"kind": "vault_token", "accessor": TOKEN_ACCESSOR}, "reason": "leak"}


def valid_verify_batch() -> dict[str, Any]:
    """One item of the Verify Map: a batch of a plan's actions (rescind.response.plan_store.VerifyBatchRequest)."""
    return {"incident_id": "offboard-0123456789abcdef", "actions": [valid_action()]}


def valid_close_request() -> dict[str, Any]:
    return {"incident_id": "offboard-0123456789abcdef", "flow": "offboarding", "outcome": "verified"}


def valid_approval_request() -> dict[str, Any]:
    return {
        "task_token": "AAAAKgAAAAIAAAAAAAAAA-task-token",
        "incident_id": "offboard-0123456789abcdef",
        "execution_arn": EXECUTION_ARN,
        "subject": "workload spiffe://demo.rescind/ns/payments/sa/api",
        "reason": "above the blast-radius cap",
        "counts_by_kind": {"vault_token": 30},
    }


# Hand-written credential references inside an otherwise valid action: each must be refused by the model.
BAD_TARGETS: tuple[dict[str, Any], ...] = (
    {"kind": "kv_secret", "mount": "secret", "path": "../sys/seal"},
    {"kind": "kv_secret", "mount": "secret", "path": "apps/../../sys"},
    {"kind": "kv_secret", "mount": "secret", "path": ""},
    {"kind": "kv_secret", "mount": "secret", "path": "/"},
    {"kind": "kv_secret", "mount": "secret", "path": "apps/*"},
    {"kind": "kv_secret", "mount": "", "path": "apps/x"},
    {"kind": "kv_secret", "mount": "..", "path": "apps/x"},
    {"kind": "vault_lease", "lease_id": ""},
    {"kind": "vault_lease", "lease_id": "pki/"},
    {"kind": "vault_lease", "lease_id": "pki"},
    {"kind": "vault_lease", "lease_id": "*"},
    {"kind": "vault_lease", "lease_id": "database/creds/../../x"},
    {"kind": "vault_token", "accessor": PLANTED_SECRETS[0]},
    {"kind": "vault_token", "accessor": "*"},
    {"kind": "vault_token", "accessor": ""},
    {"kind": "pki_certificate", "mount": "pki", "serial": "*"},
    {"kind": "pki_certificate", "mount": "pki/../sys", "serial": "1f:0a"},
    {"kind": "iam_access_key", "account_id": "12345", "user_name": "bot", "access_key_id": "AKIAIOSFODNN7EXAMPLE"},
    {"kind": "iam_access_key", "account_id": "123456789012", "user_name": "*", "access_key_id": "AKIAIOSFODNN7EXAMPLE"},
    {"kind": "iam_access_key", "account_id": "123456789012", "user_name": "bot", "access_key_id": PLANTED_SECRETS[1]},
    {"kind": "iam_role_sessions", "account_id": "123456789012", "role_name": "../admin"},
    {"kind": "secrets_manager_secret", "secret_arn": "arn:aws:secretsmanager:*:*:secret:*"},
    {"kind": "vault_entity", "entity_id": "../../sys"},
    {"kind": "vault_ttl_target", "target_type": "mount", "mount": "", "role_name": None},
    {"kind": "vault_ttl_target", "target_type": "pki_role", "mount": "pki", "role_name": "*"},
    {"kind": "slack_token", "value": PLANTED_SECRETS[2]},
    {"kind": None},
    {},
)


INCIDENT_IDS_REFUSED = ("", "../x", "a/b", "*", "x" * 81, "inc\u200b1", PLANTED_SECRETS[0])
WORKLOAD_IDS_REFUSED = ("", "*", "spiffe://td/*", "spiffe://td/../admin", "..", "/", "%2e%2e")
COUNTS_REFUSED = ({"vault_token": "x"}, {"vault_token": 1.5}, {"vault_token": None}, {"vault_token": [1]})


def _action_rules(*prefix: str | int) -> tuple[FieldRule, ...]:
    return (
        FieldRule(prefix, "object", required=isinstance(prefix[-1], str)),  # a list may lose an item
        FieldRule((*prefix, "kind"), "string", refused=("", "revoke_force", "destroy_all", "Revoke ")),
        FieldRule((*prefix, "target"), "object", refused=BAD_TARGETS),
        FieldRule((*prefix, "target", "kind"), "string", refused=("", "slack_token", "vault-token")),
        FieldRule((*prefix, "target", "accessor"), "string", refused=("", "*", "a/b", PLANTED_SECRETS[0])),
        FieldRule((*prefix, "reason"), "string", refused=("", "x" * 501)),
    )


def _trigger_rules() -> tuple[FieldRule, ...]:
    return (
        FieldRule(("trigger",), "object"),
        FieldRule(("trigger", "source"), "string", refused=("", "x" * 201)),
        FieldRule(("trigger", "detail_type"), "string", refused=("", "x" * 201)),
        FieldRule(("trigger", "event_id"), "string", refused=("", "x" * 201)),
    )


OFFBOARDING_REQUEST_RULES = (
    FieldRule(("incident_id",), "string", refused=INCIDENT_IDS_REFUSED),
    FieldRule(("workload_id",), "string", refused=WORKLOAD_IDS_REFUSED),
    FieldRule(("reason",), "string", refused=("", "x" * 501)),
    *_trigger_rules(),
    FieldRule(("terminated_at",), "datetime"),
    FieldRule(("dry_run",), "boolean", required=False),
    FieldRule(("credentials",), "list", required=False, refused=tuple([target] for target in BAD_TARGETS)),
)

# The Step Functions tasks' inputs (the models' fields as the README and the ASL name them), by function.
TASK_CONTRACTS: dict[str, Contract] = {
    "ExecuteActionFunction": Contract(
        name="execute-action request",
        valid=lambda: load_task_input("execute_action.json"),
        fields=(
            FieldRule(("incident_id",), "string", refused=INCIDENT_IDS_REFUSED),
            FieldRule(("attempt_id",), "string", refused=("", "a b", "../x", "x" * 201)),
            *_action_rules("action"),
            FieldRule(("dry_run",), "boolean", required=False),
        ),
        closed=((), ("action",), ("action", "target")),
    ),
    "PlanOffboardingFunction": Contract(
        name="offboarding request",
        valid=lambda: valid_offboarding_request() | {"dry_run": False, "credentials": [valid_action()["target"]]},
        fields=OFFBOARDING_REQUEST_RULES,
        closed=((), ("trigger",), ("credentials", 0)),
    ),
    "PlanLeakResponseFunction": Contract(
        name="leak response request",
        valid=lambda: valid_offboarding_request() | {"dry_run": False, "credentials": [valid_action()["target"]]},
        fields=OFFBOARDING_REQUEST_RULES,
        closed=((), ("trigger",), ("credentials", 0)),
    ),
    "VerifyResponseFunction": Contract(
        name="verify batch",
        valid=valid_verify_batch,
        fields=(
            FieldRule(("incident_id",), "string", refused=INCIDENT_IDS_REFUSED),
            FieldRule(("actions",), "list", refused=([],)),
            *_action_rules("actions", 0),
        ),
        closed=((), ("actions", 0), ("actions", 0, "target")),
    ),
    "CloseIncidentFunction": Contract(
        name="close request",
        valid=lambda: valid_close_request() | {"still_alive": [valid_action()["target"]]},
        fields=(
            FieldRule(("incident_id",), "string", refused=INCIDENT_IDS_REFUSED),
            FieldRule(("flow",), "string", required=False, refused=("", "Off boarding", "../x")),
            FieldRule(("outcome",), "string", refused=("", "done", "VERIFIED")),
            FieldRule(("still_alive",), "list", required=False, refused=tuple([target] for target in BAD_TARGETS)),
        ),
        closed=((), ("still_alive", 0)),
    ),
    "RequestApprovalFunction": Contract(
        name="approval request",
        valid=valid_approval_request,
        fields=(
            FieldRule(("task_token",), "string", refused=("", "x" * 8193)),
            FieldRule(("incident_id",), "string", refused=INCIDENT_IDS_REFUSED),
            FieldRule(
                ("execution_arn",),
                "string",
                refused=(
                    "",
                    "arn:aws:states:us-east-1:123:execution:a:b",
                    "arn:aws:lambda:us-east-1:123456789012:function:x",
                    EXECUTION_ARN + "/../x",
                ),
            ),
            FieldRule(("subject",), "string", refused=("x" * 501,)),
            FieldRule(("reason",), "string", refused=("x" * 1001,)),
            FieldRule(("counts_by_kind",), "object", refused=COUNTS_REFUSED),
        ),
        closed=((),),
    ),
}


# --- the CLI ----------------------------------------------------------------------------------------------------

HAND_WRITTEN_REFS = (
    "",
    " ",
    ":",
    "vault-token",
    "vault-token:",
    "vault-token:accessor:",
    f"vault-token:{PLANTED_SECRETS[0]}",
    f"vault-token:accessor:{PLANTED_SECRETS[0]}",
    PLANTED_SECRETS[0],
    "kv:secret:../sys/seal",
    "kv:secret:apps/../../x",
    "kv:secret:",
    "kv:secret:/",
    "kv:secret:*",
    "kv::apps/x",
    "vault-lease:pki/",
    "vault-lease:*",
    "vault-lease:",
    "pki:pki:*",
    "pki:pki:zz:zz",
    "aws-key:123456789012:AKIAIOSFODNN7EXAMPLE",  # the short form: refused, it would need an AWS call
    "aws-key:12345:bot:AKIAIOSFODNN7EXAMPLE",
    f"aws-key:123456789012:bot:{PLANTED_SECRETS[1]}",
    "aws-secret:arn:aws:secretsmanager:*:*:secret:*",
    "vault-ttl:mount:",
    "vault-ttl:pki-role:pki:*",
    "vault-entity:*",
    "vault-t\u03bfken:accessor:CaTti28wsXOQA02COE2ygP2B",  # Greek omicron
    "vault-token:accessor:CaTti28wsXOQA02COE2ygP2B\x00",
    "x" * 5000,
)
HAND_WRITTEN_WORKLOADS = (
    "",
    " ",
    "two words",
    "*",
    "spiffe://td/*",
    "spiffe://td/../admin",
    "spiffe://td/\u0455vc",
    "i-\uff10\uff11\uff12\uff13",
    "..",
    "/",
    "x" * 600,
    "a\nb",
)


# Valid references, one per form (the examples of rescind/models/refs.py), and the ':'-parts of each that are a
# single name or id (not a serial or an ARN, which hold ':' themselves).
VALID_REFS: dict[str, tuple[int, ...]] = {
    "vault-token:accessor:CaTti28wsXOQA02COE2ygP2B": (1, 2),
    "approle:approle:billing:0c1b2f9e-1111-2222-3333-444455556666": (1, 2, 3),
    "vault-lease:database/creds/app/AbCd1234": (1,),
    "pki:pki_int:74:fe:3b:fb": (1,),
    "kv:secret:apps/billing/db": (1, 2),
    "vault-entity:0c1b2f9e-1111-2222-3333-444455556666": (1,),
    "vault-ttl:pki-role:pki:web": (1, 2, 3),
    "vault-ttl:mount:pki": (1, 2),
    "aws-key:123456789012:deploy-bot:AKIAIOSFODNN7EXAMPLE": (1, 2, 3),
    "aws-role-sessions:123456789012:app-role": (1, 2),
    "aws-secret:arn:aws:secretsmanager:us-east-1:123456789012:secret:billing/db-AbCdEf": (),
    "acm-pca:arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/0c1b2f9e-1111-2222-3333-444455556666:0a": (),
}
# Forms whose parts are fixed in number: dropping the last part leaves too few.
FIXED_ARITY = ("vault-token:", "approle:", "kv:", "vault-ttl:", "aws-key:", "aws-role-sessions:")
# A reference is printable ASCII: any of these inside one refuses it.
NOT_PRINTABLE_ASCII = (" ", "\t", "\n", "\x00", "\x7f", "\u200b", "\u0455", "\u03bf", "\uff10", "é")
UNKNOWN_PREFIXES = ("", "vault_token", "token", "vault", "kv2", "aws-keys", "pki-cert", "x")
# A Vault token value where a part belongs: refused in every part, and never repeated.
TOKEN_VALUE = PLANTED_SECRETS[0]


@st.composite
def malformed_refs(draw: st.DrawFn) -> str:
    """A credential reference text that must be refused, built by breaking a valid one (or a hand-written case)."""
    ref, parts = draw(st.sampled_from(sorted(VALID_REFS.items())))
    breakage = draw(
        st.sampled_from(("hand_written", "character", "prefix", "bare_prefix", "part", "drop_last", "too_long"))
    )
    if breakage == "hand_written":
        return draw(st.sampled_from([text for text in HAND_WRITTEN_REFS if text.strip()]))
    if breakage == "character":
        position = draw(st.integers(1, len(ref) - 1))
        return ref[:position] + draw(st.sampled_from(NOT_PRINTABLE_ASCII)) + ref[position:]
    prefix, _, rest = ref.partition(":")
    if breakage == "prefix":
        return f"{draw(st.sampled_from(UNKNOWN_PREFIXES))}:{rest}"
    if breakage == "bare_prefix":
        return draw(st.sampled_from((prefix, prefix + ":")))
    if breakage == "drop_last" and ref.startswith(FIXED_ARITY):
        return ref.rpartition(":")[0]
    if breakage == "part" and parts:
        pieces = ref.split(":")
        pieces[draw(st.sampled_from(parts))] = draw(st.sampled_from(("", TOKEN_VALUE)))
        return ":".join(pieces)
    return ref + "x" * 2048  # too_long, and the fallback for forms without named or fixed parts


@st.composite
def malformed_replay_files(draw: st.DrawFn) -> str:
    """The text of an EVENT.json `rescind replay` must refuse before putting anything on a bus."""
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.sampled_from(("", "{", "not json", "[]", "null", "42", '"x"', "{'a': 1}", "\x00", "{}")))
    if choice == 1:  # any text that is not a JSON object: it cannot be one event
        return draw(st.text(max_size=80).filter(lambda text: not text.strip().startswith("{")))
    sample = load_sample(draw(st.sampled_from(TERMINATION_SAMPLES + LEAK_SAMPLES)))
    key = draw(st.sampled_from(("source", "detail-type", "detail")))
    if choice == 2:
        sample.pop(key)
    else:
        sample["detail"] = draw(st.one_of(st.none(), st.text(max_size=5), st.lists(st.integers(), max_size=2)))
        sample[draw(st.sampled_from(("junk", "detail")))] = draw(st.sampled_from(PLANTED_SECRETS))
    return json.dumps(sample)


# --- hostile but valid: well-formed documents whose fields name dangerous things -----------------------------
#
# Unlike everything above, these are meant to pass the parsers: the shapes are right, only what they name is
# wrong (Vault's own mounts, the token store's dangerous endpoints, another account or partition, a protected
# workload's credentials). What the parser accepts is then executed for real; see test_handler_fuzz.py.

DANGEROUS_MOUNTS = (
    "sys",
    "sys/raw",
    "sys/raw/core",
    "sys/leases",
    "sys/policies/acl",
    "auth/token",
    "auth",
    "identity",
    "identity/entity",
    "cubbyhole",
    "secret/data",
    "secret/metadata",
    "pki-other",
    "pki_int",
    "kv",
    "approle2",
    "auth/approle2",
    "auth/userpass",
    "database",
    "transit",
    "pki/..",
    "%2e%2e",
    "pki//x",
    "pki\u2215x",  # division slash
    "\u0455ecret",  # Cyrillic s
    "p\u0456ki",  # Cyrillic i
    "pki\x00",
    "pki\u200b",
    "p" * 300,
)
DANGEROUS_PATHS = (
    "..",
    "../sys/seal",
    "%2e%2e/sys",
    "%2e%2e%2fsys%2fseal",
    "apps//x",
    "apps/./x",
    "/apps/x",
    "apps/\u2024\u2024/x",  # one dot leader, twice
    "apps/x\x00/../../sys",
    "sys/raw",
    "config",
    "data/apps/x",
    "metadata/apps/x",
    "destroy/apps/x",
    "apps/" + "a" * 2000,
    "apps/x",
)
DANGEROUS_LEASE_IDS = (
    "auth/token/revoke-prefix/x",
    "auth/token/revoke-orphan/x",
    "auth/token/create/abc",
    "sys/leases/revoke-force/pki/issue",
    "sys/leases/revoke-prefix/pki",
    "sys/raw/logical/x",
    "sys/seal/x",
    "identity/entity/x",
    "cubbyhole/x/y",
    "transit/keys/x",
    "database/creds/app/abc123",
    "pki/issue/workload/abc123",
    "auth/approle/login/abc123",
    "auth/approle2/login/abc123",
    "approle/login/abc123",
    "pki-other/issue/r/abc123",
    "pki/../sys/leases/x",
    "pki/%2e%2e/sys/x",
    "pki//issue/x",
)
OTHER_ACCOUNTS = ("999999999999", "000000000000", "111111111111")
PARTITIONS = ("aws", "aws-cn", "aws-us-gov", "aws-iso")
REGIONS = ("us-east-1", "eu-west-3", "cn-north-1", "us-gov-west-1")
HOSTILE_WORKLOAD_IDS = (
    "spiffe://demo.rescind/ns/payments/sa/api",
    "spiffe://demo.rescind/../admin",
    "spiffe://demo.rescind/%2e%2e/admin",
    "spiffe://demo.rescind//admin",
    "spiffe://demo.rescind/ns/payments/sa/\u0430pi",  # Cyrillic a
    "spiffe://demo.rescind/" + "x" * 2000,
    "spiffe://*",
    "i-0123456789abcdef0",
    "arn:aws-cn:ecs:cn-north-1:999999999999:task/c/0123456789abcdef0123456789abcdef",
)
accessor_shaped = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", min_size=24, max_size=24
)
hex_serials = st.lists(st.sampled_from([f"{i:02x}" for i in range(256)]), min_size=2, max_size=20).map(":".join)
uuids = st.uuids().map(str)


@dataclass(frozen=True)
class Protected:
    """A protected workload's identifiers (seeded by the test): none of them may ever be written to."""

    spiffe_id: str = "spiffe://protected.rescind/ns/core/sa/vault"
    token_accessors: tuple[str, ...] = ()
    entity_id: str = ""
    secret_id_accessors: tuple[str, ...] = ()
    role_name: str = ""
    serials: tuple[str, ...] = ()
    kv_paths: tuple[str, ...] = ()
    iam_user: str = ""
    access_key_ids: tuple[str, ...] = ()
    token_values: tuple[str, ...] = field(default=(), repr=False)

    def identifiers(self) -> tuple[str, ...]:
        return (
            *self.token_accessors,
            *((self.entity_id,) if self.entity_id else ()),
            *self.secret_id_accessors,
            *self.serials,
            *self.serials_dashed(),
            *self.kv_paths,
            *self.access_key_ids,
        )

    def serials_dashed(self) -> tuple[str, ...]:
        return tuple(serial.replace(":", "-") for serial in self.serials)


def _or_protected(values: st.SearchStrategy[str], protected: tuple[str, ...]) -> st.SearchStrategy[str]:
    return st.one_of(values, st.sampled_from(protected)) if protected else values


def hostile_mounts(configured: str) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(DANGEROUS_MOUNTS), st.just(configured))


def other_arns(service: str, resource: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(
        lambda partition, region, account, rest: f"arn:{partition}:{service}:{region}:{account}:{rest}",
        st.sampled_from(PARTITIONS),
        st.sampled_from(REGIONS),
        st.sampled_from((*OTHER_ACCOUNTS, "123456789012")),
        resource,
    )


def hostile_targets(protected: Protected) -> st.SearchStrategy[dict[str, Any]]:
    """A credential reference of every kind, its mount, path, id or ARN drawn from what must never be touched."""
    account = st.sampled_from((*OTHER_ACCOUNTS, "123456789012"))
    return st.one_of(
        st.builds(
            lambda a: {"kind": "vault_token", "accessor": a},
            _or_protected(
                st.one_of(accessor_shaped, accessor_shaped.map(lambda a: a + ".ns1ab")), protected.token_accessors
            ),
        ),
        st.builds(
            lambda m, r, a: {"kind": "approle_secret_id", "mount": m, "role_name": r, "accessor": a},
            hostile_mounts("approle"),
            st.sampled_from(("workload", "root", "..", "a" * 200, protected.role_name or "svc")),
            _or_protected(uuids, protected.secret_id_accessors),
        ),
        st.builds(lambda lease: {"kind": "vault_lease", "lease_id": lease}, st.sampled_from(DANGEROUS_LEASE_IDS)),
        st.builds(
            lambda m, s: {"kind": "pki_certificate", "mount": m, "serial": s},
            hostile_mounts("pki"),
            _or_protected(hex_serials, protected.serials),
        ),
        st.builds(
            lambda m, p: {"kind": "kv_secret", "mount": m, "path": p},
            hostile_mounts("secret"),
            st.one_of(st.sampled_from(DANGEROUS_PATHS), st.sampled_from(protected.kv_paths or ("apps/x",))),
        ),
        st.builds(lambda e: {"kind": "vault_entity", "entity_id": e}, _or_protected(uuids, (protected.entity_id,))),
        st.builds(
            lambda t, m, r: {"kind": "vault_ttl_target", "target_type": t, "mount": m, "role_name": r},
            st.sampled_from(("pki_role", "approle_role", "token_role")),
            st.one_of(hostile_mounts("pki"), st.just("token"), st.just("auth/approle")),
            st.sampled_from(("workload", "default", "root", protected.role_name or "svc")),
        )
        | st.builds(
            lambda m: {"kind": "vault_ttl_target", "target_type": "mount", "mount": m},
            st.one_of(hostile_mounts("pki"), st.just("auth/approle")),
        ),
        st.builds(
            lambda a, u, k: {"kind": "iam_access_key", "account_id": a, "user_name": u, "access_key_id": k},
            account,
            st.sampled_from(("bot", "root", protected.iam_user or "bot")),
            _or_protected(st.from_regex(r"AKIA[A-Z0-9]{16}", fullmatch=True), protected.access_key_ids),
        ),
        st.builds(
            lambda a, r: {"kind": "iam_role_sessions", "account_id": a, "role_name": r},
            account,
            st.sampled_from(("OrganizationAccountAccessRole", "RescindExecutionRole", "admin", "AWSServiceRoleForX")),
        ),
        st.builds(
            lambda arn: {"kind": "secrets_manager_secret", "secret_arn": arn},
            other_arns("secretsmanager", st.sampled_from(("secret:prod/db-AbCdEf", "secret:rescind/webhook-123456"))),
        ),
        st.builds(
            lambda arn, s: {"kind": "acm_pca_certificate", "ca_arn": arn, "serial": s},
            other_arns("acm-pca", uuids.map(lambda u: f"certificate-authority/{u}")),
            hex_serials,
        ),
    )


ACTION_KINDS = ("revoke", "disable", "rotate", "shorten_ttl", "delete")


def hostile_actions(protected: Protected) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda kind, target, params: {"kind": kind, "target": target, "reason": "fuzz", "params": params},
        st.sampled_from(ACTION_KINDS),
        hostile_targets(protected),
        st.one_of(
            st.just({}),
            st.fixed_dictionaries(
                {}, optional={"ttl_seconds": st.integers(1, 10**6), "keep_versions": st.integers(0, 3)}
            ),
        ),
    )
