"""Every third-party module tabularnet imports is declared in pyproject.toml (dependencies or an optional extra)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tabularnet"
# import name -> distribution name, where they differ (or where the module comes with an extra's distribution)
DISTRIBUTIONS = {
    "yaml": "PyYAML",
    "sklearn": "scikit-learn",
    "docstring_parser": "docstring-parser",
    "PIL": "pillow",
}


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_distributions() -> dict[str, str]:
    """``{canonical distribution name: where}`` for ``dependencies`` and each optional extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [(r, "dependencies") for r in project["dependencies"]]
    for extra, extra_requirements in project.get("optional-dependencies", {}).items():
        requirements += [(r, f"extra {extra!r}") for r in extra_requirements]
    return {canonical(re.match(r"[A-Za-z0-9._-]+", r).group()): where for r, where in requirements}


def imported_modules() -> dict[str, list[str]]:
    """``{top-level module: [files importing it]}`` of every absolute import in tabularnet/**/*.py, including the
    ones inside functions (the optional, lazily imported dependencies)."""
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], []).append(str(path.relative_to(ROOT)))
    return found


def third_party(modules: dict[str, list[str]]) -> dict[str, list[str]]:
    return {m: files for m, files in modules.items() if m not in sys.stdlib_module_names and m != "tabularnet"}


def test_every_imported_third_party_module_is_declared():
    declared = declared_distributions()
    missing = {
        module: files
        for module, files in third_party(imported_modules()).items()
        if canonical(DISTRIBUTIONS.get(module, module)) not in declared
    }
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_the_scan_sees_lazy_imports_and_the_onnx_extra():
    """The walk finds imports inside functions; the ONNX modules come from the onnx extra, not the dependencies."""
    modules = third_party(imported_modules())
    assert {"torch", "lightning", "yaml", "tqdm", "docstring_parser", "onnx", "onnxruntime"} <= set(modules)
    declared = declared_distributions()
    assert declared["onnxruntime"] == declared["onnx"] == "extra 'onnx'"
    assert declared["pyyaml"] == declared["tqdm"] == declared["docstring-parser"] == "dependencies"
