"""Files as facilities write them: pyFAI (text and NeXus), Dioptas/Fit2D .chi, GSAS-II FXYE;
runs named by folders and globs; labels given as a table or pressure ranges."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

from specflow.data.io import read_spectra
from specflow.data.labels import LabelSpec
from specflow.data.schema import SpectraValidationError, energy_to_wavelength, two_theta_to_q
from specflow.data.sources import NoSuchRun, find_runs, read_one, read_runs
from specflow.simulator.simulate import simulate_run

RING_DEG = 12.0  # 2θ of the one ring in the pyFAI test image


@pytest.fixture(scope="module")
def integrator():
    """A real pyFAI integrator at 0.4 Å and an image with one Debye–Scherrer ring."""
    ai = AzimuthalIntegrator(dist=0.15, poni1=0.04, poni2=0.04, pixel1=1e-4, pixel2=1e-4,
                             wavelength=0.4e-10)
    tth = np.degrees(ai.twoThetaArray((800, 800)))
    image = 100 + 5000 * np.exp(-0.5 * ((tth - RING_DEG) / 0.05) ** 2)
    return ai, image.astype(np.float32)


def test_pyfai_text_files_land_on_one_2theta_axis(integrator, tmp_path):
    ai, image = integrator
    peaks = {}
    for unit, name in (("2th_deg", "a.xy"), ("q_nm^-1", "b.xy"), ("q_A^-1", "c.dat")):
        ai.integrate1d(image, 600, unit=unit, filename=str(tmp_path / name))
        text = (tmp_path / name).read_text()
        (tmp_path / name).write_text("# pressure_GPa=3.5\n" + text)
        ds = read_spectra(tmp_path / name)
        assert ds.attrs["wavelength"] == pytest.approx(0.4)  # from pyFAI's header
        assert ds.attrs.get("radial_unit", "2th_deg") == unit
        peaks[unit] = float(ds.two_theta[int(np.argmax(ds.intensity.values[0]))])
    for unit, at in peaks.items():
        assert at == pytest.approx(RING_DEG, abs=0.05), unit
    # the older pyFAI header: "Wavelength: … m" and the column line
    lines = ["# == pyFAI calibration ==", "# Tilt: 0.000 deg  TiltPlanRot: 0.000 deg",
             "# Wavelength: 5.0e-11 m", "# pressure_GPa=2", "#       q_nm^-1       I"]
    q = np.linspace(5, 60, 56)
    np.savetxt(tmp_path / "old.xy", np.column_stack([q, 1 + np.exp(-(q - 30) ** 2)]),
               header="\n".join(s[2:] for s in lines), comments="# ")
    ds = read_spectra(tmp_path / "old.xy")
    assert ds.attrs["wavelength"] == pytest.approx(0.5)
    assert float(ds.two_theta[int(np.argmax(ds.intensity.values[0]))]) == pytest.approx(
        np.degrees(2 * np.arcsin(3.0 * 0.5 / (4 * np.pi))), abs=0.1)


def test_dioptas_fit2d_and_gsas_files(tmp_path):
    x = np.linspace(4, 20, 200)
    y = 10 + 100 * np.exp(-0.5 * ((x - 11) / 0.1) ** 2)
    rows = "\n".join(f"{a:.5f} {b:.4f}" for a, b in zip(x, y, strict=True))
    (tmp_path / "fit2d.chi").write_text(f"run_001.tif\n2-Theta Angle (Degrees)\nIntensity\n"
                                        f"       {x.size}\n{rows}\n")
    q = two_theta_to_q(x, 0.3)
    qrows = "\n".join(f"{a:.6f} {b:.4f}" for a, b in zip(q, y, strict=True))
    (tmp_path / "dioptas.chi").write_text(f"run_001.tif\nq_A^-1\n\n       {x.size}\n{qrows}\n")
    fxye = "\n".join(f"{100 * a:.3f} {b:.4f} {np.sqrt(b):.3f}" for a, b in zip(x, y, strict=True))
    (tmp_path / "gsas.fxye").write_text(
        "Fe run 1\nInstrument parameter file: inst.prm\n"
        f"BANK 1 {x.size} {x.size} CONS 400.0 8.04 0 0 FXYE\n{fxye}\n")
    for name in ("fit2d.chi", "gsas.fxye"):
        ds = read_spectra(tmp_path / name, pressure=[1.0])
        assert np.allclose(ds.two_theta, x, atol=1e-3), name
    with pytest.raises(SpectraValidationError, match="dioptas.chi: the curve is in q_A"
                       r"\^-1; .*--wavelength"):
        read_spectra(tmp_path / "dioptas.chi", pressure=[1.0])
    ds = read_spectra(tmp_path / "dioptas.chi", pressure=[1.0],
                      energy_kev=energy_to_wavelength(0.3))
    assert np.allclose(ds.two_theta, x, atol=1e-4) and ds.attrs["energy"] == pytest.approx(
        energy_to_wavelength(0.3))
    (tmp_path / "std.gsa").write_text("title\nBANK 1 200 20 CONS 400 8 0 0 STD\n1 2 3\n4 5 6\n")
    with pytest.raises(SpectraValidationError, match="std.gsa:2: GSAS bank format .*FXYE"):
        read_spectra(tmp_path / "std.gsa", pressure=[1.0])


def test_bad_text_inputs_name_the_file_and_the_fix(tmp_path):
    x = np.linspace(100, 900, 50)  # no unit named, not degrees
    np.savetxt(tmp_path / "pixels.xy", np.column_stack([x, np.ones(50) + x / 100]),
               header="pressure_GPa=1")
    with pytest.raises(SpectraValidationError, match="pixels.xy: radial values 100…900 are "
                       "not 2θ in degrees; name the unit"):
        read_spectra(tmp_path / "pixels.xy")
    q = np.linspace(1, 80, 40)  # Q beyond what the beam reaches
    np.savetxt(tmp_path / "far.xy", np.column_stack([q, q]), header="pressure_GPa=1\nq_A^-1 I")
    with pytest.raises(SpectraValidationError, match="far.xy: q_A\\^-1 values up to 80 are "
                       "beyond"):
        read_spectra(tmp_path / "far.xy", wavelength=0.5)
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name, unit in (("a.xy", "2th_deg"), ("b.xy", "q_nm^-1")):
        np.savetxt(folder / name, np.column_stack([np.linspace(5, 20, 30), np.arange(30.0)]),
                   header=f"pressure_GPa=1\nWavelength: 4e-11 m\n{unit} I")
    with pytest.raises(SpectraValidationError, match="b.xy: radial unit q_nm\\^-1 differs"):
        read_spectra(folder)
    (folder / "b.xy").write_text((folder / "b.xy").read_text()
                                 .replace("q_nm^-1", "2th_deg").replace("4e-11", "5e-11"))
    with pytest.raises(SpectraValidationError, match="b.xy: wavelength 0.5 Å differs"):
        read_spectra(folder)
    with pytest.warns(UserWarning,
                      match=r"a.xy: the file says 0.4 Å \(31 keV\); using the 0.45 Å given"):
        assert read_spectra(folder, wavelength=0.45).attrs["wavelength"] == 0.45


def test_nexus_nxazint1d_as_pyfai_writes_it(integrator, tmp_path):
    from pyFAI.io.nexus import save_NXazint1d

    ai, image = integrator
    results = [ai.integrate1d(image * k, 500, unit="q_A^-1") for k in (1.0, 1.5, 2.0)]
    save_NXazint1d(str(tmp_path / "stack.h5"), results)
    with pytest.raises(SpectraValidationError, match="stack.h5: no pressure dataset"):
        read_spectra(tmp_path / "stack.h5")
    ds = read_spectra(tmp_path / "stack.h5", pressure=[1.0, 2.0, 3.0])
    assert ds.sizes["curve"] == 3 and ds.attrs["wavelength"] == pytest.approx(0.4)
    peak = float(ds.two_theta[int(np.argmax(ds.intensity.values[2]))])
    assert peak == pytest.approx(RING_DEG, abs=0.05)


def _pyfai_folder(ds, folder, unit="q_nm^-1"):
    """``ds`` as pyFAI writes it: a text file per curve, JSON .poni header, Q in nm⁻¹."""
    folder.mkdir(parents=True)
    lam = energy_to_wavelength(ds.attrs["energy"])
    x = two_theta_to_q(ds.two_theta.values, lam) * 10 if unit == "q_nm^-1" else ds.two_theta
    poni = json.dumps({"dist": 0.2, "wavelength": lam * 1e-10}, indent=4).splitlines()
    for i in range(ds.sizes["curve"]):
        header = [*poni, f"pressure_GPa={float(ds.pressure[i]):.5f}", f"--> {folder}/x.xy",
                  f"{unit}  I"]
        np.savetxt(folder / f"frame_{i:04d}.xy", np.column_stack([x, ds.intensity[i]]),
                   header="\n".join(header), fmt="%.8e")


def test_folders_globs_and_labels_as_scientists_give_them(tmp_path):
    run = simulate_run("Fe", 36, seed=3, stop=25.0, decompress_to=8.0)
    _pyfai_folder(run, tmp_path / "beamtime" / "run_a")
    _pyfai_folder(run.isel(curve=slice(0, 20)), tmp_path / "beamtime" / "run_b")
    (tmp_path / "beamtime" / "labels.csv").write_text("run,curve,label\nrun_a,0,0\n")
    names = [s.name for s in find_runs([tmp_path / "beamtime"])]  # labels.csv is no run
    assert names == ["run_a", "run_b"]
    assert [s.name for s in find_runs([str(tmp_path / "beamtime" / "run_*" / "*.xy")])] == names
    with pytest.raises(NoSuchRun, match="nothing_here: no such file or folder"):
        find_runs([tmp_path / "nothing_here"])
    with pytest.raises(ValueError, match="names 2 runs"):
        read_one(tmp_path / "beamtime")
    ds = read_one(tmp_path / "beamtime" / "run_a")
    assert np.allclose(ds.two_theta, run.two_theta, atol=1e-5)
    assert np.array_equal(ds.intensity.values, run.intensity.values)
    # pressure ranges label the compression only: the way down keeps its hysteresis
    spec = LabelSpec(before_below=10.0, after_above=18.0)
    labelled = read_runs([tmp_path / "beamtime"], labels=spec)["run_a"]
    top = int(np.argmax(run.pressure.values))
    p, got = run.pressure.values, labelled.label.values
    assert (got[: top + 1][p[: top + 1] < 10] == 0).all()
    assert (got[: top + 1][p[: top + 1] > 18] == 2).all()
    assert (got[top + 1:] == -1).all() and (got[: top + 1][(p[: top + 1] >= 10)
                                                           & (p[: top + 1] <= 18)] == -1).all()
    agree = got >= 0
    assert np.array_equal(got[agree], run.label.values[agree])  # the simulator's truth
    # a labels table by file and by curve (with the run named)
    (tmp_path / "by_file.csv").write_text("file,label\nframe_0000.xy,before\nframe_0030.xy,2\n")
    one = read_one(tmp_path / "beamtime" / "run_a", LabelSpec(tmp_path / "by_file.csv"))
    assert one.label.values[0] == 0 and one.label.values[30] == 2 and (one.label >= 0).sum() == 2
    (tmp_path / "by_curve.csv").write_text("run,curve,label\nrun_b,3,during\nrun_a,5,0\n")
    both = read_runs([tmp_path / "beamtime"], labels=LabelSpec(tmp_path / "by_curve.csv"))
    assert both["run_b"].label.values[3] == 1 and (both["run_b"].label >= 0).sum() == 1
    (tmp_path / "bad.csv").write_text("curve,label\n0,maybe\n")
    with pytest.raises(SpectraValidationError, match="bad.csv: line 2: label 'maybe'"):
        read_one(tmp_path / "beamtime" / "run_a", LabelSpec(tmp_path / "bad.csv"))
    with pytest.raises(ValueError, match="overlap"):
        LabelSpec(before_below=20, after_above=10)


def test_pipeline_fits_a_folder_labelled_by_pressure(tmp_path, cli, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for i, seed in enumerate((11, 12)):
        run = simulate_run("Fe", 60, seed=seed)
        _pyfai_folder(run.drop_vars("label"), tmp_path / "data" / f"run{i}")
    gate = tmp_path / "gate.nc"
    from specflow.data.io import write_netcdf

    write_netcdf(simulate_run("Fe", 60, seed=13), gate)
    (tmp_path / "labels.csv").write_text("run,curve,label\nrun0,0,before\nrun1,59,after\n")
    out = cli(["pipeline", "--data", str(tmp_path / "data"), "--corpus", "Fe",
               "--labels", str(tmp_path / "labels.csv"),
               "--before-below", "11", "--after-above", "17", "--name", "folder-model",
               "--eval-data", str(gate), "--workdir", str(tmp_path)])
    assert "folder-model@champion -> version 1" in out
    out = cli(["plot", str(tmp_path / "data" / "run0"), "--out", str(tmp_path / "c.png"),
               "--before-below", "11", "--after-above", "17"])
    assert (tmp_path / "c.png").stat().st_size > 0


def test_headers_and_folders_that_could_be_misread(tmp_path):
    """Cases a review found: none may be read silently wrong."""
    from specflow.data.labels import pressure_labels
    from specflow.data.textformats import read_text_curve
    from specflow.ingest.keys import energy_kev, radial_key

    rows = "1 2\n2 3\n"
    (tmp_path / "thr.xy").write_text("# Detector threshold energy: 15 keV\n"
                                     "# pressure: 35 kbar\n# q_A^-1 I\n" + rows)
    curve = read_text_curve(tmp_path / "thr.xy")  # a threshold is not the beam
    assert curve.wavelength is None and curve.pressure == pytest.approx(3.5)
    (tmp_path / "ev.xy").write_text("# Beam energy: 30000\n# Q (1/Å) I\n" + rows)
    curve = read_text_curve(tmp_path / "ev.xy")
    assert curve.unit == "q_A^-1" and curve.wavelength == pytest.approx(0.4133, rel=1e-3)
    (tmp_path / "r.xy").write_text("# r_mm I\n" + rows)
    with pytest.raises(SpectraValidationError, match="r.xy: the radial unit 'r_mm'"):
        read_text_curve(tmp_path / "r.xy")
    (tmp_path / "nan.xy").write_text("# 2th_deg I\n1 2\nnan 3\n")
    with pytest.raises(SpectraValidationError, match="nan.xy: radial value of data row 2"):
        read_text_curve(tmp_path / "nan.xy")
    # a folder of runs with a note beside them; the same run name in two folders
    for folder in ("a", "b"):
        (tmp_path / "runs" / folder).mkdir(parents=True)
        simulate_run("Fe", 10, seed=1).to_netcdf(tmp_path / "runs" / folder / "run_1.nc")
    (tmp_path / "runs" / "a" / "notes.txt").write_text("sample loaded on Monday\n")
    names = [s.name for s in find_runs([tmp_path / "runs" / "a", tmp_path / "runs" / "b"])]
    assert names == ["run_1", "b_run_1"]  # plain names, never paths
    # compression in a cycled run: the way down (2 and 1 GPa) stays unlabelled
    got = pressure_labels(np.array([1, 5, 10, 6, 2, 1, 12, 15.0]), 4.0, 11.0)
    assert got.tolist() == [0, -1, -1, -1, -1, -1, 2, 2]
    (tmp_path / "frac.csv").write_text("curve,label\n0,2.7\n")
    with pytest.raises(SpectraValidationError, match="label '2.7'"):
        read_one(tmp_path / "runs" / "a", LabelSpec(tmp_path / "frac.csv"))
    # Tiled descriptors: a detector threshold is no beam energy, radians and 1/nanometer
    config = {"det": {"data": {"det_threshold_energy": 7.5, "mono_energy": 30.0,
                               "energy_units": "keV"}}}
    assert energy_kev(config, {}) == 30.0
    keys = {"I": {"dtype": "array", "shape": [5]},
            "two_theta": {"dtype": "array", "shape": [5], "units": "rad"},
            "q": {"dtype": "array", "shape": [5], "units": "1/nanometer"}}
    assert radial_key(keys, "I") == ("two_theta", "2th_rad")
    assert radial_key(keys, "I", "q") == ("q", "q_nm^-1")
