"""What a deployed function's code can call on AWS, and on which of the stack's resources, read from its source.

From `functions/<name>/app.py`, follow the code it can run (`reachable`): the names each reached function uses,
resolved through the modules' imports (those inside functions too) to the `rescind.*` definitions they name. A
reached class brings in the methods whose names the reached code uses (and its dunders): the adapters are called
through objects, so a method is followed by its name. The runtime factories are ordinary functions here: a
handler that calls `get_ledger()` reaches `DynamoDbLedger`, one that does not, does not.

Then each boto3 call in that code (`aws_calls`), and where its resource argument comes from (`origins`): an
environment variable (`get_settings().ledger_table_name`, `os.environ["X"]`, a factory's `_required("X")`...),
followed through assignments, parameters (at the call sites the handler reaches), `self.` attributes (at the
constructor calls) and return values; or data (an ARN or a name from the event), when it comes from nowhere
else. tests/infra/test_code_permissions.py compares that with each role's policy.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import botocore.session
from botocore import xform_name

from tests.infra.policy_scan import AWS_SERVICES, IAM_ACTION_OF_OPERATION

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNTIME_ROOT = REPO_ROOT / "shared"
PACKAGE = "rescind"
MAX_DEPTH = 40


# --- where a value comes from ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvVar:
    name: str


@dataclass(frozen=True)
class Literal:
    value: str


@dataclass(frozen=True)
class Data:
    """A value from the event, a record or another call: not a resource of the stack."""


@dataclass(frozen=True)
class SettingsObject:
    """`get_settings()`, `X.from_environ()`: each attribute read from it is an environment variable."""

    cls: tuple[str, str] | None  # the settings class (module, name), for its properties


Origin = EnvVar | Literal | Data | SettingsObject
DATA = Data()


# --- the source -----------------------------------------------------------------------------------------------


@dataclass
class Module:
    name: str
    tree: ast.Module
    parents: dict[ast.AST, ast.AST] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node

    @cached_property
    def top_level(self) -> dict[str, ast.AST]:
        """Each name the module defines or imports at its top level, and the statement that binds it."""
        found: dict[str, ast.AST] = {}
        for statement in self.tree.body:
            for name in bound_names(statement):
                found.setdefault(name, statement)
        return found

    def scopes_of(self, node: ast.AST) -> list[ast.AST]:
        """The functions and classes around a node, innermost first."""
        scopes: list[ast.AST] = []
        current = self.parents.get(node)
        while current is not None:
            if isinstance(current, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
                scopes.append(current)
            current = self.parents.get(current)
        return scopes


def bound_names(statement: ast.AST) -> list[str]:
    if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [statement.name]
    if isinstance(statement, ast.Import | ast.ImportFrom):
        return [(alias.asname or alias.name).split(".")[0] for alias in statement.names]
    if isinstance(statement, ast.Assign):
        return [n.id for target in statement.targets for n in ast.walk(target) if isinstance(n, ast.Name)]
    if isinstance(statement, ast.AnnAssign | ast.AugAssign) and isinstance(statement.target, ast.Name):
        return [statement.target.id]
    if isinstance(statement, ast.If | ast.Try):
        return [name for child in ast.iter_child_nodes(statement) for name in bound_names(child)]
    return []


Definition = tuple[str, ast.AST]  # (module name, the def, class or assignment)


class Source:
    """The runtime package and one handler, parsed."""

    def __init__(self, handler: Path) -> None:
        self.modules: dict[str, Module] = {}
        for path in sorted((RUNTIME_ROOT / PACKAGE).rglob("*.py")):
            parts = path.relative_to(RUNTIME_ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            self.modules[name] = Module(name, ast.parse(path.read_text()))
        self._locals: dict[tuple[str, int], dict[str, ast.AST]] = {}
        self.handler = "handler"
        self.modules[self.handler] = Module(self.handler, ast.parse(handler.read_text()))

    def resolve_in_module(self, module: str, name: str, seen: frozenset[str] = frozenset()) -> Definition | str | None:
        """What `name` means at the top level of `module`: a definition, a module's name, or None (not ours)."""
        if (key := f"{module}.{name}") in seen:
            return None
        if f"{module}.{name}" in self.modules:
            return f"{module}.{name}"
        statement = self.modules[module].top_level.get(name) if module in self.modules else None
        if statement is None:
            return None
        if isinstance(statement, ast.ImportFrom | ast.Import):
            return self._imported(statement, name, seen | {key})
        return module, statement

    def _imported(
        self, statement: ast.Import | ast.ImportFrom, name: str, seen: frozenset[str]
    ) -> Definition | str | None:
        for alias in statement.names:
            if (alias.asname or alias.name).split(".")[0] != name:
                continue
            if isinstance(statement, ast.Import):
                target = alias.name if alias.asname else alias.name.split(".")[0]
                return target if target in self.modules else None
            if statement.module and statement.module.split(".")[0] == PACKAGE:
                return self.resolve_in_module(statement.module, alias.name, seen)
        return None

    def resolve_name(self, module: str, node: ast.AST, name: str) -> Definition | str | None:
        """What a name means where `node` is: an import or a def inside an enclosing function, else the module's."""
        mod = self.modules[module]
        for scope in mod.scopes_of(node):
            if isinstance(scope, ast.ClassDef | ast.Lambda):
                continue
            statement = self._local_bindings(module, scope).get(name)
            if isinstance(statement, ast.Import | ast.ImportFrom):
                return self._imported(statement, name, frozenset())
            if statement is not None:
                return module, statement
        return self.resolve_in_module(module, name)

    def _local_bindings(self, module: str, scope: ast.AST) -> dict[str, ast.AST]:
        """The imports anywhere in a function, and the functions and classes it defines directly."""
        key = (module, id(scope))
        if key not in self._locals:
            found: dict[str, ast.AST] = {}
            for statement in ast.walk(scope):
                if isinstance(statement, ast.Import | ast.ImportFrom):
                    found.update(dict.fromkeys(bound_names(statement), statement))
                elif (
                    isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                    and statement is not scope
                    and self.modules[module].parents.get(statement) is scope
                ):
                    found[statement.name] = statement
            self._locals[key] = found
        return self._locals[key]

    def resolve_expression(self, module: str, node: ast.expr) -> Definition | str | None:
        """A Name or a dotted Attribute (`rescind.x.f`, an imported module's `f`) as a definition or module."""
        if isinstance(node, ast.Name):
            return self.resolve_name(module, node, node.id)
        if isinstance(node, ast.Attribute):
            base = self.resolve_expression(module, node.value)
            if isinstance(base, str):
                return self.resolve_in_module(base, node.attr)
        return None


