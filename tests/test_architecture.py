"""The layout keeps its promises: the job domain runs without Flask, the import graph has no cycles (and no
function-level import hides one), the app never imports the worker runtime, modules and functions stay small,
and docs/ARCHITECTURE.md names every module."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "trainer")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 40
# What the app may import of the training program: the parts written in the standard library only.
TRAINER_PARTS_FOR_THE_APP = {"trainer.protocol", "trainer.config", "trainer.records", "trainer.bundle"}


def module_name(path: Path) -> str:
    """The dotted name of a source file under the project root."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def first_party_modules() -> dict[str, Path]:
    """Every module of the app, the training program and the worker runtime, by dotted name."""
    return {module_name(path): path for package in (*PACKAGES, "workers")
            for path in sorted((ROOT / package).rglob("*.py")) if "migrations" not in path.parts}


MODULES = first_party_modules()


def resolve(name: str) -> str | None:
    """The first-party module an import names (a module, or the package holding an imported name)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(path: Path) -> tuple[set[str], set[str]]:
    """(module-level, function-level) first-party imports of a source file."""
    tree = ast.parse(path.read_text())
    top, deferred = set(), set()
    for node in ast.walk(tree):
        targets = _targets(node)
        if targets:
            (deferred if _inside_function(tree, node) else top).update(targets)
    own = module_name(path)
    return top - {own}, deferred - {own}


def _targets(node: ast.AST) -> set[str]:
    """The first-party modules one import statement names."""
    if isinstance(node, ast.Import):
        return {found for alias in node.names if (found := resolve(alias.name))}
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        # `from package import module` names the module; `from module import name` names the module.
        named = {resolve(f"{node.module}.{alias.name}") for alias in node.names}
        return {found for found in named if found} or ({found} if (found := resolve(node.module)) else set())
    return set()


def _inside_function(tree: ast.AST, target: ast.AST) -> bool:
    """Whether target sits inside a function body."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
                child is target for child in ast.walk(node)):
            return True
    return False


GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def reaches(start: str, goal: str) -> list[str] | None:
    """A module-level import path from start to goal, if there is one."""
    stack, seen = [(start, [start])], {start}
    while stack:
        node, path = stack.pop()
        for nxt in sorted(GRAPH.get(node, (set(), set()))[0]):
            if nxt == goal:
                return [*path, nxt]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def test_the_job_domain_imports_without_flask():
    domain = sorted(name for name in MODULES if name.startswith("app.jobs"))
    code = ("import sys\n" + "".join(f"import {name}\n" for name in domain)
            + "print(sorted(m for m in sys.modules if m.split('.')[0].startswith('flask')))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]", f"the job domain loads {loaded.stdout.strip()}"
    assert len(domain) >= 15


def test_the_import_graph_has_no_cycle():
    cycles = {tuple(cycle) for name in MODULES for other in GRAPH[name][0] if (cycle := reaches(other, name))}
    assert not cycles, "import cycles: " + "; ".join(" → ".join(cycle) for cycle in sorted(cycles))


def test_no_function_level_import_dodges_a_cycle():
    dodges = [f"{name} imports {target} inside a function, but {' → '.join(path)}"
              for name, (_top, deferred) in GRAPH.items() for target in sorted(deferred)
              if (path := reaches(target, name))]
    assert not dodges, "\n".join(dodges)


@pytest.mark.parametrize("package", PACKAGES)
def test_the_app_and_the_training_program_never_import_the_worker_runtime(package):
    offenders = [f"{name} imports {target}" for name, (top, deferred) in GRAPH.items()
                 if name.split(".")[0] == package for target in top | deferred if target.split(".")[0] == "workers"]
    assert not offenders, offenders


def test_the_training_program_imports_nothing_of_the_studio():
    offenders = [f"{name} imports {target}" for name, (top, deferred) in GRAPH.items() if name.startswith("trainer")
                 for target in top | deferred if not target.startswith("trainer")]
    assert not offenders, offenders


def test_the_app_imports_only_the_standard_library_parts_of_the_training_program():
    offenders = [f"{name} imports {target}" for name, (top, deferred) in GRAPH.items() if name.startswith("app")
                 for target in top | deferred
                 if target.startswith("trainer") and target not in TRAINER_PARTS_FOR_THE_APP | {"trainer"}]
    assert not offenders, offenders


def test_no_module_is_too_long():
    long_ones = {name: lines for name, path in MODULES.items()
                 if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long_ones, f"modules over {MAX_MODULE_LINES} lines: {long_ones}"


def test_no_function_is_too_long():
    long_ones = [f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
                 for name, path in MODULES.items() for node in ast.walk(ast.parse(path.read_text()))
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long_ones, f"functions over {MAX_FUNCTION_LINES} lines: {long_ones}"


def test_the_architecture_document_names_every_module():
    document = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    missing = [str(path.relative_to(ROOT)) for name, path in MODULES.items()
               if name.split(".")[0] in PACKAGES and str(path.relative_to(ROOT)) not in document]
    assert not missing, f"docs/ARCHITECTURE.md does not describe {missing}"
