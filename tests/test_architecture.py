"""Dependencies run one way: data → simulator, models → learn → identify → registry →
annotate; production ingest beside (it uses data only; the simulated beamline records
through it, registry and annotate read runs through it); local servers (Tiled, PostgreSQL)
only for the application, tests and benchmarks; the CLI and the demo sit on top. Imports
sit at module top; the lower layers know nothing of the servers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import specflow

ROOT = Path(specflow.__file__).parent
LAYER = {"data": 0, "plots": 0, "simulator": 1, "models": 1, "learn": 2, "identify": 3,
         "registry": 4, "annotate": 5}
TOP = {"cli", "demo", "__init__"}  # the application: may use every layer
#: Imports allowed inside functions: optional extras.
LAZY = {("learn/metrics.py", "umap"),
        ("models/export.py", "onnxruntime"),
        ("annotate/remote.py", "bluesky_kafka")}
#: Third-party packages a layer must not import (servers and the CLI stay out of the core).
FORBIDDEN = {
    "data": {"mlflow", "tiled", "bluesky", "ophyd", "typer", "click"},
    "simulator": {"mlflow", "typer", "click"},
    "identify": {"mlflow", "tiled", "bluesky", "ophyd", "typer", "click"},
    "servers": {"mlflow", "torch", "typer", "click"},
    "models": {"mlflow", "tiled", "bluesky", "ophyd", "typer", "click"},
    "learn": {"mlflow", "tiled", "bluesky", "ophyd", "typer", "click"},
    "registry": {"bluesky", "ophyd", "typer", "click"},
    "annotate": {"typer", "click"},
    "ingest": {"mlflow", "torch", "typer", "click"},
    "plots": {"mlflow", "tiled", "torch", "typer", "click"},
}


def _modules(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def _layer(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def specflow_imports(path: Path) -> set[str]:
    return {m.split(".")[1] for m in _modules(path) if m.startswith("specflow.")}


def allowed(importer: str, target: str) -> bool:
    if importer in TOP or importer == target:
        return True
    if importer == "simulator":  # the simulator knows no models, learning or registry
        return target in ("data", "ingest")
    if importer == "ingest":
        return target == "data"
    if target == "ingest":
        return importer in ("simulator", "registry", "annotate")
    if target == "servers":  # local servers: the application, tests and benchmarks only
        return False
    if importer == "servers":
        return target == "data"
    return target in LAYER and importer in LAYER and LAYER[target] <= LAYER[importer]


def test_dependencies_run_one_way():
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        importer = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        wrong += [f"{rel} imports specflow.{t}" for t in specflow_imports(path)
                  if not allowed(importer, t)]
    assert wrong == []


def test_imports_sit_at_module_top():
    inside = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    name = (node.module if isinstance(node, ast.ImportFrom)
                            else node.names[0].name) or ""
                    if (rel, name.split(".")[0]) not in LAZY:
                        inside.append(f"{rel}:{node.lineno} {name}")
    assert inside == []


def test_lower_layers_do_not_import_servers_or_the_cli():
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        layer = _layer(path)
        banned = FORBIDDEN.get(layer, set())
        wrong += [f"{path.relative_to(ROOT)} imports {m}" for m in _modules(path)
                  if m.split(".")[0] in banned]
    assert wrong == []


@pytest.mark.slow
def test_no_global_backend_or_environment_changes_at_import():
    import subprocess
    import sys

    # Third-party packages set their own variables on import (sklearn/joblib: KMP_*,
    # blosc2, MLflow telemetry); import them first so only specflow's own writes count.
    code = ("import os, matplotlib, sklearn, joblib, mlflow, tiled.client, blosc2, torch; "
            "before = dict(os.environ); "
            "import specflow.cli, specflow.plots, specflow.registry.steps, specflow.annotate; "
            "changed = {k for k in set(os.environ) | set(before) "
            "if os.environ.get(k) != before.get(k) and not k.startswith('_MLFLOW')}; "
            "print(matplotlib.get_backend() == 'pdf', changed == set())")  # _MLFLOW_*: MLflow's own
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PATH": "", "MPLBACKEND": "pdf"})
    assert out.stdout.split() == ["True", "True"], out.stderr
