"""docs/walkthrough.md runs as written: every command and Python block in order, against a
real Tiled server and an embedded MLflow store, each printing what the page shows."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "walkthrough.md"
FENCE = re.compile(r"```(console|python|text)\n(.*?)```", re.DOTALL)
WORD = re.compile(r"[A-Za-z][A-Za-z_]{3,}")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
#: how far a number the page shows may be from what its Python prints (labels can flip on
#: another CPU's arithmetic; a changed model or reader moves them further)
NUMBER_TOLERANCE = 2.0


@dataclass
class Step:
    kind: str  # "console" or "python"
    source: str  # the command line or the code
    shown: str  # the output the page shows


def page_steps(text: str) -> list[Step]:
    """Commands (``$ …`` lines, each followed by the output shown) and Python blocks (each
    followed by a ``text`` block of what it prints)."""
    steps: list[Step] = []
    for kind, body in FENCE.findall(text):
        if kind == "python":
            steps.append(Step("python", body, ""))
            continue
        if kind == "text":
            assert steps and steps[-1].kind == "python", "a text block follows Python code"
            steps[-1].shown = body
            continue
        for line in body.splitlines():
            if line.startswith("$ "):
                steps.append(Step("console", line[2:], ""))
            elif steps:
                steps[-1].shown += line + "\n"
    return steps


def run_step(step: Step, env: dict[str, str], namespace: dict, cli) -> str:
    """Run one step in the current directory; return what it printed."""
    if step.kind == "python":
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(step.source, str(PAGE), "exec"), namespace)  # noqa: S102
        return out.getvalue()
    argv = shlex.split(step.source)
    if argv[0] == "specflow":
        return cli(argv[1:], env={**env, "COLUMNS": "100"})
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def test_the_page_lists_its_steps_with_their_outputs():
    steps = page_steps(PAGE.read_text())
    commands = [s.source.split()[1] for s in steps if s.kind == "console"
                and s.source.startswith("specflow")]
    assert commands == ["simulate", "plot", "pipeline", "label", "ingest", "annotate",
                        "phases", "export"]
    assert all(s.shown.strip() for s in steps), "an output is missing"


@pytest.mark.usefixtures("embedded_tracking")
def test_walkthrough_runs_as_written(tiled_server, tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    env = {"TILED_URI": tiled_server.api_uri, "TILED_API_KEY": tiled_server.api_key}
    namespace: dict = {}
    for step in page_steps(PAGE.read_text()):
        printed = run_step(step, env, namespace, cli)
        missing = sorted(set(WORD.findall(step.shown)) - set(WORD.findall(printed)))
        assert not missing, f"{step.source}: the page shows {missing}, not printed:\n{printed}"
        if step.kind == "python":  # its numbers too: the page's results are this code's
            shown, got = (np.array(NUMBER.findall(x), float) for x in (step.shown, printed))
            assert shown.shape == got.shape and np.allclose(shown, got, atol=NUMBER_TOLERANCE), \
                f"the page shows\n{step.shown}\nthe code printed\n{printed}"
    # what the steps left behind is what the page says
    labels = pd.read_csv("results/run0/labels.csv")
    assert set(labels.phase) == {"before", "during", "after"}
    assert len(Path("run0_after.txt").read_text().splitlines()) == (labels.phase == "after").sum()
    exported = sorted(Path("takeaway").glob("run*-*/labels.csv"))
    assert [p.parent.name[:4] for p in exported] == ["run0", "run1", "run2"]
    for path in exported:  # Tiled's labels are the file labels of the same model
        from_files = pd.read_csv(Path("results") / path.parent.name[:4] / "labels.csv")
        from_tiled = pd.read_csv(path)
        assert np.array_equal(from_tiled.label, from_files.label)
        assert np.allclose(from_tiled.p_after, from_files.p_after, atol=1e-6)
        assert from_tiled.file.tolist() == from_files.file.tolist()
    with h5py.File(next(Path("takeaway").glob("run0-*/run0-*.nxs"))) as f:
        assert f["entry/definition"][()] == b"NXazint1d"
        assert np.array_equal(f["entry/phases/label"][:], labels.label.to_numpy())