# --- what the handler can run ---------------------------------------------------------------------------------


def _class_members(cls: ast.ClassDef) -> Iterator[ast.AST]:
    yield from cls.body


def _function_body_nodes(function: ast.AST) -> Iterator[ast.AST]:
    """A function's code without its own annotations (they create nothing); nested functions are included."""
    if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
        roots: list[ast.AST] = [*function.body, *function.decorator_list, *function.args.defaults]
        roots += [d for d in function.args.kw_defaults if d is not None]
    else:
        roots = [function]
    for root in roots:
        for node in ast.walk(root):
            if isinstance(node, ast.arg | ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            yield node


# A credential kind's registration, `KindSpec(...)`: each keyword is a part of the kind (its discovery, its leak
# locators, its report...) that the flows read by name (`spec.discover(...)`), each flow only the parts it needs.
SPEC_CLASS = ("rescind.kinds", "KindSpec")


@dataclass
class Reach:
    source: Source
    units: set[tuple[str, int]] = field(default_factory=set)  # (module, id(node)) of reached code
    nodes: dict[tuple[str, int], ast.AST] = field(default_factory=dict)
    classes: dict[tuple[str, int], ast.ClassDef] = field(default_factory=dict)
    attribute_names: set[str] = field(default_factory=set)
    # The parts of the kinds' specs seen so far: (module, field name, value), reached once the code reads that
    # field; `unreached` holds the nodes inside those not reached yet.
    spec_parts: list[tuple[str, str, ast.expr]] = field(default_factory=list)
    unreached: set[int] = field(default_factory=set)

    def functions(self) -> Iterator[tuple[str, ast.AST]]:
        """The reached functions and statements (a class's methods are reached one by one, not with it)."""
        for (module, _), node in self.nodes.items():
            if not isinstance(node, ast.ClassDef):
                yield module, node

    def walk(self, unit: ast.AST) -> Iterator[ast.AST]:
        """`ast.walk` of a reached unit, without the spec parts in it that are not reached."""
        todo = [unit]
        while todo:
            node = todo.pop()
            if id(node) in self.unreached:
                continue
            yield node
            todo.extend(ast.iter_child_nodes(node))

    def defer_spec_parts(self, module: str, node: ast.AST) -> None:
        """A `KindSpec(...)` call's keywords become parts reached by their name, not with the call."""
        if not isinstance(node, ast.Call) or self.source.resolve_expression(module, node.func) != self._spec_class:
            return
        for keyword in node.keywords:
            seen = (module, id(keyword.value)) in self.units or any(v is keyword.value for _, _, v in self.spec_parts)
            if keyword.arg is not None and not seen:
                self.spec_parts.append((module, keyword.arg, keyword.value))
                self.unreached |= {id(n) for n in ast.walk(keyword.value)}

    @cached_property
    def _spec_class(self) -> Definition | None:
        module, name = SPEC_CLASS
        found = self.source.resolve_in_module(module, name)
        return found if isinstance(found, tuple) else None


def reachable(source: Source) -> Reach:
    reach = Reach(source)
    pending: list[tuple[str, ast.AST]] = []

    def add(module: str, node: ast.AST) -> None:
        key = (module, id(node))
        if key in reach.units:
            return
        reach.units.add(key)
        reach.nodes[key] = node
        pending.append((module, node))

    # The handler module runs all of its top level at cold start; its functions are its entry points.
    for statement in source.modules[source.handler].tree.body:
        add(source.handler, statement)
    while True:
        while pending:
            module, node = pending.pop()
            if isinstance(node, ast.ClassDef):
                reach.classes[(module, id(node))] = node
                for base in node.bases:
                    target = source.resolve_expression(module, base)
                    if isinstance(target, tuple):
                        add(*target)
                for member in _class_members(node):
                    if not isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef):
                        add(module, member)  # fields and class attributes
                continue
            nested = [
                n for n in ast.walk(node) if n is not node and isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            ]
            for function in nested:  # closures defined in reached code can be returned or passed on
                add(module, function)
            for child in (
                _function_body_nodes(node)
                if not isinstance(node, ast.stmt) or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                else ast.walk(node)
            ):
                if id(child) in reach.unreached:
                    continue
                reach.defer_spec_parts(module, child)
                if isinstance(child, ast.Attribute):
                    reach.attribute_names.add(child.attr)
                if isinstance(child, ast.Name | ast.Attribute) and isinstance(getattr(child, "ctx", None), ast.Load):
                    target = source.resolve_expression(module, child)
                    if isinstance(target, tuple):
                        add(*target)
        # A reached class's methods, by the names the reached code uses; a credential handler's only when the
        # code can make a reference of one of its kinds (the engine dispatches by kind).
        grew = False
        for module, part, value in reach.spec_parts:
            if part in reach.attribute_names and (module, id(value)) not in reach.units:
                reach.unreached -= {id(n) for n in ast.walk(value)}
                add(module, value)
                grew = True
        produced = produced_kinds(reach)
        for (module, _), cls in list(reach.classes.items()):
            handled = handler_kinds(cls)
            if handled is not None and not handled & produced:
                continue
            for member in cls.body:
                if not isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                dunder = member.name.startswith("__") and member.name.endswith("__")
                if (dunder or member.name in reach.attribute_names) and (module, id(member)) not in reach.units:
                    add(module, member)
                    grew = True
        if not grew and not pending:
            return reach


