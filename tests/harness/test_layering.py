"""The layers, checked over the source's imports (ast): implementations (impls/) and baselines
(baselines/) are plain libraries that never import each other, nor the harness.

What both need lives below them (devices/, workloads/, topk/).  Imports inside functions count,
and so do `importlib.import_module` calls whose module name is written out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Each library package, and the top-level packages it must not import.
FORBIDDEN = {"impls": ("baselines", "harness"), "baselines": ("impls", "harness")}
PACKAGES = sorted(f"{layer}/{p.name}" for layer in FORBIDDEN for p in (ROOT / layer).iterdir()
                  if p.is_dir() and (p / "__init__.py").exists())


def imported_modules(source: str) -> list[tuple[int, str]]:
    """(line, dotted module name) of every import in `source`, import_module calls with a written name included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (isinstance(node, ast.Call) and node.args
              and (getattr(node.func, "attr", None) or getattr(node.func, "id", None)) == "import_module"):
            name = node.args[0]
            if isinstance(name, ast.JoinedStr) and name.values and isinstance(name.values[0], ast.Constant):
                name = name.values[0]  # f"baselines.x.{backend}": its written prefix
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                found.append((node.lineno, name.value))
    return found


def test_the_import_finder_sees_every_form() -> None:
    source = ("import baselines.faiss_topk\nfrom impls.faery import cpu\ndef f():\n    import harness.cli as c\n"
              "importlib.import_module(f'baselines.faiss_topk.{b}')\nimport_module('impls.ekko')\nfrom . import x\n")
    assert [name.split(".")[0] for _, name in imported_modules(source)] == [
        "baselines", "impls", "harness", "baselines", "impls"]


@pytest.mark.parametrize("package", PACKAGES)
def test_a_library_imports_no_other_library_layer(package: str) -> None:
    forbidden = FORBIDDEN[package.split("/")[0]]
    offences = [f"{path.relative_to(ROOT)}:{line} imports {name}"
                for path in sorted((ROOT / package).rglob("*.py"))
                for line, name in imported_modules(path.read_text())
                if name.split(".")[0] in forbidden]
    assert not offences, "\n".join(offences)
