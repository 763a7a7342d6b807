"""The shape of the code, held by its import graph (static, over the AST of every module).

Every `import` counts for the layers: at the top of a module, inside a function (the
lazy imports that keep start-up fast), and under `if TYPE_CHECKING:`, since each is a
dependency a reader has to follow. Cycles are looked for among the imports that run
(top-level and lazy ones): an annotation's back-reference under `TYPE_CHECKING` is not
one. The rules, from the inside out:

- `mot.domain` imports nothing of mot but itself;
- `mot.projections` imports `mot.domain`;
- the service layer (`mot.service`) imports `mot.domain`, `mot.projections` and its own
  ports, never an adapter nor the composition root;
- adapters (`mot.adapters`) implement ports: they may import the layers above, never
  the composition root or an entry point;
- the composition root `mot.bootstrap` wires adapters into services, and imports no
  entry point;
- entry points (`mot.cli`, the HTTP app in `mot.adapters.http`) call the service layer
  and the composition root; the CLI opens no store adapter itself (it may read files,
  Kafka and vendor records through their adapters, and serve the HTTP app);
- no import cycle anywhere;
- the inner layers import no infrastructure: `mot.domain` only pydantic (the wire schema),
  orjson and mypy_extensions (how a class compiles), `mot.projections` only orjson, the
  service layer only those and the file formats its use cases write (pyarrow's Parquet,
  matplotlib's charts): no database driver, eventsourcing, Kafka, HTTP or CLI framework, nor cryptography.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Leaf helpers of the `mot` package itself: they import nothing of mot, and the layers
# from the service outwards may use them (`mot` is the version string, `mot.native` what is
# compiled).
LEAVES = ("mot", "mot.wording", "mot.native")
# What each part may import (by module-name prefix). The longest matching part applies.
ALLOWED: dict[str, tuple[str, ...]] = {
    "mot.domain": ("mot.domain",),
    "mot.projections": ("mot.domain", "mot.projections"),
    "mot.service": ("mot.domain", "mot.projections", "mot.service", *LEAVES),
    "mot.adapters": ("mot.domain", "mot.projections", "mot.service", "mot.adapters", *LEAVES),
    "mot.adapters.http": ("mot.domain", "mot.projections", "mot.service", "mot.adapters",
                          "mot.bootstrap", *LEAVES),
    "mot.bootstrap": ("mot.domain", "mot.projections", "mot.service", "mot.adapters", *LEAVES),
    "mot.cli": ("mot.cli", "mot.bootstrap", "mot.domain", "mot.projections", "mot.service",
                "mot.adapters.http", "mot.adapters.kafka", "mot.adapters.sources",
                "mot.adapters.vendors", *LEAVES),
    "mot.__main__": ("mot.cli",),
    **{leaf: () for leaf in LEAVES},
}
# Imports no part may make even where its prefix allows it: only the HTTP app and the
# CLI may import the HTTP app.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "mot.adapters": ("mot.adapters.http",),
    "mot.bootstrap": ("mot.adapters.http",),
}
# Known exceptions, each with who removes it. An exception that no longer happens fails
# the test, so that the list only shrinks: remove it here when it is gone.
KNOWN: dict[tuple[str, str], str] = {}
KNOWN_CYCLES: dict[frozenset[str], str] = {}

# The packages outside the standard library each inner layer may import (by top-level name).
# The layers from the adapters outwards are where infrastructure lives: not checked here.
THIRD_PARTY: dict[str, tuple[str, ...]] = {
    "mot.domain": ("pydantic", "orjson", "mypy_extensions"),  # mypyc_attr: how it compiles
    "mot.projections": ("orjson",),
    "mot.service": ("orjson", "pyarrow", "matplotlib"),
}
# Standard-library modules that are infrastructure all the same: a database driver.
INFRASTRUCTURE_STDLIB = frozenset({"sqlite3", "dbm", "shelve"})
# Known exceptions, with who removes them (the list only shrinks, as KNOWN).
KNOWN_THIRD_PARTY: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the mot module imported
    line: int
    typing_only: bool = False  # under `if TYPE_CHECKING:`: never run


def _typing_only_lines(tree: ast.Module) -> set[int]:
    """The lines of imports inside `if TYPE_CHECKING:` blocks."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                for sub in ast.walk(inner):
                    if isinstance(sub, ast.Import | ast.ImportFrom):
                        lines.add(sub.lineno)
    return lines


