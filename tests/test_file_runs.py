"""Runs from files into Tiled and back out: the NeXus writer, file runs stored as Bluesky
runs, and the export of Tiled's labels."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

from specflow.annotate.export import export_annotations
from specflow.data.io import read_spectra, write_xy
from specflow.data.nexus import write_nxazint1d
from specflow.ingest.files import write_runs
from specflow.ingest.reader import run_to_dataset
from specflow.simulator.simulate import simulate_run


@pytest.fixture(scope="module")
def run_with_gaps():
    ds = simulate_run("Fe", 24, seed=5).drop_vars("label")
    ds["intensity"][3, 100:140] = np.nan  # a detector gap
    return ds.assign_attrs(sample="Fe")


def test_nexus_written_reads_back_as_the_run_with_results_beside(run_with_gaps, tmp_path):
    results = pd.DataFrame({"label": np.arange(24) % 3,
                            "phase": ["before", "during", "after"] * 8,
                            "p_after": np.linspace(0, 1, 24)})
    path = write_nxazint1d(run_with_gaps, tmp_path / "run.nxs", results,
                           {"program": "specflow", "note": {"onset": 13.1}})
    back = read_spectra(path)
    assert np.array_equal(back.intensity.values, run_with_gaps.intensity.values, equal_nan=True)
    assert np.allclose(back.two_theta, run_with_gaps.two_theta)
    assert np.allclose(back.pressure, run_with_gaps.pressure)
    assert np.allclose(back.time, run_with_gaps.time)
    assert back.attrs["sample"] == "Fe"
    assert back.attrs["wavelength"] == pytest.approx(run_with_gaps.attrs["wavelength"])
    with h5py.File(path) as f:
        assert f["entry/phases"].attrs["NX_class"] == "NXprocess"
        assert f["entry/phases/phase"].asstr()[:].tolist() == results.phase.tolist()
        assert np.array_equal(f["entry/phases/label"][:], results.label)
    with pytest.raises(ValueError, match="run2.nxs: 3 result rows for 24 curves"):
        write_nxazint1d(run_with_gaps, tmp_path / "run2.nxs", results.head(3))
    assert not list(tmp_path.glob(".*partial")) and not (tmp_path / "run2.nxs").exists()


def test_a_folder_of_xy_files_reads_back_as_the_run(run_with_gaps, tmp_path):
    """Gaps written as nan keep the grid; time_s headers give the times back."""
    timed = run_with_gaps.assign_coords(time=("curve", 1.7e9 + 0.37 * np.arange(24)))
    write_xy(timed, tmp_path / "run")
    back = read_spectra(tmp_path / "run")
    assert np.allclose(back.two_theta.values, timed.two_theta.values, rtol=0, atol=1e-6)
    assert np.array_equal(np.isnan(back.intensity.values), np.isnan(timed.intensity.values))
    assert np.allclose(back.time.values, timed.time.values, rtol=0, atol=1e-6)
    assert back.attrs["wavelength"] == pytest.approx(timed.attrs["wavelength"], rel=1e-6)


def test_a_file_run_stored_in_tiled_reads_back_bit_for_bit(tiled_client, run_with_gaps):
    (stored,) = write_runs(tiled_client, {"run_a": run_with_gaps}, {"proposal": 4711})
    uid = stored.uid
    run = tiled_client[uid]
    assert run.metadata["start"]["run_name"] == "run_a"
    assert run.metadata["start"]["proposal"] == 4711
    back = run_to_dataset(run)
    assert np.array_equal(back.intensity.values, run_with_gaps.intensity.values, equal_nan=True)
    assert np.allclose(back.two_theta, run_with_gaps.two_theta)
    assert np.array_equal(back.pressure.values, run_with_gaps.pressure.values)
    # file times (s from the start) are placed at the moment of storing, spacing kept
    assert back.time.values[0] > 1e9
    assert np.allclose(back.time.values - run.metadata["start"]["time_offset"],
                       run_with_gaps.time.values)
    assert back.attrs["energy"] == pytest.approx(run_with_gaps.attrs["energy"])
    # the same run again is not stored twice; an energy alone names the beam
    assert write_runs(tiled_client, {"run_a": run_with_gaps})[0] == type(stored)("run_a", uid,
                                                                                 False)
    only_energy = run_with_gaps.assign_attrs(energy=30.0)
    del only_energy.attrs["wavelength"]
    (again,) = write_runs(tiled_client, {"run_b": only_energy})
    assert again.new and run_to_dataset(tiled_client[again.uid]).attrs["energy"] == 30.0
    with pytest.raises(ValueError, match=r"metadata keys \['uid'\] are the start document"):
        write_runs(tiled_client, {"run_c": run_with_gaps}, {"uid": "mine"})


def test_export_of_a_run_without_labels_names_it_and_the_fix(tiled_client, run_with_gaps,
                                                             tmp_path):
    uid = write_runs(tiled_client, {"unlabelled": run_with_gaps})[0].uid
    with pytest.raises(ValueError, match=f"run {uid}: .*label it first with 'specflow annotate'"):
        export_annotations(tiled_client, [uid], tmp_path)
    frame = export_annotations(tiled_client, [uid], tmp_path, skip_unlabelled=True)
    assert frame.empty and (tmp_path / "summary.csv").exists()


def test_training_data_from_files_or_tiled_never_both(cli, tmp_path):
    out = cli(["pipeline", "--data", tmp_path / "x.nc", "--run", "abc", "--tiled-uri",
               "http://127.0.0.1:9"], exit_code=2)
    assert "not both" in out
