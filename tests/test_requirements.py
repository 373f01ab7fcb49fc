"""A logged model declares what its bundled specflow code imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from specflow.registry.promotion import pip_requirements
from specflow.registry.requirements import specflow_closure

MODELS = ["specflow.registry.model_code", "specflow.registry.identifier_code"]


def names(requirements: list[str]) -> set[str]:
    return {r.split("==")[0] for r in requirements}


def test_the_phase_model_declares_what_its_preprocessing_imports():
    declared = names(pip_requirements())
    assert {"torch", "mlflow", "pybaselines", "scikit-learn", "xarray"} <= declared
    assert "pymatgen" not in declared and "onnxruntime" not in declared  # not on its path
    assert all("==" in r for r in pip_requirements())
    assert "pymatgen" in names(pip_requirements("specflow.registry.identifier_code"))


@pytest.mark.parametrize("module", MODELS)
def test_the_static_closure_covers_what_loading_the_model_imports(module):
    """Import the model's code in a fresh interpreter: every specflow module it loads (and so
    every import those make) is one the requirement scan read."""
    code = (f"import sys, json, {module}; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'specflow')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert loaded and loaded <= specflow_closure(module)[0], loaded - specflow_closure(module)[0]