def modules() -> dict[str, Path]:
    """Every module of the `mot` distribution, by its installed name, from the package map."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_dirs: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    found: dict[str, Path] = {}
    for package in config["tool"]["setuptools"]["packages"]:
        folder = ROOT / package_dirs[package]
        for path in sorted(folder.glob("*.py")):
            found[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return found


def imports(known: dict[str, Path]) -> list[Import]:
    """Every import of a mot module, wherever it stands in the module."""
    found: list[Import] = []
    for module, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        typing_only = _typing_only_lines(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{module}:{node.lineno}: relative import"
                base = node.module or ""
                if base != "mot" and not base.startswith("mot."):
                    continue
                for alias in node.names:  # `from mot.service import ports` imports a module
                    full = f"{base}.{alias.name}"
                    found.append(Import(module, full if full in known else base, node.lineno,
                                        node.lineno in typing_only))
            elif isinstance(node, ast.Import):
                found += [Import(module, alias.name, node.lineno, node.lineno in typing_only)
                          for alias in node.names
                          if alias.name == "mot" or alias.name.startswith("mot.")]
    for item in found:
        assert item.target in known, f"{item.module}:{item.line} imports unknown {item.target}"
    return found


def part_of(module: str, parts: dict[str, tuple[str, ...]]) -> str | None:
    matching = [p for p in parts if module == p or module.startswith(p + ".")]
    return max(matching, key=len) if matching else None


def within(target: str, prefixes: tuple[str, ...]) -> bool:
    return any(target == p or (p != "mot" and target.startswith(p + ".")) for p in prefixes)


def violations(found: list[Import]) -> Iterator[tuple[str, str, str]]:
    for item in found:
        if item.target == item.module:
            continue
        part = part_of(item.module, ALLOWED)
        assert part is not None, f"{item.module} belongs to no layer: add it to ALLOWED"
        if not within(item.target, ALLOWED[part]) or within(item.target, FORBIDDEN.get(part, ())):
            yield item.module, item.target, f"{item.module}:{item.line} imports {item.target}"


def cycles(found: list[Import]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively), over
    the imports that run: at the top of a module or inside a function. An import under
    `TYPE_CHECKING` never runs, so it cannot close a cycle (it still counts for the layers)."""
    graph: dict[str, set[str]] = {}
    for item in found:
        if not item.typing_only:
            graph.setdefault(item.module, set()).add(item.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[frozenset[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            advanced = False
            for target in edges:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph.get(target, ())))))
                    advanced = True
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(frozenset(component))
    return components


@pytest.fixture(scope="module")
def found() -> list[Import]:
    return imports(modules())


def test_the_graph_sees_every_layer_and_the_lazy_imports(found: list[Import]) -> None:
    known = modules()
    for part in ("mot.domain", "mot.projections", "mot.service", "mot.adapters.stores",
                 "mot.adapters.http", "mot.cli", "mot.bootstrap"):
        assert any(m == part or m.startswith(part + ".") for m in known), part
    # Lazy and TYPE_CHECKING imports count: the CLI group loads its commands' modules on
    # first use, and the composition root builds the write side on first use.
    pairs = {(i.module, i.target) for i in found}
    assert ("mot.cli.context", "mot.bootstrap") in pairs  # inside a property
    assert ("mot.bootstrap", "mot.service.ledger") in pairs  # under TYPE_CHECKING and lazily


def test_each_layer_imports_only_what_it_may(found: list[Import]) -> None:
    wrong = [(module, target, where) for module, target, where in violations(found)
             if (module, target) not in KNOWN]
    assert wrong == [], "\n".join(where for _, _, where in wrong)


def test_no_import_cycle(found: list[Import]) -> None:
    unexpected = [sorted(c) for c in cycles(found) if c not in KNOWN_CYCLES]
    assert unexpected == []


def test_the_known_exceptions_still_happen(found: list[Import]) -> None:
    """Remove an exception from KNOWN / KNOWN_CYCLES once the code no longer needs it."""
    happening = {(module, target) for module, target, _ in violations(found)}
    assert [pair for pair in KNOWN if pair not in happening] == []
    assert [sorted(c) for c in KNOWN_CYCLES if c not in cycles(found)] == []


