# SPDX-License-Identifier: MIT
"""The package's layering, read from its source with ``ast``: imports point downstream only.

    data -> distributions -> layers -> models -> training -> analysis -> protocols -> plotting

A module may import its own layer and the layers before it, never one after it; nothing in
``ensemble_nets`` imports ``experiments``. Every ``import`` / ``from`` statement counts,
including those inside functions (a lazy import is still a dependency).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ensemble_nets"
#: The layers, upstream first.
LAYERS = ("data", "distributions", "layers", "models", "training", "analysis", "protocols", "plotting")


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name inside ``ensemble_nets`` (None for the root and ``cli``)."""
    parts = module.split(".")
    if parts[0] != "ensemble_nets" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in LAYERS else None


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """``(line, dotted module)`` of every import statement in ``path``, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]  # `from pkg import module`
    return found


def violations() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = layer_of(module_name(path))
        for line, target in imports_of(path):
            where = f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}"
            if target.split(".")[0] == "experiments":
                problems.append(f"{where}: nothing in the package may import experiments/")
                continue
            theirs = layer_of(target)
            if own is not None and theirs is not None and LAYERS.index(theirs) > LAYERS.index(own):
                problems.append(f"{where}: {own} is upstream of {theirs}")
    return sorted(set(problems))


def test_imports_point_downstream():
    problems = violations()
    assert not problems, "imports that run upstream:\n" + "\n".join(problems)


@pytest.mark.parametrize("source, expected", [
    ("from ensemble_nets.plotting import style", "analysis is upstream of plotting"),
    ("def f():\n    from ensemble_nets.protocols.phase import run_phase_cell", "analysis is upstream of protocols"),
    ("import experiments.make_figures", "may import experiments"),
    ("from ..training import loop", None),  # analysis -> training: downstream, fine
])
def test_the_check_catches_upstream_imports(tmp_path, monkeypatch, source, expected):
    """The checker itself: a planted upstream import (also inside a function) is found."""
    package = tmp_path / "ensemble_nets"
    (package / "analysis").mkdir(parents=True)
    (package / "analysis" / "planted.py").write_text(source + "\n")
    monkeypatch.setattr(f"{__name__}.PACKAGE", package)
    problems = violations()
    if expected is None:
        assert problems == []
    else:
        assert problems and all(expected in problem for problem in problems), problems