def _class_attribute(cls: ast.ClassDef, name: str) -> ast.AST | None:
    for statement in cls.body:
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and statement.target.id == name
        ):
            return statement
        if isinstance(statement, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in statement.targets
        ):
            return statement
    return None


def _kind_names(node: ast.AST | None) -> set[str]:
    """The `CredentialKind.X` a class attribute names."""
    if node is None:
        return set()
    return {
        n.attr
        for n in ast.walk(node)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "CredentialKind"
    }


def handler_kinds(cls: ast.ClassDef) -> set[str] | None:
    """The kinds a credential handler acts on: its `kinds`, or the kind its constructor gives `KindHandler`
    (`super().__init__(CredentialKind.X, ...)`); None for any other class."""
    kinds = _class_attribute(cls, "kinds")
    if kinds is not None:
        return _kind_names(kinds)
    for member in cls.body:
        if isinstance(member, ast.FunctionDef) and member.name == "__init__":
            for node in ast.walk(member):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "__init__"
                    and isinstance(node.func.value, ast.Call)
                    and getattr(node.func.value.func, "id", None) == "super"
                    and (named := {k for arg in node.args for k in _kind_names(arg)})
                ):
                    return named
    return None


def reference_kind(cls: ast.ClassDef) -> str | None:
    """X for a credential reference class (`kind: Literal[CredentialKind.X]`)."""
    kind = _class_attribute(cls, "kind")
    names = _kind_names(kind.annotation) if isinstance(kind, ast.AnnAssign) else set()
    return next(iter(names)) if len(names) == 1 else None