def test_the_rules_catch_what_they_forbid() -> None:
    """The checks themselves, on made-up imports: each rule fails when broken."""
    bad = [Import("mot.domain.ledger", "mot.service.ports", 1),
           Import("mot.projections.engine", "mot.adapters.stores.sql", 2),
           Import("mot.service.access", "mot.adapters.stores.tokens", 3),
           Import("mot.service.fold_workers", "mot.bootstrap", 4),
           Import("mot.adapters.stores.sql", "mot.bootstrap", 5),
           Import("mot.adapters.kafka.client", "mot.adapters.http.app", 6),
           Import("mot.cli.ledger_commands", "mot.adapters.stores.ledger", 7),
           Import("mot.bootstrap", "mot.cli.main", 8)]
    assert [where for _, _, where in violations(bad)] == [
        f"{i.module}:{i.line} imports {i.target}" for i in bad]
    fine = [Import("mot.service.ledger", "mot.service.ports", 1),
            Import("mot.adapters.stores.ledger", "mot.service.ports", 2),
            Import("mot.adapters.http.app", "mot.bootstrap", 3),
            Import("mot.cli.kafka_commands", "mot.adapters.kafka.client", 4),
            Import("mot.bootstrap", "mot.adapters.stores.sqlite", 5)]
    assert list(violations(fine)) == []
    loop = [Import("mot.service.a", "mot.service.b", 1), Import("mot.service.b", "mot.service.c", 2),
            Import("mot.service.c", "mot.service.a", 3), Import("mot.service.c", "mot.domain.x", 4)]
    assert cycles(loop) == [frozenset({"mot.service.a", "mot.service.b", "mot.service.c"})]
    annotated = [Import("mot.service.a", "mot.service.b", 1),
                 Import("mot.service.b", "mot.service.a", 2, typing_only=True)]
    assert cycles(annotated) == []


# -- the inner layers import no infrastructure ----------------------------------------------


@dataclass(frozen=True)
class External:
    module: str  # the importing mot module
    package: str  # the top-level name of what it imports, outside mot
    line: int


def externals(known: dict[str, Path]) -> list[External]:
    """Every import of a module outside mot, wherever it stands (lazy ones too)."""
    found: list[External] = []
    for module, path in known.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            found += [External(module, top, node.lineno) for top in {n.split(".")[0] for n in names}
                      if top != "mot" and top != "__future__"]
    return found


def infrastructure(found: list[External]) -> Iterator[tuple[str, str, str]]:
    import sys

    for item in found:
        part = part_of(item.module, THIRD_PARTY)
        if part is None:
            continue
        stdlib = item.package in sys.stdlib_module_names or item.package.startswith("_")
        if (item.package in INFRASTRUCTURE_STDLIB
                or (not stdlib and item.package not in THIRD_PARTY[part])):
            yield item.module, item.package, f"{item.module}:{item.line} imports {item.package}"


def test_the_inner_layers_import_no_infrastructure() -> None:
    found = list(infrastructure(externals(modules())))
    wrong = [where for module, package, where in found if (module, package) not in KNOWN_THIRD_PARTY]
    assert wrong == []
    happening = {(module, package) for module, package, _ in found}
    assert [pair for pair in KNOWN_THIRD_PARTY if pair not in happening] == []


def test_the_infrastructure_rule_catches_what_it_forbids() -> None:
    bad = [External("mot.domain.ledger", "eventsourcing", 1),
           External("mot.domain.schema", "sqlite3", 2),
           External("mot.projections.engine", "pydantic", 3),
           External("mot.service.ledger", "psycopg", 4),
           External("mot.service.streaming", "kafka", 5),
           External("mot.service.erasure", "cryptography", 6),
           External("mot.service.access", "fastapi", 7)]
    assert [where for _, _, where in infrastructure(bad)] == [
        f"{i.module}:{i.line} imports {i.package}" for i in bad]
    fine = [External("mot.domain.schema", "pydantic", 1),
            External("mot.domain.identity", "_sha1", 2),
            External("mot.projections.schema", "orjson", 3),
            External("mot.service.report", "matplotlib", 4),
            External("mot.service.workers", "ctypes", 5),
            External("mot.adapters.stores.postgres", "psycopg", 6),
            External("mot.cli.main", "click", 7)]
    assert list(infrastructure(fine)) == []


# -- entry points go through the service layer ---------------------------------------------

STORE_ATTRIBUTES = {"ledger_store", "projection_store", "backend"}


def test_entry_points_reach_the_stores_only_through_services() -> None:
    """No CLI command nor HTTP route touches a store adapter that the composition root wired:
    it calls `services.<use case>` (quarantine, moments, timelines, ledger, projections...)."""
    touched = []
    for module, path in modules().items():
        if module.startswith(("mot.cli.", "mot.adapters.http.")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Attribute) and node.attr in STORE_ATTRIBUTES:
                    touched.append(f"{module}:{node.lineno} .{node.attr}")
    assert touched == []


