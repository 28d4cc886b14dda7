"""Scripts that train with ``use_lightning=False`` or only predict never import Lightning (issue: start-up)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import fit_cli_checkpoint


def run_python(code: str) -> dict:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_tabularnet_imports_nothing_heavy():
    loaded = run_python(
        """
        import json, sys
        import tabularnet
        print(json.dumps(sorted(m for m in ("torch", "lightning", "pandas", "sklearn", "xgboost") if m in sys.modules)))
        """
    )
    assert loaded == []


def test_plain_pytorch_training_and_prediction_never_import_lightning(table_files, tmp_path):
    # a checkpoint written by `tabularnet fit` (in this process, which has Lightning) ...
    ckpt = fit_cli_checkpoint(table_files["train"], tmp_path)
    # ... and a fresh process that trains, saves, loads and predicts without it
    report = run_python(
        f"""
        import json, sys
        import pandas as pd
        from tabularnet import MLPClassifier, TransformerClassifier

        train = pd.read_csv({str(table_files["train"])!r})
        X, y = train.drop(columns="target"), train["target"]
        for cls in (MLPClassifier, TransformerClassifier):
            model = cls(training={{"epochs": 1, "batch_size": 64}}).fit(X, y)
            model.save({str(tmp_path / "model.ckpt")!r})
            again = cls.load({str(tmp_path / "model.ckpt")!r})
            assert (again.predict_proba(X) == model.predict_proba(X)).all()
        from_cli = MLPClassifier.load({str(ckpt)!r})
        lightning = [m for m in sys.modules if m.split(".")[0] in ("lightning", "pytorch_lightning")]
        xgboost = "xgboost" in sys.modules
        print(json.dumps({{"rows": len(from_cli.predict(X)), "lightning": lightning, "xgboost": xgboost}}))
        """
    )
    assert report == {"rows": 300, "lightning": [], "xgboost": False}


def test_tabular_data_imports_no_lightning():
    loaded = run_python(
        """
        import json, sys
        import tabularnet.data.tabular_data
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("lightning", "pytorch_lightning"))))
        """
    )
    assert loaded == []


# ------------------------------------------------------------------------------------------- import graph
PACKAGE = Path(__file__).resolve().parent.parent / "tabularnet"


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str], *, module_level: bool, root: Path = PACKAGE) -> set[str]:
    """The modules of ``modules`` that ``path`` imports; ``module_level``: only the imports that run when it is
    imported (not those inside functions, nor under ``if TYPE_CHECKING:``). Other imports are named as written."""
    name, is_package = module_name(path, root), path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if module_level and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if module_level and isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for statement in child.orelse:
                    visit(ast.Module(body=[statement], type_ignores=[]))
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:  # relative: from the package holding this module, `level - 1` packages up
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    module = ".".join([*base, *([child.module] if child.module else [])])
                else:
                    module = child.module or ""
                for alias in child.names:  # `from package import module` imports the module
                    found.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in modules else module)
            else:
                visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return {m for m in found if m != name and (m in modules or not m.startswith(root.name))}


def import_graph(root: Path = PACKAGE, *, module_level: bool = True) -> dict[str, set[str]]:
    """``module -> the package's modules it imports`` for every module of the package at ``root``."""
    paths = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    return {
        name: {m for m in imported_modules(path, set(paths), module_level=module_level, root=root) if m in paths}
        for name, path in paths.items()
    }


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return cycles


def test_import_cycle_check_finds_a_cycle(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("from .. import c\n")
    (package / "c.py").write_text("import pkg.a\n")
    (package / "d.py").write_text("def f():\n    import pkg.a\n")  # at call time: not a module-level edge
    (package / "e.py").write_text("import pkg.d\n")
    graph = import_graph(package)
    assert import_cycles(graph) == [["pkg.a", "pkg.c", "pkg.sub.b"]]
    assert graph["pkg.d"] == set() and graph["pkg.e"] == {"pkg.d"}


def test_no_import_cycles_between_modules():
    assert import_cycles(import_graph()) == []


def test_the_data_layer_below_lightning():
    """Only data/datamodule.py imports Lightning, and no other data module imports it (not even in a function)."""
    modules = set(import_graph())
    for path in sorted((PACKAGE / "data").glob("*.py")):
        imported = imported_modules(path, modules, module_level=False)
        lightning = {m for m in imported if m.split(".")[0] in ("lightning", "pytorch_lightning")}
        if path.name == "datamodule.py":
            assert lightning, "the Lightning data module imports Lightning"
        else:
            assert not lightning and "tabularnet.data.datamodule" not in imported, path.name
