"""Dependencies run one way: data → models → learn → registry → annotate; ingest beside
(it uses data only, and registry/annotate may read runs through it). Checked on every
import in the package, including those inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import specflow

ROOT = Path(specflow.__file__).parent
LAYER = {"data": 0, "plots": 0, "models": 1, "learn": 2, "options": 2, "registry": 3,
         "annotate": 4}
TOP = {"cli", "demo", "errors", "__init__"}  # the application: may use every layer


def specflow_imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m.split(".")[1] for m in out if m.startswith("specflow.")}


def allowed(importer: str, target: str) -> bool:
    if importer in TOP or importer == target:
        return True
    if importer == "ingest":
        return target == "data"
    if target == "ingest":
        return importer in ("registry", "annotate")
    return target in LAYER and importer in LAYER and LAYER[target] <= LAYER[importer]


def test_dependencies_run_one_way():
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        importer = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        wrong += [f"{rel} imports specflow.{t}" for t in specflow_imports(path)
                  if not allowed(importer, t)]
    assert wrong == []


def test_no_global_backend_or_environment_changes_at_import():
    import subprocess
    import sys

    code = ("import os, matplotlib; before = dict(os.environ); "
            "import specflow.cli, specflow.plots, specflow.registry.steps, specflow.annotate; "
            "changed = {k for k in set(os.environ) | set(before) "
            "if os.environ.get(k) != before.get(k) and not k.startswith('_MLFLOW')}; "
            "print(matplotlib.get_backend() == 'pdf', changed == set())")  # _MLFLOW_*: MLflow's own
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PATH": "", "MPLBACKEND": "pdf"})
    assert out.stdout.split() == ["True", "True"], out.stderr