def test_every_command_takes_the_typed_state() -> None:
    """`click.make_pass_decorator(State)`: no command takes `obj: Any` or the raw context."""
    import inspect
    from importlib import import_module
    from typing import Any

    import click

    from mot.cli.context import State
    from mot.cli.main import COMMAND_MODULES

    def leaves(command: click.Command) -> Iterator[click.Command]:
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                yield from leaves(sub)
        else:
            yield command

    checked = 0
    for name, module in COMMAND_MODULES.items():
        command = next(c for c in import_module(f"mot.cli.{module}").COMMANDS if c.name == name)
        for leaf in leaves(command):
            callback = inspect.unwrap(leaf.callback)  # type: ignore[arg-type]
            parameters = list(inspect.signature(callback, eval_str=True).parameters.values())
            if parameters and parameters[0].name == "obj":  # a command that uses the store
                assert parameters[0].annotation is State, f"{leaf.name}: {parameters[0]}"
                checked += 1
            assert not any(p.annotation is click.Context or (p.name == "obj" and p.annotation is Any)
                           for p in parameters), leaf.name
    assert checked >= 20


# -- backends own their differences ----------------------------------------------------------

BACKEND_MODULES = {"mot.adapters.stores.sqlite", "mot.adapters.stores.postgres"}
BACKEND_NAMES = {"sqlite", "postgres", "postgresql"}


def backend_branches(tree: ast.AST) -> Iterator[int]:
    """The lines that ask which database it is: a comparison of a `.kind` with a backend's
    name, a lookup by a `.kind`, or a table keyed by backends' names."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            names = {s.value for s in sides if isinstance(s, ast.Constant)}
            kinds = any(isinstance(s, ast.Attribute) and s.attr == "kind" for s in sides)
            if kinds and names & BACKEND_NAMES:
                yield node.lineno
        elif ((isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Attribute)
               and node.slice.attr == "kind")
              or (isinstance(node, ast.Dict)
                  and any(isinstance(k, ast.Constant) and k.value in BACKEND_NAMES
                          for k in node.keys))):
            yield node.lineno


def test_no_backend_branches_outside_the_backends() -> None:
    """`if backend.kind == "sqlite"` belongs in the backend: a method (or attribute) each
    backend implements."""
    branches = [f"{module}:{line}" for module, path in modules().items()
                if module not in BACKEND_MODULES
                for line in backend_branches(ast.parse(path.read_text()))]
    assert branches == []


def test_the_backend_rule_catches_what_it_forbids() -> None:
    source = """
if backend.kind == "sqlite": pass
now = NOW[backend.kind]
NOW = {"postgresql": "clock_timestamp()", "sqlite": "julianday('now')"}
if moment.kind == "share": pass
"""
    assert sorted(backend_branches(ast.parse(source))) == [2, 3, 4]


def test_no_private_member_of_eventsourcing_is_used() -> None:
    """eventsourcing's recorders and datastores are used through their public members only
    (adapters/stores/postgres.py wraps what mot needs beyond them, tested there)."""
    private = []
    for module, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                owner = node.value
                name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
                if name in ("recorder", "datastore", "pool"):
                    private.append(f"{module}:{node.lineno} {name}.{node.attr}")
    assert private == []


def test_only_the_composition_root_builds_store_adapters() -> None:
    """Stores, tokens, the changelog and the backends are built in `mot.bootstrap` alone
    (tests and benchmarks aside): wiring happens in one place."""
    built = set()
    for module, path in modules().items():
        if module == "mot.bootstrap" or module.startswith("mot.adapters.stores."):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = node.func.id if isinstance(node.func, ast.Name) else (
                    node.func.attr if isinstance(node.func, ast.Attribute) else "")
                if name.startswith("Sql") or name.endswith("Backend"):
                    built.add(f"{module}:{node.lineno} {name}")
    assert sorted(built) == []


# -- the ledger's events ----------------------------------------------------------------------


def test_the_ledger_events_are_past_tense_and_immutable() -> None:
    """Every event the notification log carries (`LedgerEvent`) says what happened, in the
    past tense, and cannot be changed once made: a frozen dataclass or a named tuple."""
    import dataclasses
    import typing

    from mot.domain.events import LedgerEvent

    events = typing.get_args(LedgerEvent)
    assert len(events) >= 6
    for event in events:
        assert event.__name__.endswith("ed"), event.__name__
        frozen = dataclasses.is_dataclass(event) and event.__dataclass_params__.frozen  # type: ignore[attr-defined]
        named_tuple = issubclass(event, tuple) and hasattr(event, "_fields")
        assert frozen or named_tuple, event.__name__
