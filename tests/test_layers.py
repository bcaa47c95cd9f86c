"""The package's layers: no module imports a layer above its own, and the core stays pure.

Layers, lowest first (a module may import its own layer and the ones below):
errors, lifecycle, core -> embed -> io -> report -> tracking -> engines -> tasks -> decisions ->
integrations -> cli. ``config`` (the Hydra schemas), ``config_checks`` (the ranges checked
before any heavy import) and ``demo`` (demo data) sit beside them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "evaluator"

RANK = {
    "errors": 0,
    "lifecycle": 0,
    "core": 0,
    "demo": 1,
    "embed": 1,
    "io": 2,
    "report": 3,
    "tracking": 4,
    "config": 4,
    "config_checks": 4,
    "engines": 5,
    "tasks": 6,
    "decisions": 7,
    "integrations": 8,
    "cli": 9,
    "cli_help": 9,
    "__main__": 9,
}
# The package's __init__ re-exports the public API from any layer.
UNRANKED = {"__init__"}
# What the pure core may import besides itself and the standard library.
# rapidfuzz: a pure string-distance library (no I/O), the edit distance behind text_cer.
CORE_THIRD_PARTY = {"numpy", "torch", "rapidfuzz"}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "evaluator":
        return None
    if len(parts) == 1:
        return "__init__"
    return parts[1].removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "evaluator":
                out.extend((node.lineno, f"evaluator.{a.name}") for a in node.names)
            else:
                out.append((node.lineno, node.module))
    return out


def _modules() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if "conf" not in p.relative_to(ROOT).parts)


def _own_layer(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0].removesuffix(".py")


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_import_runs_up_a_layer(path: Path) -> None:
    own = _own_layer(path)
    if own in UNRANKED:
        return
    assert own in RANK, f"{path}: layer {own!r} is not in the layer table of this test"
    for line, module in _imports(path):
        target = _layer(module)
        if target is None or (target == "__init__" and module == "evaluator"):
            continue
        if module == "evaluator.__version__":
            continue
        assert target in RANK, f"{path}:{line}: imports {module}, an unknown layer"
        assert RANK[target] <= RANK[own], (
            f"{path.relative_to(ROOT)}:{line} ({own}) imports {module} ({target}), a layer above"
        )


@pytest.mark.parametrize("path", sorted((ROOT / "core").rglob("*.py")), ids=lambda p: p.name)
def test_core_is_pure(path: Path) -> None:
    import sys

    for line, module in _imports(path):
        top = module.split(".")[0]
        if top in ("evaluator", "__future__") or top in sys.stdlib_module_names:
            if top == "evaluator":
                assert module.startswith("evaluator.core"), f"{path}:{line}: core imports {module}"
            continue
        assert top in CORE_THIRD_PARTY, f"{path}:{line}: the core imports {module}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_over_500_lines(path: Path) -> None:
    n = len(path.read_text().splitlines())
    assert n <= 520, f"{path.relative_to(ROOT)} has {n} lines; split it by what it holds"


def test_the_self_check_catches_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from evaluator.tasks.poster import run_poster\n")
    assert _imports(bad) == [(1, "evaluator.tasks.poster")]
    assert RANK[_layer("evaluator.tasks.poster") or ""] > RANK["report"]
