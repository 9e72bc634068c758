"""Reading template.yaml, so the local stack builds what the template defines instead of a copy of it.

`load_template` reads the template as written (SAM); `translate_template` turns it into what CloudFormation is
asked to create, through the SAM translator itself, offline: the rules SAM makes of EventBridgeRule events, the
schedules it makes of ScheduleV2 events, the roles, permissions and policies it attaches.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"
# Where `with_s3_uris` pretends `sam package` uploaded the local folders (nothing is uploaded).
ARTIFACTS_BUCKET = "rescind-artifacts"
LOCAL_URI_PROPERTIES = ("CodeUri", "ContentUri", "DefinitionUri")
SAM_EVENT_OWNER_TYPES = frozenset({"AWS::Serverless::Function", "AWS::Serverless::StateMachine"})

_SHORT_FORMS = {
    "Ref": "Ref",
    "Condition": "Condition",
    "GetAtt": "Fn::GetAtt",
    "Sub": "Fn::Sub",
    "Join": "Fn::Join",
    "Select": "Fn::Select",
    "Split": "Fn::Split",
    "If": "Fn::If",
    "Equals": "Fn::Equals",
    "Not": "Fn::Not",
    "And": "Fn::And",
    "Or": "Fn::Or",
    "FindInMap": "Fn::FindInMap",
    "GetAZs": "Fn::GetAZs",
    "ImportValue": "Fn::ImportValue",
    "Base64": "Fn::Base64",
    "Cidr": "Fn::Cidr",
    "ToJsonString": "Fn::ToJsonString",
}


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation short forms (!Ref, !GetAtt, ...) as their long forms."""


def _short_form(name: str) -> Any:
    def construct(loader: _CfnLoader, node: yaml.Node) -> dict[str, Any]:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if name == "Fn::GetAtt" and isinstance(value, str):
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        return {name: value}

    return construct


for _tag, _long in _SHORT_FORMS.items():
    _CfnLoader.add_constructor(f"!{_tag}", _short_form(_long))


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with path.open() as handle:
        loaded = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} is not a CloudFormation template")
    return loaded


def with_s3_uris(template: dict[str, Any]) -> dict[str, Any]:
    """Local folders become s3:// locations, as `sam package` would make them; the translator needs that."""
    for resource in template.get("Resources", {}).values():
        properties = resource.get("Properties") or {}
        for name in LOCAL_URI_PROPERTIES:
            if isinstance(properties.get(name), str) and not properties[name].startswith("s3://"):
                properties[name] = f"s3://{ARTIFACTS_BUCKET}/" + properties[name].strip("/")
    return template


def translate_template(template: Mapping[str, Any], region: str = "us-east-1") -> dict[str, Any]:
    """The template after the SAM transform, as CloudFormation would receive it: no AWS::Serverless::* resource left.

    Offline: the translator gets a session that only knows its region and a managed-policy map that knows no
    policy (so AWS managed policies must be named by ARN). The local folders are s3:// locations in the result.
    """
    return json.loads(_translated_text(json.dumps(template, sort_keys=True), region))  # type: ignore[no-any-return]


@lru_cache(maxsize=8)
def _translated_text(template_text: str, region: str) -> str:
    import boto3
    from samtranslator.parser.parser import Parser  # type: ignore[import-untyped]
    from samtranslator.translator.translator import Translator  # type: ignore[import-untyped]

    source = with_s3_uris(json.loads(template_text))
    translator = Translator(None, Parser(), boto_session=boto3.Session(region_name=region))
    translated = translator.translate(source, parameter_values={}, get_managed_policy_map=dict)
    return json.dumps(translated)


def sam_event_resource_ids(template: Mapping[str, Any]) -> dict[str, str]:
    """For each event of a SAM function or state machine: the logical id of the resource SAM makes of it (its rule
    or schedule) → the event's name. SAM names that resource after its owner then the event: StartOffboardingFunction
    + Ec2InstanceTerminatedRule makes StartOffboardingFunctionEc2InstanceTerminatedRule."""
    found: dict[str, str] = {}
    for owner, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") in SAM_EVENT_OWNER_TYPES:
            for event_name in (resource.get("Properties") or {}).get("Events") or {}:
                found[f"{owner}{event_name}"] = str(event_name)
    return found


def resource_properties(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    resources = template.get("Resources", {})
    if logical_id not in resources:
        raise KeyError(f"template has no resource {logical_id!r}")
    properties: dict[str, Any] = resources[logical_id].get("Properties", {})
    return properties


def create_table_from_template(
    dynamodb: Any, logical_id: str, table_name: str, template: dict[str, Any] | None = None
) -> str:
    """Create a DynamoDB table with the key schema and indexes the template declares for `logical_id`."""
    props = resource_properties(template or load_template(), logical_id)
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if props.get("GlobalSecondaryIndexes"):
        kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    if props.get("StreamSpecification"):
        kwargs["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    dynamodb.create_table(**kwargs)
    return table_name
