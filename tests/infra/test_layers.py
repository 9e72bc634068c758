"""cryptography is a layer of its own (CryptographyLayer, 5 MB zipped): every function whose handler can reach an
import of cryptography carries it. Today every handler can (the settings and the kinds registry reach the
certificate parsers), so the layer is in the Globals; a function that cannot parse a certificate could drop it.

"Can reach" is read from the source, not from one run, so a path that runs once a year (a leaked certificate, a
PKI action) counts: from the handler module, follow every import, and every name of the layer's modules that a
reached function or class uses, including the imports inside function bodies. A module's body reaches what it
imports and what its top-level statements and class bodies use; a function reaches what its body uses; a class
reaches all its methods. So importing `get_ledger` from rescind.runtime does not reach `get_engine`'s imports,
but calling anything that builds the engine does.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

from tests.infra.test_functions import FUNCTIONS, REPO_ROOT, TEMPLATE

LAYER_SOURCE = REPO_ROOT / "shared"
CRYPTOGRAPHY_LAYER = {"Ref": "CryptographyLayer"}
EVERYTHING = "*"  # a module's body and every function and class in it
Node = tuple[str, str | None]  # (module, None: its body | a top-level name | EVERYTHING)


@dataclass
class SourceModule:
    """One module of the layer's source: its top-level definitions and the names its imports bind."""

    name: str
    tree: ast.Module
    is_package: bool
    definitions: dict[str, ast.AST] = field(default_factory=dict)
    bindings: dict[str, Node] = field(default_factory=dict)


class Reach:
    """What a handler can reach in the layer's source (a folder holding importable packages)."""

    def __init__(self, source_root: Path) -> None:
        self.source_root = source_root

    def module_file(self, name: str) -> Path | None:
        base = self.source_root.joinpath(*name.split("."))
        for candidate in (base / "__init__.py", base.with_suffix(".py")):
            if candidate.is_file():
                return candidate
        return None

    @cache  # noqa: B019 - one Reach per test module, kept for its life
    def module(self, name: str) -> SourceModule | None:
        path = self.module_file(name)
        if path is None:
            return None  # a library, or the standard library: a leaf
        tree = ast.parse(path.read_text())
        found = SourceModule(name, tree, is_package=path.name == "__init__.py")
        for statement in tree.body:
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                found.definitions[statement.name] = statement
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            for node in ast.walk(statement):  # imports at the top level, and in its if and try blocks
                if isinstance(node, ast.Import | ast.ImportFrom):
                    found.bindings.update(self.imported(node, found)[1])
        return found

    def imported(self, node: ast.Import | ast.ImportFrom, module: SourceModule) -> tuple[list[Node], dict[str, Node]]:
        """(the module bodies an import statement runs, the names it binds to what they stand for)."""
        runs: list[Node] = []
        binds: dict[str, Node] = {}
        if isinstance(node, ast.Import):
            for alias in node.names:
                runs += [(prefix, None) for prefix in _prefixes(alias.name)]
                # `import a.b` binds `a`, through which anything in a.b can be called
                binds[alias.asname or alias.name.split(".")[0]] = (alias.name, EVERYTHING)
            return runs, binds
        base = node.module or ""
        if node.level:
            package = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
            base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
        runs += [(prefix, None) for prefix in _prefixes(base)]
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            target: Node = (submodule, EVERYTHING) if self.module_file(submodule) else (base, alias.name)
            if target[1] == EVERYTHING:
                runs.append((submodule, None))
            binds[alias.asname or alias.name] = target
        return runs, binds

    def uses(self, module: SourceModule, nodes: list[ast.AST], *, top_level: bool) -> Iterator[Node]:
        """What running `nodes` of `module` can reach: the imports they run and the names they use."""
        for top in nodes:
            for node in ast.walk(top):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    runs, binds = self.imported(node, module)
                    yield from runs
                    if not top_level:  # a name imported inside a function is there to be used
                        yield from binds.values()
                elif isinstance(node, ast.Name) and node.id in module.definitions:
                    yield (module.name, node.id)
                elif isinstance(node, ast.Name) and node.id in module.bindings:
                    yield module.bindings[node.id]

    def edges(self, node: Node) -> Iterator[Node]:
        name, member = node
        module = self.module(name)
        if module is None:
            return
        if member is None:
            body: list[ast.AST] = []
            for statement in module.tree.body:
                if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
                    body += [*statement.decorator_list, *statement.args.defaults]
                    body += [default for default in statement.args.kw_defaults if default is not None]
                elif not (isinstance(statement, ast.If) and "TYPE_CHECKING" in ast.unparse(statement.test)):
                    body.append(statement)  # a class body runs at import, so it counts whole
            yield from self.uses(module, body, top_level=True)
        elif member == EVERYTHING:
            yield (name, None)
            yield from ((name, definition) for definition in module.definitions)
        elif member in module.definitions:
            yield (name, None)
            yield from self.uses(module, [module.definitions[member]], top_level=False)
        else:
            yield (name, None)
            if member in module.bindings:
                yield module.bindings[member]  # a name the module imports (a re-export)

    def reached_from(self, handler: Path) -> set[Node]:
        entry = SourceModule("app", ast.parse(handler.read_text()), is_package=False)
        pending: deque[Node] = deque(self.uses(entry, [entry.tree], top_level=False))
        seen: set[Node] = set()
        while pending:
            node = pending.popleft()
            if node not in seen:
                seen.add(node)
                pending.extend(self.edges(node))
        return seen

    def reaches_package(self, handler: Path, package: str) -> bool:
        return any(name == package or name.startswith(f"{package}.") for name, _ in self.reached_from(handler))