PARSERS = ("model_validate", "model_validate_json", "parse_model", "parse_with", "TypeAdapter")


def produced_kinds(reach: Reach) -> set[str]:
    """The credential kinds the reached code can hold a reference of: the reference classes it constructs, and
    those the models it parses (`M.model_validate`, `parse_model(M, ...)`, `TypeAdapter(T)`) can contain."""
    source = reach.source
    kinds: set[str] = set()
    parsed: list[tuple[str, ast.AST]] = []  # (module, a type expression or a model class)
    for module, unit in reach.functions():
        for node in reach.walk(unit):
            if not isinstance(node, ast.Call):
                continue
            target = source.resolve_expression(module, node.func)
            if isinstance(target, tuple) and isinstance(target[1], ast.ClassDef):
                kind = reference_kind(target[1])
                if kind:
                    kinds.add(kind)
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name not in PARSERS:
                continue
            if isinstance(node.func, ast.Attribute) and name.startswith("model_validate"):
                model: ast.expr | None = node.func.value
            else:
                model = node.args[0] if node.args else None
            if isinstance(model, ast.Name) and model.id == "cls":  # a classmethod of the model parsing itself
                owner = next((s for s in source.modules[module].scopes_of(node) if isinstance(s, ast.ClassDef)), None)
                if owner is not None:
                    parsed.append((module, owner))
            elif model is not None:
                parsed.append((module, model))
    seen: set[int] = set()
    while parsed:
        module, item = parsed.pop()
        if isinstance(item, ast.ClassDef):
            if id(item) in seen:
                continue
            seen.add(id(item))
            kind = reference_kind(item)
            if kind:
                kinds.add(kind)
            parsed += [(module, s.annotation) for s in item.body if isinstance(s, ast.AnnAssign)]
            continue
        for name in ast.walk(item):
            if not isinstance(name, ast.Name | ast.Attribute):
                continue
            target = (
                source.resolve_expression(module, name)
                if isinstance(name, ast.Attribute)
                else source.resolve_in_module(module, name.id)
            )
            if not isinstance(target, tuple):
                continue
            target_module, definition = target
            if isinstance(definition, ast.ClassDef):
                parsed.append((target_module, definition))
            elif (
                isinstance(definition, ast.Assign | ast.AnnAssign)
                and definition.value is not None
                and id(definition) not in seen
            ):
                seen.add(id(definition))
                parsed.append((target_module, definition.value))
    return kinds


