"""A training run scored as unseen is refused (and a near-copy warned about): evaluate, the
promotion gate, and the fingerprints behind them."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from specflow.data.fingerprint import (
    TrainingRunInTest,
    overlaps,
    refuse_training_runs,
    run_fingerprint,
)
from specflow.data.io import write_spectra
from specflow.simulator.simulate import simulate_family


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs")
    a, b, c = simulate_family("Fe", 3, n_curves=(60, 70), seed=31)
    paths = {"fe": write_spectra(a, d / "fe.nc"), "other": write_spectra(b, d / "other.nc")}
    shutil.copy(paths["fe"], d / "fe_copy.nc")
    paths["copy"] = d / "fe_copy.nc"
    paths["same_uid"] = write_spectra(c.assign_attrs(run_uid=a.attrs["run_uid"]),
                                      d / "same_uid.nc")
    cropped = a.isel(curve=slice(5, 50))  # re-exported by another tool: no run_uid kept
    cropped.attrs = {k: v for k, v in a.attrs.items() if k != "run_uid"}
    paths["cropped"] = write_spectra(cropped, d / "cropped.nc")
    return paths


def test_fingerprint_names_curves_and_pressures():
    a, b = simulate_family("Si", 2, n_curves=40, seed=32)
    assert run_fingerprint(a) == run_fingerprint(a.copy(deep=True))
    assert run_fingerprint(a) != run_fingerprint(b)
    assert run_fingerprint(a) != run_fingerprint(a.assign_coords(pressure=a.pressure + 0.1))
    moved = a.copy(deep=True)
    moved["intensity"].values[0, 0] += 1
    assert run_fingerprint(a) != run_fingerprint(moved)
    crop = a.isel(curve=slice(0, 30))
    assert [(o.test, o.exact) for o in overlaps({"a": a}, {"crop": crop, "b": b})] == [
        ("crop", True)]  # same run_uid: the same run
    crop.attrs = {}
    assert [(o.test, o.exact) for o in overlaps({"a": a}, {"crop": crop, "b": b})] == [
        ("crop", False)]  # only its pressures tell: a near-duplicate
    with pytest.raises(TrainingRunInTest, match="test run copy is training run a"):
        refuse_training_runs({"a": a}, {"copy": a.copy(deep=True)})


@pytest.mark.parametrize("kind, reason", [
    ("fe", "the same file"), ("copy", "the same run_uid"), ("same_uid", "the same run_uid")])
def test_evaluate_refuses_a_training_run_as_test_run(cli, files, kind, reason):
    out = cli(["evaluate", "--data", files["fe"], "--test", files[kind], "--method", "raw",
               "--corpus", "none", "--label-fraction", "0.1"], exit_code=2)
    assert "refused" in out and reason in out and "fe" in out
    assert len([line for line in out.splitlines() if line.strip()]) <= 3


def test_evaluate_refuses_the_same_curves_under_another_uid(cli, files, tmp_path):
    from specflow.data.io import read_spectra

    renamed = write_spectra(read_spectra(files["fe"]).assign_attrs(run_uid="another"),
                            tmp_path / "renamed.nc")
    out = cli(["evaluate", "--data", files["fe"], "--test", renamed, "--method", "raw",
               "--corpus", "none", "--label-fraction", "0.1"], exit_code=2)
    assert "the same curves and pressures" in out


@pytest.mark.slow
def test_evaluate_warns_about_a_cropped_copy_and_scores_a_real_test_run(cli, files, tmp_path):
    out = cli(["evaluate", "--data", files["fe"], "--test", files["cropped"], files["other"],
               "--method", "raw", "--corpus", "none", "--label-fraction", "0.1",
               "--json", tmp_path / "r.json"])
    assert "warning" in out and "looks like a copy of training run fe" in out
    import json

    result = json.loads((tmp_path / "r.json").read_text())
    assert set(result["test"]) == {"cropped", "other"}
    for key in ("end_error_gpa", "boundary_error_curves", "accuracy_outside_boundaries"):
        assert key in result["overall"]
    assert np.isfinite(result["overall"]["boundary_error_curves"])
