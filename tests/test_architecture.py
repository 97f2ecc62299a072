"""The house keeps its plan: imports flow one way between the packages, and no module grows into a
file of several jobs (docs/architecture.md)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "qmczoo"

# What each part of the package may import (besides itself and qmczoo.errors): cli -> runs -> engine,
# models, registry -> layers -> chemistry and the contract (wavefunction.py); distributed.py (the
# processes of a run) imports nothing of qmczoo and is used by engine, runs and cli.
ALLOWED = {
    "wavefunction": set(),
    "distributed": set(),
    "chemistry": set(),
    "layers": {"chemistry", "wavefunction"},
    "registry": {"layers", "chemistry", "wavefunction"},
    "engine": {"layers", "chemistry", "wavefunction", "distributed"},
    "models": {"engine", "layers", "chemistry", "wavefunction"},
    "testing": {"registry", "models", "engine", "layers", "chemistry", "wavefunction"},
    "defaults": {"engine"},
    "runs": {"defaults", "registry", "models", "engine", "layers", "chemistry", "wavefunction", "distributed"},
    "cli": {"runs", "defaults", "registry", "models", "engine", "layers", "chemistry", "wavefunction", "testing",
            "distributed"},
}
MAX_LINES = 450  # "about 400": a module past this holds more than one job and is split


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "qmczoo"


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        module = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
        yield path, module


def _imports(path: Path):
    """Every qmczoo module imported in ``path`` (any depth), outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "qmczoo":
            if node.module == "qmczoo":
                yield from (f"qmczoo.{a.name}" for a in node.names if not a.name.startswith("__"))
            else:
                yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.split(".")[0] == "qmczoo")


def test_imports_flow_one_way():
    wrong = []
    for path, module in _modules():
        part = _part(module)
        if part == "qmczoo":  # the package's front door re-exports the public API
            continue
        for target in _imports(path):
            other = _part(target)
            if other in (part, "errors", "qmczoo") or other in ALLOWED.get(part, set()):
                continue
            wrong.append(f"{module} imports {target}")
    assert not wrong, "imports against the plan (docs/architecture.md):\n" + "\n".join(wrong)


def test_every_part_of_the_package_has_a_place_in_the_plan():
    parts = {_part(m) for _, m in _modules()} - {"qmczoo", "errors"}
    assert parts <= set(ALLOWED), f"not in the plan: {sorted(parts - set(ALLOWED))}"


@pytest.mark.parametrize("path", [p for p, _ in _modules()], ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_holds_several_jobs(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines: split it by job"