# --- the AWS calls in it --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    action: str  # service:Operation, as IAM names it
    members: frozenset[str]
    required: frozenset[str]


def operations() -> dict[str, list[Operation]]:
    """boto3 method name → the operations of that name, with their input members."""
    session = botocore.session.get_session()
    found: dict[str, list[Operation]] = {}
    for service in AWS_SERVICES:
        model = session.get_service_model(service)
        for name in model.operation_names:
            shape = model.operation_model(name).input_shape
            members = frozenset(shape.members) if shape is not None else frozenset()
            required = frozenset(shape.required_members) if shape is not None else frozenset()
            action = f"{model.signing_name}:{name}"
            action = IAM_ACTION_OF_OPERATION.get(action, action)
            found.setdefault(xform_name(name), []).append(Operation(action, members, required))
    return found


@dataclass
class AwsCall:
    action: str
    module: str
    node: ast.Call
    function: ast.AST
    keywords: dict[str, list[tuple[str, ast.expr]]]  # argument → (module, expression) it may be


def aws_calls(reach: Reach, tracer: Tracer) -> list[AwsCall]:
    """Every boto3 call in the reached code: a method named after an operation, whose arguments are that
    operation's (hvac's `list_secrets(mount_point=...)` is not Secrets Manager's), or a paginator's `paginate`."""
    by_name = operations()
    found: list[AwsCall] = []
    for module, function in reach.functions():
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in _function_body_nodes(function):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            if tracer.enclosing_function(module, node) is not function:
                continue
            names = tracer.operation_names(module, node)
            if not names:
                continue
            paginated = node.func.attr == "paginate"
            for keywords in tracer.keyword_variants(module, node):
                for name in names:
                    for operation in by_name.get(name, []):
                        given = set(keywords)
                        if not given <= operation.members | {"PaginationConfig"}:
                            continue
                        if not paginated and not tracer.has_starred(node) and not operation.required <= given:
                            continue
                        found.append(AwsCall(operation.action, module, node, function, keywords))
    return found


# --- where an argument comes from -----------------------------------------------------------------------------


