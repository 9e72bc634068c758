"""template.yaml deployed onto moto: tables, topics, queues and buses, the functions (run in-process), the state
machines (from their ASL files, substitutions applied), and the EventBridge rules and Scheduler schedules as the SAM
translator makes them of the functions' events (`rescind_local.template.translate_template`).

Use inside moto (the `aws` fixture, or `local_aws()`):

    with deploy_template_to_moto(function_environment={"VAULT_ADDR": bao.addr, ...}, time_scale=0.01) as stack:
        stack.route_event(load_event("guardduty_finding.json"))
        described = stack.run_execution("LeakResponseStateMachine", {...})

Names are deterministic (`<stack name>-<logical id>` unless the template names the resource), and every
intrinsic in the parts the local stack uses (environment variables, DefinitionSubstitutions, rule targets)
is resolved against these local resources by `IntrinsicResolver`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from rescind_local.aws import LOCAL_ACCOUNT_ID, LOCAL_REGION
from rescind_local.eventbridge import (
    DeliveryLog,
    RuleMatch,
    RuleSpec,
    deploy_rules,
    eventbridge_targets,
    route_event,
    rules_from_template,
)
from rescind_local.lambdas import (
    DEFAULT_MEMORY_MB,
    DEFAULT_RUNTIME,
    DEFAULT_TIMEOUT_SECONDS,
    FunctionSpec,
    InProcessLambdas,
    create_local_function,
    in_process_lambdas,
    local_execution_role,
    reset_rescind_caches,
)
from rescind_local.stepfunctions import (
    create_local_state_machine,
    local_stepfunctions_fixes,
    substitute_definition,
    wait_for_execution,
)
from rescind_local.template import (
    REPO_ROOT,
    create_table_from_template,
    load_template,
    sam_event_resource_ids,
    translate_template,
)

FUNCTION_TYPES = frozenset({"AWS::Serverless::Function", "AWS::Lambda::Function"})
STATE_MACHINE_TYPES = frozenset({"AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine"})
# Rescind's own trigger events (the generic events and GitHub alerts) go on the template's trigger bus.
TRIGGER_BUS_LOGICAL_ID = "TriggerEventBus"
RESCIND_TRIGGER_SOURCES = frozenset({"rescind", "rescind.github"})


class UnresolvableIntrinsic(ValueError):
    """A template value the local resolver cannot turn into a local value."""


_NO_VALUE = object()


@dataclass
class LocalResource:
    """A template resource as the local stack names it: what Ref returns, and its GetAtt attributes."""

    logical_id: str
    resource_type: str
    ref: str
    attributes: dict[str, str] = field(default_factory=dict)


def _truncate(name: str, limit: int) -> str:
    return name[:limit]


def _local_name(stack_name: str, logical_id: str, limit: int = 64) -> str:
    return _truncate(f"{stack_name}-{logical_id}", limit)


def plan_local_resources(
    template: Mapping[str, Any],
    stack_name: str,
    *,
    account_id: str = LOCAL_ACCOUNT_ID,
    region: str = LOCAL_REGION,
    parameters: Mapping[str, Any] | None = None,
) -> dict[str, LocalResource]:
    """Local names and ARNs for every resource, decided before anything is created."""
    # Names may be !Sub'd from parameters and pseudo parameters only (CloudFormation allows nothing more).
    name_resolver = IntrinsicResolver(
        template, {}, stack_name, account_id=account_id, region=region, parameters=parameters
    )
    prefix = f"arn:aws:{{service}}:{region}:{account_id}"
    planned: dict[str, LocalResource] = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        kind = str(resource.get("Type", ""))
        props = resource.get("Properties") or {}

        def named(key: str, limit: int = 64, *, _props: Mapping[str, Any] = props, _id: str = logical_id) -> str:
            return str(name_resolver.resolve(_props[key])) if key in _props else _local_name(stack_name, _id, limit)

        if kind in FUNCTION_TYPES:
            name = named("FunctionName")
            arn = f"{prefix.format(service='lambda')}:function:{name}"
            planned[logical_id] = LocalResource(logical_id, kind, name, {"Arn": arn})
            if kind == "AWS::Serverless::Function" and "Role" not in props:
                planned[f"{logical_id}Role"] = _implicit_role(logical_id, account_id)
        elif kind in STATE_MACHINE_TYPES:
            name = named("Name" if kind == "AWS::Serverless::StateMachine" else "StateMachineName", 80)
            arn = f"{prefix.format(service='states')}:stateMachine:{name}"
            planned[logical_id] = LocalResource(logical_id, kind, arn, {"Arn": arn, "Name": name})
            if kind == "AWS::Serverless::StateMachine" and "Role" not in props:
                planned[f"{logical_id}Role"] = _implicit_role(logical_id, account_id)
        elif kind in {"AWS::DynamoDB::Table", "AWS::Serverless::SimpleTable"}:
            name = named("TableName", 255)
            arn = f"{prefix.format(service='dynamodb')}:table/{name}"
            planned[logical_id] = LocalResource(
                logical_id, kind, name, {"Arn": arn, "StreamArn": f"{arn}/stream/local"}
            )
        elif kind == "AWS::SNS::Topic":
            name = named("TopicName", 256)
            arn = f"{prefix.format(service='sns')}:{name}"
            planned[logical_id] = LocalResource(logical_id, kind, arn, {"TopicArn": arn, "TopicName": name})
        elif kind == "AWS::SQS::Queue":
            name = named("QueueName", 80)
            if props.get("FifoQueue") and not name.endswith(".fifo"):
                name = _truncate(name, 75) + ".fifo"
            arn = f"{prefix.format(service='sqs')}:{name}"
            url = f"https://sqs.{region}.amazonaws.com/{account_id}/{name}"
            planned[logical_id] = LocalResource(logical_id, kind, url, {"Arn": arn, "QueueName": name, "QueueUrl": url})
        elif kind == "AWS::Events::EventBus":
            name = named("Name", 256)
            arn = f"{prefix.format(service='events')}:event-bus/{name}"
            planned[logical_id] = LocalResource(logical_id, kind, name, {"Arn": arn, "Name": name})
        elif kind == "AWS::Events::Rule":
            name = named("Name")
            arn = f"{prefix.format(service='events')}:rule/{name}"
            planned[logical_id] = LocalResource(logical_id, kind, name, {"Arn": arn})
        elif kind == "AWS::IAM::Role":
            name = named("RoleName")
            planned[logical_id] = LocalResource(
                logical_id, kind, name, {"Arn": f"arn:aws:iam::{account_id}:role/{name}", "RoleId": f"AROA{logical_id}"}
            )
        elif kind in {"AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"}:
            name = named("LayerName", 140)
            planned[logical_id] = LocalResource(logical_id, kind, f"{prefix.format(service='lambda')}:layer:{name}:1")
        elif kind == "AWS::SecretsManager::Secret":
            # Ref is the ARN. moto picks the ARN's random suffix, so the created secret's ARN replaces this one.
            name = named("Name", 512)
            arn = f"{prefix.format(service='secretsmanager')}:secret:{name}-local0"
            planned[logical_id] = LocalResource(logical_id, kind, arn, {"Id": arn, "Name": name})
        elif kind == "AWS::S3::Bucket":
            name = named("BucketName", 63).lower()
            planned[logical_id] = LocalResource(
                logical_id, kind, name, {"Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}
            )
        elif kind == "AWS::Scheduler::Schedule":
            name = named("Name")
            arn = f"{prefix.format(service='scheduler')}:schedule/default/{name}"
            planned[logical_id] = LocalResource(logical_id, kind, name, {"Arn": arn})
        elif kind == "AWS::Logs::LogGroup":
            name = named("LogGroupName", 512)
            planned[logical_id] = LocalResource(
                logical_id, kind, name, {"Arn": f"{prefix.format(service='logs')}:log-group:{name}:*"}
            )
        elif kind == "AWS::SSM::Parameter":  # Ref is the name
            planned[logical_id] = LocalResource(logical_id, kind, named("Name", 2048))
        else:  # not created locally; a readable placeholder keeps references resolvable
            planned[logical_id] = LocalResource(logical_id, kind, _local_name(stack_name, logical_id))
    return planned


def _implicit_role(owner: str, account_id: str) -> LocalResource:
    name = f"{owner}Role"
    return LocalResource(name, "AWS::IAM::Role", name, {"Arn": f"arn:aws:iam::{account_id}:role/{name}"})


def _create_local_secret(client: Any, name: str, props: Mapping[str, Any]) -> str:
    """Create a Secrets Manager secret in moto as CloudFormation would; returns its ARN.

    GenerateSecretString gets a fresh random value here (PasswordLength, ExcludePunctuation,
    ExcludeCharacters, SecretStringTemplate + GenerateStringKey); a literal SecretString is stored as is.
    """
    import secrets
    import string

    request: dict[str, Any] = {"Name": name}
    if props.get("Description"):
        request["Description"] = str(props["Description"])
    generate = props.get("GenerateSecretString")
    if isinstance(generate, Mapping):
        alphabet = string.ascii_letters + string.digits
        if not generate.get("ExcludePunctuation"):
            alphabet += string.punctuation
        excluded = str(generate.get("ExcludeCharacters", ""))
        alphabet = "".join(character for character in alphabet if character not in excluded)
        length = int(generate.get("PasswordLength", 32))
        value = "".join(secrets.choice(alphabet) for _ in range(length))
        template = generate.get("SecretStringTemplate")
        key = generate.get("GenerateStringKey")
        if template and key:
            value = json.dumps({**json.loads(str(template)), str(key): value})
        request["SecretString"] = value
    elif "SecretString" in props:
        request["SecretString"] = str(props["SecretString"])
    arn: str = client.create_secret(**request)["ARN"]
    return arn


def _create_local_bucket(client: Any, name: str, props: Mapping[str, Any]) -> None:
    """An S3 bucket with the template's Object Lock, versioning, encryption and public access block (moto keeps
    and enforces them: a version under COMPLIANCE retention cannot be deleted)."""
    object_lock = str(props.get("ObjectLockEnabled", "")).lower() == "true"
    client.create_bucket(Bucket=name, **({"ObjectLockEnabledForBucket": True} if object_lock else {}))
    lock_configuration = props.get("ObjectLockConfiguration")
    if object_lock and lock_configuration:
        retention = dict((lock_configuration.get("Rule") or {}).get("DefaultRetention") or {})
        for period in ("Days", "Years"):  # a resolved parameter may arrive as text
            if period in retention:
                retention[period] = int(retention[period])
        configuration: dict[str, Any] = {"ObjectLockEnabled": "Enabled"}
        if retention:
            configuration["Rule"] = {"DefaultRetention": retention}
        client.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration=configuration)
    if (props.get("VersioningConfiguration") or {}).get("Status") == "Enabled":
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    if props.get("BucketEncryption"):
        # CloudFormation's ServerSideEncryptionByDefault is the API's ApplyServerSideEncryptionByDefault.
        rules = [
            {
                ("ApplyServerSideEncryptionByDefault" if key == "ServerSideEncryptionByDefault" else key): value
                for key, value in rule.items()
            }
            for rule in props["BucketEncryption"].get("ServerSideEncryptionConfiguration") or []
        ]
        client.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    if props.get("PublicAccessBlockConfiguration"):
        client.put_public_access_block(
            Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
        )


@dataclass(frozen=True)
class ScheduleSpec:
    """An AWS::Scheduler::Schedule of the translated template (SAM makes one of each ScheduleV2 event), its
    intrinsics resolved locally."""

    logical_id: str
    target_logical_id: str  # the function (or state machine) its Target.Arn names
    input: Any  # Target.Input, parsed from its JSON text
    expression: str
    time_zone: str
    dead_letter_arn: str | None
    retry_policy: Mapping[str, Any] | None
    state: str


def schedules_from_template(template: Mapping[str, Any], resolve: Callable[[Any], Any]) -> list[ScheduleSpec]:
    """Every EventBridge Scheduler schedule of a CloudFormation template (give it the translated one, which holds
    the schedules SAM makes of ScheduleV2 events), with the logical id of the resource it invokes."""
    found: list[ScheduleSpec] = []
    for logical_id, resource in iter_template_resources(template, frozenset({"AWS::Scheduler::Schedule"})):
        props = resource.get("Properties") or {}
        target = props.get("Target") or {}
        arn = target.get("Arn")
        # SAM names a function by !GetAtt <function>.Arn, a state machine by !Ref <state machine>.
        named = (arn.get("Fn::GetAtt") or [arn.get("Ref")]) if isinstance(arn, dict) else None
        if not isinstance(named, list) or not isinstance(named[0], str):
            raise UnresolvableIntrinsic(f"{logical_id}: Target.Arn must name a resource of the template, got {arn!r}")
        raw_input = resolve(target.get("Input", "{}"))
        found.append(
            ScheduleSpec(
                logical_id=logical_id,
                target_logical_id=str(named[0]),
                input=json.loads(raw_input) if isinstance(raw_input, str) else raw_input,
                expression=str(resolve(props.get("ScheduleExpression", ""))),
                time_zone=str(resolve(props.get("ScheduleExpressionTimezone", "UTC"))),
                dead_letter_arn=resolve((target.get("DeadLetterConfig") or {}).get("Arn")),
                retry_policy=resolve(target.get("RetryPolicy")),
                state=str(resolve(props.get("State", "ENABLED"))),
            )
        )
    return found


class IntrinsicResolver:
    """Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::Select, Fn::Split, Fn::If (with Conditions), Fn::ToJsonString
    over the local resources, the template's parameters (defaults, or the given overrides) and pseudo
    parameters. Anything else raises UnresolvableIntrinsic, naming it."""

    def __init__(
        self,
        template: Mapping[str, Any],
        resources: Mapping[str, LocalResource],
        stack_name: str,
        *,
        account_id: str = LOCAL_ACCOUNT_ID,
        region: str = LOCAL_REGION,
        parameters: Mapping[str, Any] | None = None,
    ) -> None:
        self.template = template
        self.resources = resources
        declared = template.get("Parameters") or {}
        self.parameters: dict[str, Any] = {
            name: spec["Default"] for name, spec in declared.items() if isinstance(spec, dict) and "Default" in spec
        }
        self.parameters.update(parameters or {})
        self.pseudo: dict[str, Any] = {
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::Partition": "aws",
            "AWS::StackName": stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/local",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": _NO_VALUE,
        }

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in (self.resolve(item) for item in value) if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self._ref(argument)
            if key == "Fn::GetAtt":
                return self._get_att(argument)
            if key == "Fn::Sub":
                return self._sub(argument)
            if key == "Fn::Join":
                separator, items = argument
                return str(separator).join(str(item) for item in self.resolve(items))
            if key == "Fn::Select":
                index, items = argument
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                separator, text = argument
                return str(self.resolve(text)).split(separator)
            if key == "Fn::If":
                condition, if_true, if_false = argument
                return self.resolve(if_true if self.condition(condition) else if_false)
            if key == "Fn::ToJsonString":
                return json.dumps(self.resolve(argument), separators=(",", ":"))
            if key.startswith("Fn::") or key == "Condition":
                raise UnresolvableIntrinsic(f"the local stack cannot resolve {key}: {argument!r}")
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not _NO_VALUE}

    def condition(self, name: str) -> bool:
        conditions = self.template.get("Conditions") or {}
        if name not in conditions:
            raise UnresolvableIntrinsic(f"no condition {name!r} in the template")
        return self._evaluate_condition(conditions[name])

    def _evaluate_condition(self, expression: Any) -> bool:
        if isinstance(expression, dict) and len(expression) == 1:
            ((key, argument),) = expression.items()
            if key == "Fn::Equals":
                left, right = (self.resolve(item) for item in argument)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self._evaluate_condition(argument[0])
            if key == "Fn::And":
                return all(self._evaluate_condition(item) for item in argument)
            if key == "Fn::Or":
                return any(self._evaluate_condition(item) for item in argument)
            if key == "Condition":
                return self.condition(argument)
        raise UnresolvableIntrinsic(f"unsupported condition expression: {expression!r}")

    def _ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            return self.resources[name].ref
        if name in (self.template.get("Parameters") or {}):
            raise UnresolvableIntrinsic(f"Ref to parameter {name!r}, which has no Default: pass parameters={{...}}")
        raise UnresolvableIntrinsic(f"Ref to {name!r}: no such parameter or resource")

    def _get_att(self, argument: Any) -> Any:
        logical_id, attribute = argument if isinstance(argument, list) else str(argument).split(".", 1)
        resource = self.resources.get(str(logical_id))
        if resource is None:
            raise UnresolvableIntrinsic(f"GetAtt {logical_id}.{attribute}: no such resource")
        if attribute not in resource.attributes:
            raise UnresolvableIntrinsic(
                f"GetAtt {logical_id}.{attribute}: not known locally for {resource.resource_type}"
            )
        return resource.attributes[attribute]

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            text, variables = argument
            local = {name: self.resolve(item) for name, item in variables.items()}
        else:
            text, local = argument, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in local:
                return str(local[name])
            if "." in name and name not in self.pseudo:
                logical_id, attribute = name.split(".", 1)
                return str(self._get_att([logical_id, attribute]))
            return str(self._ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, str(text))


def _function_specs(
    template: Mapping[str, Any],
    resources: Mapping[str, LocalResource],
    resolver: IntrinsicResolver,
    base_dir: Path,
    extra_environment: Mapping[str, str],
) -> list[FunctionSpec]:
    globals_function = (template.get("Globals") or {}).get("Function") or {}
    global_variables = (globals_function.get("Environment") or {}).get("Variables") or {}
    specs = []
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = {**globals_function, **(resource.get("Properties") or {})}
        own_variables = (((resource.get("Properties") or {}).get("Environment")) or {}).get("Variables") or {}
        variables = resolver.resolve({**global_variables, **own_variables})
        environment = {name: _environment_value(value) for name, value in variables.items()}
        environment.update(extra_environment)
        code_uri = resolver.resolve(props.get("CodeUri", "."))
        if not isinstance(code_uri, str) or code_uri.startswith("s3://"):
            raise UnresolvableIntrinsic(f"{logical_id}: CodeUri must be a local folder, got {code_uri!r}")
        specs.append(
            FunctionSpec(
                function_name=resources[logical_id].ref,
                code_dir=(base_dir / code_uri).resolve(),
                handler=str(resolver.resolve(props.get("Handler", "app.lambda_handler"))),
                environment=environment,
                runtime=str(resolver.resolve(props.get("Runtime", DEFAULT_RUNTIME))),
                memory_size=int(resolver.resolve(props.get("MemorySize", DEFAULT_MEMORY_MB))),
                timeout=int(resolver.resolve(props.get("Timeout", DEFAULT_TIMEOUT_SECONDS))),
                logical_id=logical_id,
            )
        )
    return specs


def _environment_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def state_machine_definition(
    template: Mapping[str, Any], logical_id: str, resolver: IntrinsicResolver, base_dir: Path = REPO_ROOT
) -> dict[str, Any]:
    """The definition the template deploys for one state machine, with DefinitionSubstitutions applied."""
    props = (template.get("Resources") or {})[logical_id].get("Properties") or {}
    if "DefinitionUri" in props:
        uri = resolver.resolve(props["DefinitionUri"])
        if not isinstance(uri, str) or uri.startswith("s3://"):
            raise UnresolvableIntrinsic(f"{logical_id}: DefinitionUri must be a local file, got {uri!r}")
        text = (base_dir / uri).read_text()
    elif "Definition" in props:
        text = json.dumps(props["Definition"])
    elif "DefinitionString" in props:
        text = str(resolver.resolve(props["DefinitionString"]))
    else:
        raise UnresolvableIntrinsic(f"{logical_id}: no DefinitionUri, Definition or DefinitionString")
    substitutions = {
        name: str(resolver.resolve(value)) for name, value in (props.get("DefinitionSubstitutions") or {}).items()
    }
    definition: dict[str, Any] = json.loads(substitute_definition(text, substitutions))
    return definition


# A rule or a schedule: what SAM makes of a function's or state machine's event.
_Translated = TypeVar("_Translated", RuleSpec, ScheduleSpec)


@dataclass
class LocalStack:
    """The template deployed on moto, with handlers in-process. Enter it inside moto; leave it to unpatch."""

    template: dict[str, Any] = field(default_factory=load_template)
    stack_name: str = "rescind-local"
    base_dir: Path = REPO_ROOT
    parameters: Mapping[str, Any] = field(default_factory=dict)
    function_environment: Mapping[str, str] = field(default_factory=dict)
    time_scale: float | None = None
    account_id: str = LOCAL_ACCOUNT_ID
    region: str = LOCAL_REGION
    # Keep each function's settings and clients between invocations, as a warm Lambda does (the benchmarks);
    # by default every invocation is a cold start, so no test depends on what an earlier one built.
    warm_functions: bool = False

    # The template after the SAM transform: where the rules and schedules are read from.
    translated: dict[str, Any] = field(init=False, default_factory=dict)
    resources: dict[str, LocalResource] = field(init=False, default_factory=dict)
    functions: dict[str, FunctionSpec] = field(init=False, default_factory=dict)
    state_machines: dict[str, str] = field(init=False, default_factory=dict)
    rules: list[RuleSpec] = field(init=False, default_factory=list)
    schedules: list[ScheduleSpec] = field(init=False, default_factory=list)
    lambdas: InProcessLambdas = field(init=False, default_factory=InProcessLambdas)
    deliveries: DeliveryLog = field(init=False, default_factory=DeliveryLog)
    _patches: ExitStack | None = field(init=False, default=None, repr=False)

    # --- lifecycle ---

    def start(self) -> LocalStack:
        if self._patches is not None:
            return self
        if self.warm_functions and self.lambdas.warm_caches is None:
            self.lambdas.warm_caches = {}
        patches = ExitStack()
        patches.enter_context(in_process_lambdas(self.lambdas))
        patches.enter_context(local_stepfunctions_fixes(self.time_scale))
        patches.enter_context(eventbridge_targets(self.deliveries))
        self._patches = patches
        try:
            reset_rescind_caches()
            self._deploy()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        patches, self._patches = self._patches, None
        if patches is not None:
            patches.close()
        reset_rescind_caches()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _deploy(self) -> None:
        import boto3

        session = boto3.session.Session(region_name=self.region)
        self.translated = translate_template(self.template, self.region)
        # The translation's resources (rules, schedules, roles SAM generates...), then the template's own names.
        self.resources = {
            logical_id: resource
            for template in (self.translated, self.template)
            for logical_id, resource in plan_local_resources(
                template, self.stack_name, account_id=self.account_id, region=self.region, parameters=self.parameters
            ).items()
        }
        role_arn = local_execution_role(session.client("iam"))
        self._create_data_resources(session)
        resolver = self.resolver()
        for spec in _function_specs(self.template, self.resources, resolver, self.base_dir, self.function_environment):
            create_local_function(session.client("lambda"), spec, role_arn)
            self.lambdas.register(spec)
            self.functions[spec.logical_id] = spec
        sfn = session.client("stepfunctions")
        for logical_id, resource in (self.template.get("Resources") or {}).items():
            if resource.get("Type") not in STATE_MACHINE_TYPES:
                continue
            definition = state_machine_definition(self.template, logical_id, resolver, self.base_dir)
            machine_type = str(resolver.resolve((resource.get("Properties") or {}).get("Type", "STANDARD")))
            name = self.resources[logical_id].attributes["Name"]
            self.state_machines[logical_id] = create_local_state_machine(sfn, name, definition, role_arn, machine_type)
        self.rules = rules_from_template(self.translated, resolver.resolve, stack_name=self.stack_name)
        self.schedules = schedules_from_template(self.translated, resolver.resolve)
        deploy_rules(session.client("events"), self.rules)

    def _create_data_resources(self, session: Any) -> None:
        """Tables, topics, queues, buses and SSM parameters, created under their planned names; actual URLs and
        ARNs recorded."""
        for logical_id, resource in self.resources.items():
            # A resource SAM generates (a dead-letter queue of Type SQS) is only in the translated template.
            template = self.template if logical_id in (self.template.get("Resources") or {}) else self.translated
            props = ((template.get("Resources") or {}).get(logical_id) or {}).get("Properties") or {}
            kind = resource.resource_type
            if kind == "AWS::DynamoDB::Table":
                dynamodb = session.client("dynamodb")
                create_table_from_template(dynamodb, logical_id, resource.ref, template)
                stream = dynamodb.describe_table(TableName=resource.ref)["Table"].get("LatestStreamArn")
                if stream:
                    resource.attributes["StreamArn"] = stream
            elif kind == "AWS::Serverless::SimpleTable":
                key = props.get("PrimaryKey") or {"Name": "id", "Type": "String"}
                attribute_type = {"String": "S", "Number": "N", "Binary": "B"}[key.get("Type", "String")]
                session.client("dynamodb").create_table(
                    TableName=resource.ref,
                    AttributeDefinitions=[{"AttributeName": key["Name"], "AttributeType": attribute_type}],
                    KeySchema=[{"AttributeName": key["Name"], "KeyType": "HASH"}],
                    BillingMode="PAY_PER_REQUEST",
                )
            elif kind == "AWS::SNS::Topic":
                attributes = {"FifoTopic": "true"} if props.get("FifoTopic") else {}
                session.client("sns").create_topic(Name=resource.attributes["TopicName"], Attributes=attributes)
            elif kind == "AWS::SQS::Queue":
                attributes = {"FifoQueue": "true"} if props.get("FifoQueue") else {}
                url = session.client("sqs").create_queue(
                    QueueName=resource.attributes["QueueName"], Attributes=attributes
                )["QueueUrl"]
                resource.ref = resource.attributes["QueueUrl"] = url
            elif kind == "AWS::Events::EventBus":
                session.client("events").create_event_bus(Name=resource.ref)
            elif kind == "AWS::S3::Bucket":
                _create_local_bucket(session.client("s3"), resource.ref, self.resolver().resolve(props))
            elif kind == "AWS::SSM::Parameter":  # the stored settings the functions read at cold start
                parameter = self.resolver().resolve(props)
                session.client("ssm").put_parameter(
                    Name=resource.ref,
                    Value=str(parameter["Value"]),
                    Type=parameter.get("Type", "String"),
                    Tier=parameter.get("Tier", "Standard"),
                )
            elif kind == "AWS::SecretsManager::Secret":
                secret_props = self.resolver().resolve(props)
                arn = _create_local_secret(session.client("secretsmanager"), resource.attributes["Name"], secret_props)
                resource.ref = resource.attributes["Id"] = arn

    # --- lookups ---

    def resolver(self) -> IntrinsicResolver:
        return IntrinsicResolver(
            self.template,
            self.resources,
            self.stack_name,
            account_id=self.account_id,
            region=self.region,
            parameters=self.parameters,
        )

    def physical_id(self, logical_id: str) -> str:
        """What `Ref` returns for the resource locally (a table's name, a state machine's ARN, a queue's URL)."""
        return self.resources[logical_id].ref

    def function_name(self, logical_id: str) -> str:
        return self.functions[logical_id].function_name

    def state_machine_arn(self, logical_id: str) -> str:
        return self.state_machines[logical_id]

    # --- running things ---

    def invoke(self, logical_id: str, event: Any) -> tuple[Any, str | None]:
        """Invoke a function through moto's Lambda API; returns (payload, FunctionError or None)."""
        import boto3

        answer = boto3.client("lambda", region_name=self.region).invoke(
            FunctionName=self.function_name(logical_id), Payload=json.dumps(event).encode()
        )
        return json.loads(answer["Payload"].read() or b"null"), answer.get("FunctionError")

    def start_execution(self, logical_id: str, execution_input: Any, name: str | None = None) -> str:
        import boto3

        request = {"stateMachineArn": self.state_machine_arn(logical_id), "input": json.dumps(execution_input)}
        if name is not None:
            request["name"] = name
        started = boto3.client("stepfunctions", region_name=self.region).start_execution(**request)
        arn: str = started["executionArn"]
        return arn

    def run_execution(
        self, logical_id: str, execution_input: Any, *, name: str | None = None, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Start an execution and wait for it to finish; returns describe_execution."""
        import boto3

        arn = self.start_execution(logical_id, execution_input, name)
        return wait_for_execution(boto3.client("stepfunctions", region_name=self.region), arn, timeout)

    def route_event(self, event: Mapping[str, Any], event_bus_name: str | None = None) -> list[RuleMatch]:
        """Match a whole event (e.g. from events/) against the template's rules on one bus and deliver it.

        By default, the bus such an event is put on: Rescind's own trigger sources on the template's trigger bus
        (when it has one), every other event on the default bus.
        """
        return route_event(event, self.rules, event_bus_name=event_bus_name or self.bus_for(event), region=self.region)

    def bus_for(self, event: Mapping[str, Any]) -> str:
        trigger_bus = self.resources.get(TRIGGER_BUS_LOGICAL_ID)
        if trigger_bus is not None and event.get("source") in RESCIND_TRIGGER_SOURCES:
            return trigger_bus.ref
        return "default"

    def schedule(self, name: str) -> ScheduleSpec:
        """A schedule by its logical id after translation, or by the name of the ScheduleV2 event SAM made it of."""
        return self._translated_resource("schedule", self.schedules, name)

    def run_schedule(self, name: str) -> tuple[Any, str | None]:
        """Invoke the schedule's target with its Input, as EventBridge Scheduler would when it fires.

        The scheduler invokes asynchronously; here the call waits, so the caller sees the target's result (or
        its error type) at once. Returns (payload, FunctionError or None).
        """
        schedule = self.schedule(name)
        if schedule.target_logical_id not in self.functions:
            raise KeyError(f"{name} targets {schedule.target_logical_id!r}, which is not a local function")
        return self.invoke(schedule.target_logical_id, schedule.input)

    def rule(self, name: str) -> RuleSpec:
        """A rule by its logical id after translation, or by the name of the SAM event it was made of."""
        return self._translated_resource("rule", self.rules, name)

    def _translated_resource(self, what: str, found: Sequence[_Translated], name: str) -> _Translated:
        event_names = sam_event_resource_ids(self.template)
        matching = [item for item in found if name in (item.logical_id, event_names.get(item.logical_id))]
        if not matching:
            raise KeyError(f"the template has no {what} {name!r}")
        if len(matching) > 1:
            raise KeyError(f"{name!r} names {len(matching)} {what}s of the template: give the logical id")
        return matching[0]


def deploy_template_to_moto(
    template: dict[str, Any] | None = None,
    *,
    stack_name: str = "rescind-local",
    base_dir: Path = REPO_ROOT,
    parameters: Mapping[str, Any] | None = None,
    function_environment: Mapping[str, str] | None = None,
    time_scale: float | None = None,
    warm_functions: bool = False,
) -> LocalStack:
    """Deploy the template (template.yaml by default) onto the active moto; returns the started LocalStack.

    Use it as `with deploy_template_to_moto(...) as stack:` (or call `stack.stop()`) to lift its patches.
    `function_environment` is added to every function's environment (e.g. the local OpenBao's VAULT_ADDR and
    a VAULT_TOKEN, which the deployed template never has). `time_scale` is the local-only speed-up of
    `rescind_local.stepfunctions.local_stepfunctions_fixes`. `warm_functions` keeps each function's cached
    settings and clients between its invocations, as a warm Lambda does; by default each one starts cold.
    """
    stack = LocalStack(
        template=template if template is not None else load_template(),
        stack_name=stack_name,
        base_dir=base_dir,
        parameters=dict(parameters or {}),
        function_environment=dict(function_environment or {}),
        time_scale=time_scale,
        warm_functions=warm_functions,
    )
    return stack.start()


def iter_template_resources(template: Mapping[str, Any], types: frozenset[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(logical id, resource) for each resource of the given types."""
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") in types:
            yield logical_id, resource
