"""A command's module imports only what the command uses: the catalog query starts without
torch, pymatgen, MLflow, pyFAI, Dask or numba (start-up of seconds otherwise)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from specflow.cli import COMMANDS

HEAVY = ("torch", "pymatgen", "mlflow", "pyFAI", "dask", "numba")


def loaded_heavy(code: str) -> list[str]:
    tops = "{m.split('.')[0] for m in sys.modules}"
    probe = f"import sys, json; {code}; print(json.dumps(sorted({tops} & {set(HEAVY)!r})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("code", [
    "import specflow.cli.query",
    "from specflow.cli import load_command; load_command('phases')",
    "import specflow, specflow.annotate, specflow.ingest, specflow.simulator, "
    "specflow.servers",  # packages: names load on use
])
def test_the_query_path_imports_no_heavy_package(code):
    assert loaded_heavy(code) == []


def test_lazy_package_names_still_resolve():
    import specflow.annotate as annotate
    import specflow.ingest as ingest

    assert callable(annotate.find_phases) and callable(ingest.run_to_dataset)
    with pytest.raises(AttributeError, match="nope"):
        annotate.nope  # noqa: B018


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_loads_with_its_help_without_heavy_packages(name):
    """``specflow <name> --help`` builds the command: its module imports the library lazily
    (lazy_loader proxies), so the help starts in well under a second."""
    assert loaded_heavy(f"from specflow.cli import load_command; load_command({name!r})") == []