class Tracer:
    def __init__(self, reach: Reach) -> None:
        self.reach = reach
        self.source = reach.source
        self._known: dict[int, frozenset[Origin]] = {}
        self._sites: dict[int, list[tuple[str, ast.Call]]] = {}

    # structure

    def enclosing_function(self, module: str, node: ast.AST) -> ast.AST | None:
        for scope in self.source.modules[module].scopes_of(node):
            if isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef):
                return scope
        return None

    def _enclosing_class(self, module: str, node: ast.AST) -> ast.ClassDef | None:
        for scope in self.source.modules[module].scopes_of(node):
            if isinstance(scope, ast.ClassDef):
                return scope
        return None

    def has_starred(self, node: ast.Call) -> bool:
        return any(k.arg is None for k in node.keywords)

    def call_sites(self, module: str, function: ast.AST) -> list[tuple[str, ast.Call]]:
        """Calls, in the reached code, of a function, a method (by name) or a class (its constructor)."""
        if id(function) in self._sites:
            return self._sites[id(function)]
        name = getattr(function, "name", None)
        owner = self._enclosing_class(module, function) if not isinstance(function, ast.ClassDef) else None
        sites = []
        for caller_module, unit in self.reach.functions():
            for node in self.reach.walk(unit):
                if not isinstance(node, ast.Call):
                    continue
                if owner is not None and isinstance(node.func, ast.Attribute) and node.func.attr == name:
                    sites.append((caller_module, node))
                    continue
                target = self.source.resolve_expression(caller_module, node.func)
                if target == (module, function):
                    sites.append((caller_module, node))
        self._sites[id(function)] = list({(m, id(n)): (m, n) for m, n in sites}.values())
        return self._sites[id(function)]

    # the operation and the arguments of a call

    def operation_names(self, module: str, node: ast.Call) -> set[str]:
        assert isinstance(node.func, ast.Attribute)
        if node.func.attr != "paginate":
            return {node.func.attr}
        receiver = node.func.value
        for value in self._values_of(module, receiver, 0):
            call = value[1]
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr == "get_paginator"
            ):
                return {o.value for o in self.origins(value[0], call.args[0]) if isinstance(o, Literal)}
        return set()

    def keyword_variants(self, module: str, node: ast.Call) -> list[dict[str, list[tuple[str, ast.expr]]]]:
        """The keyword arguments of a call, once for each way it is made: `**kwargs` (a parameter) gives one
        variant per call site of the function, with the keywords that site adds."""
        fixed: dict[str, list[tuple[str, ast.expr]]] = {}
        expansions: list[list[dict[str, list[tuple[str, ast.expr]]]]] = []
        for keyword in node.keywords:
            if keyword.arg is not None:
                fixed.setdefault(keyword.arg, []).append((module, keyword.value))
                continue
            variants: list[dict[str, list[tuple[str, ast.expr]]]] = []
            for value_module, value in self._values_of(module, keyword.value, 0):
                if isinstance(value, ast.Dict):
                    variants.append(
                        {
                            str(key.value): [(value_module, item)]
                            for key, item in zip(value.keys, value.values, strict=True)
                            if isinstance(key, ast.Constant)
                        }
                    )
                elif isinstance(value, ast.Call):  # a call site of the function whose **kwargs this is
                    named = self._named_parameters(self.enclosing_function(module, node))
                    variants.append(
                        {k.arg: [(value_module, k.value)] for k in value.keywords if k.arg and k.arg not in named}
                    )
            expansions.append(variants or [{}])
        combined = [fixed]
        for variants in expansions:
            combined = [{**done, **variant} for done in combined for variant in variants]
        return combined

    def _named_parameters(self, function: ast.AST | None) -> set[str]:
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            return set()
        args = function.args
        return {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}

    def _values_of(self, module: str, node: ast.expr, depth: int) -> list[tuple[str, ast.expr]]:
        """The expressions a Name may hold: its assignments in the function, or a `**kwargs` parameter's
        keywords at the call sites (returned as the calls)."""
        if depth > 3 or not isinstance(node, ast.Name):
            return [(module, node)]
        function = self.enclosing_function(module, node)
        if function is None:
            return [(module, node)]
        assigned = [value for value in self._assignments(function, node.id)]
        if assigned:
            return [(module, value) for value in assigned]
        assert isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
        if function.args.kwarg is not None and function.args.kwarg.arg == node.id:
            return [(m, call) for m, call in self.call_sites(module, function)]
        return [(module, node)]

    def _assignments(self, function: ast.AST, name: str) -> list[ast.expr]:
        values: list[ast.expr] = []
        for node in ast.walk(function):
            if isinstance(node, ast.Assign) and any(
                name in {n.id for n in ast.walk(target) if isinstance(n, ast.Name)} for target in node.targets
            ):
                values.append(node.value)
            elif isinstance(node, ast.AnnAssign | ast.NamedExpr) and isinstance(node.target, ast.Name):
                if node.target.id == name and node.value is not None:
                    values.append(node.value)
            elif isinstance(node, ast.For | ast.comprehension) and any(
                isinstance(n, ast.Name) and n.id == name for n in ast.walk(node.target)
            ):
                values.append(node.iter)
            elif (
                isinstance(node, ast.withitem)
                and isinstance(node.optional_vars, ast.Name)
                and node.optional_vars.id == name
            ):
                values.append(node.context_expr)
        return values

    # origins

    def origins(self, module: str, node: ast.expr, depth: int = 0) -> frozenset[Origin]:
        """Where a value may come from (memoised by node: a cycle contributes nothing more)."""
        if id(node) in self._known:
            return self._known[id(node)]
        if depth > MAX_DEPTH:
            return frozenset({DATA})
        self._known[id(node)] = frozenset()
        found = self._origins(module, node, depth + 1) or frozenset({DATA})
        self._known[id(node)] = found
        return found

    def _union(self, pairs: list[tuple[str, ast.expr]], depth: int) -> frozenset[Origin]:
        result: frozenset[Origin] = frozenset()
        for module, node in pairs:
            result |= self.origins(module, node, depth)
        return result

    def _origins(self, module: str, node: ast.expr, depth: int) -> frozenset[Origin]:
        if isinstance(node, ast.Constant):
            return frozenset({Literal(str(node.value))}) if isinstance(node.value, str) else frozenset({DATA})
        if isinstance(node, ast.Name):
            return self._name_origins(module, node, depth)
        if isinstance(node, ast.Attribute):
            return self._attribute_origins(module, node, depth)
        if isinstance(node, ast.Subscript) and self._is_environ(node.value):
            return self._environment(module, node.slice, depth)
        if isinstance(node, ast.Call):
            return self._call_origins(module, node, depth)
        children = [child for child in ast.iter_child_nodes(node) if isinstance(child, ast.expr)]
        if isinstance(node, ast.Subscript):
            children = [node.value]
        return self._union([(module, child) for child in children], depth)

    def _is_environ(self, node: ast.expr) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
            isinstance(node, ast.Name) and node.id in ("environ", "source")
        )

    def _environment(self, module: str, key: ast.expr, depth: int) -> frozenset[Origin]:
        names = [o.value for o in self.origins(module, key, depth) if isinstance(o, Literal)]
        return frozenset(EnvVar(name) for name in names) or frozenset({DATA})

    def _name_origins(self, module: str, node: ast.Name, depth: int) -> frozenset[Origin]:
        for scope in self.source.modules[module].scopes_of(node):
            if not isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            assigned = self._assignments(scope, node.id)
            if assigned:
                return self._union([(module, value) for value in assigned], depth)
            parameter = self._parameter(scope, node.id)
            if parameter is not None:
                return self._parameter_origins(module, scope, parameter, depth)
        target = self.source.resolve_name(module, node, node.id)
        if isinstance(target, tuple):
            target_module, statement = target
            if isinstance(statement, ast.Assign | ast.AnnAssign) and statement.value is not None:
                return self.origins(target_module, statement.value, depth)
        return frozenset({DATA})

    def _parameter(self, function: ast.AST, name: str) -> tuple[str, int | None, ast.expr | None] | None:
        """(name, position among the arguments a caller passes, default) of a parameter, or None."""
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return None
        args = function.args
        positional = [*args.posonlyargs, *args.args]
        defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
        skip = 1 if positional and positional[0].arg in ("self", "cls") else 0
        for index, arg in enumerate(positional):
            if arg.arg == name:
                return name, (index - skip if index >= skip else None), defaults[index]
        for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
            if arg.arg == name:
                return name, None, default
        return None

    def _parameter_origins(
        self, module: str, function: ast.AST, parameter: tuple[str, int | None, ast.expr | None], depth: int
    ) -> frozenset[Origin]:
        name, position, default = parameter
        target: ast.AST = function
        if getattr(function, "name", None) == "__init__":
            owner = self._enclosing_class(module, function)
            target = owner if owner is not None else function
        pairs: list[tuple[str, ast.expr]] = []
        for caller_module, call in self.call_sites(module, target):
            keyword = next((k.value for k in call.keywords if k.arg == name), None)
            if keyword is not None:
                pairs.append((caller_module, keyword))
            elif (
                position is not None
                and position < len(call.args)
                and not any(isinstance(a, ast.Starred) for a in call.args[: position + 1])
            ):
                pairs.append((caller_module, call.args[position]))
            elif default is not None:
                pairs.append((module, default))
        if not pairs and default is not None:
            pairs.append((module, default))
        return self._union(pairs, depth) if pairs else frozenset({DATA})

    def _attribute_origins(self, module: str, node: ast.Attribute, depth: int) -> frozenset[Origin]:
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            cls = self._enclosing_class(module, node)
            if cls is not None:
                return self._member_origins(module, cls, node.attr, depth)
        if isinstance(node.value, ast.Attribute) and node.value.attr == "environ":
            return frozenset({DATA})
        base = self.origins(module, node.value, depth)
        settings = [o for o in base if isinstance(o, SettingsObject)]
        if settings:
            return frozenset(self._setting(o, node.attr) for o in settings)
        return frozenset(o for o in base if isinstance(o, EnvVar)) or frozenset({DATA})

    def _setting(self, settings: SettingsObject, attribute: str) -> EnvVar:
        """A settings field is its variable; a property of the settings class is the field it returns."""
        if settings.cls is not None:
            module, name = settings.cls
            cls = self.source.modules[module].top_level.get(name)
            for member in getattr(cls, "body", []):
                if isinstance(member, ast.FunctionDef) and member.name == attribute:
                    for returned in ast.walk(member):
                        if isinstance(returned, ast.Return) and isinstance(returned.value, ast.Attribute):
                            return EnvVar(returned.value.attr.upper())
        return EnvVar(attribute.upper())

    def _member_origins(self, module: str, cls: ast.ClassDef, attribute: str, depth: int) -> frozenset[Origin]:
        pairs: list[tuple[str, ast.expr]] = []
        for member in cls.body:
            if isinstance(member, ast.FunctionDef) and member.name == attribute:  # a property or a method
                pairs += [(module, r.value) for r in ast.walk(member) if isinstance(r, ast.Return) and r.value]
            for node in ast.walk(member):
                if isinstance(node, ast.Assign | ast.AnnAssign):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for target in targets:
                        if (
                            isinstance(target, ast.Attribute)
                            and target.attr == attribute
                            and isinstance(target.value, ast.Name)
                            and target.value.id == "self"
                            and node.value is not None
                        ):
                            pairs.append((module, node.value))
        return self._union(pairs, depth) if pairs else frozenset({DATA})

    def _call_origins(self, module: str, node: ast.Call, depth: int) -> frozenset[Origin]:
        func = node.func
        reads_environment = self._is_environ(func.value) if isinstance(func, ast.Attribute) else False
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "os":
            reads_environment = True
        if isinstance(func, ast.Attribute) and func.attr in ("get", "getenv") and node.args and reads_environment:
            return self._environment(module, node.args[0], depth)
        if isinstance(func, ast.Attribute) and func.attr == "from_environ":
            target = self.source.resolve_expression(module, func.value)
            return frozenset(
                {
                    SettingsObject(
                        (target[0], func.value.id)
                        if isinstance(target, tuple) and isinstance(func.value, ast.Name)
                        else None
                    )
                }
            )
        target = self.source.resolve_expression(module, func)
        is_own_method = isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "self"
        if target is None and is_own_method:
            assert isinstance(func, ast.Attribute)
            cls = self._enclosing_class(module, node)
            if cls is not None:
                methods = [m for m in cls.body if isinstance(m, ast.FunctionDef) and m.name == func.attr]
                target = (module, methods[0]) if methods else None
        if isinstance(target, tuple):
            target_module, definition = target
            if isinstance(definition, ast.FunctionDef) and definition.name == "get_settings":
                return frozenset({SettingsObject(None)})
            if isinstance(definition, ast.FunctionDef | ast.AsyncFunctionDef):
                returned = [
                    (target_module, r.value) for r in ast.walk(definition) if isinstance(r, ast.Return) and r.value
                ]
                return self._union(returned, depth)
            return frozenset({DATA})
        # a method of a value (`arn.replace(...)`, `text.strip()`): what it is made from
        parts: list[tuple[str, ast.expr]] = []
        if isinstance(func, ast.Attribute):
            parts.append((module, func.value))
        parts += [(module, a) for a in node.args]
        return self._union(parts, depth)
