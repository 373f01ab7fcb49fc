"""The short soak: ``benchmarks/soak.py`` with five Tiled kills, an MLflow outage, a
promotion and a killed Dask worker, against a PostgreSQL-backed Tiled server and an MLflow
server in their own processes. Nothing may be lost, duplicated, left partial or labelled
differently from a clean run, and no traceback may reach a user."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]
SOAK = Path(__file__).resolve().parents[1] / "benchmarks" / "soak.py"


def test_short_soak_loses_nothing(postgres):  # the fixture: skip or fail without PostgreSQL
    out = subprocess.run([sys.executable, str(SOAK), "--runs", "30", "--tiled-kills", "5",
                          "--mlflow-down", "5", "--settle", "240"],
                         capture_output=True, text=True, timeout=1500,
                         env={**{k: v for k, v in os.environ.items()
                                 if not k.startswith("MLFLOW_")}, "COLUMNS": "200"})
    table = out.stdout[out.stdout.find("| what | value |"):]
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = dict(re.findall(r"^\| (.+?) \| (.*?) \|$", table, re.MULTILINE))
    assert rows["runs finished (stored with their stop document)"] == "30"
    faults = rows["faults injected"]
    assert faults.count("Tiled killed") == 5 and "MLflow stopped" in faults
    assert "promoted to champion" in faults
    assert rows["worker killed"] == "yes"
    for what in ("runs lost (no published node of the champion)",
                 "runs with duplicate complete nodes", "partial nodes left",
                 "runs whose labels differ from a clean run", "tracebacks shown to a user"):
        assert rows[what] == "0", what