def _prefixes(dotted: str) -> list[str]:
    parts = dotted.split(".")
    return [".".join(parts[: index + 1]) for index in range(len(parts))]


def handler_file(function: dict[str, object]) -> Path:
    module = str(function["Handler"]).rpartition(".")[0]
    return REPO_ROOT / str(function["CodeUri"]) / f"{module.replace('.', '/')}.py"


@pytest.fixture(scope="module")
def reach() -> Reach:
    return Reach(LAYER_SOURCE)


def test_the_template_has_the_cryptography_layer() -> None:
    assert TEMPLATE["Resources"]["CryptographyLayer"]["Type"] == "AWS::Serverless::LayerVersion"


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_a_function_has_the_cryptography_layer_when_its_handler_can_import_cryptography(
    name: str, reach: Reach
) -> None:
    function = FUNCTIONS[name]

    can_parse_certificates = reach.reaches_package(handler_file(function), "cryptography")

    layers = [*TEMPLATE["Globals"]["Function"]["Layers"], *function.get("Layers", [])]
    if can_parse_certificates:
        # Without it the import fails in Lambda (ModuleNotFoundError) the first time a certificate is parsed
        assert CRYPTOGRAPHY_LAYER in layers, f"{name} can import cryptography: add `!Ref CryptographyLayer`"


# --- the reading itself, on a small package of its own ---------------------------------------------------------


def write(folder: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


SAMPLE = {
    "pkg/__init__.py": "",
    "pkg/factories.py": (
        "def get_plain():\n    return 1\n\ndef get_parser():\n    from pkg.certs import Parser\n    return Parser()\n"
    ),
    "pkg/certs.py": (
        "class Parser:\n    def parse(self, data):\n        from cryptography import x509\n"
        "        return x509.load_der_x509_certificate(data)\n"
    ),
    "pkg/chain.py": "from pkg.factories import get_parser\n\ndef unused():\n    return get_parser()\n",
}


@pytest.mark.parametrize(
    ("handler", "reaches"),
    [
        ("from pkg.factories import get_plain\nget_plain()\n", False),  # another factory's import is not reached
        ("from pkg.factories import get_parser\nget_parser()\n", True),  # an import inside a method of a class used
        ("from pkg import factories\n", True),  # a module imported whole: any of its functions may run
        ("import pkg.chain\n", True),  # through a module imported whole, then a name it imports
        ("from pkg.chain import get_parser\n", True),  # a re-exported name
    ],
)
def test_the_reading_follows_names_into_function_bodies(tmp_path: Path, handler: str, reaches: bool) -> None:
    write(tmp_path, {**SAMPLE, "app.py": handler})

    assert Reach(tmp_path).reaches_package(tmp_path / "app.py", "cryptography") is reaches
