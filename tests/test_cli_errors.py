"""Every expected user error through the real `specflow` app: a short message naming the file,
row or option, exit code 2 for usage and 1 for runtime, never a traceback."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from specflow.cli import app
from specflow.data.io import read_spectra
from specflow.data.schema import SpectraValidationError, make_spectra


def invoke(*args: str):
    out = CliRunner().invoke(app, list(args))
    return out, " ".join(out.output.split())


BAD_FILES = {
    "empty.nc": b"",
    "garbage.nc": b"not an HDF5 file at all",
    "empty.csv": b"",
    "header-only.csv": b"pressure,5.0,5.1\n",
    "text-cell.csv": b"pressure,5.0,5.1\n1.0,2,3\n2.0,4,x\n",
    "no-pressure.csv": b"5.0,5.1,5.2\n1,2,3\n2,3,4\n",
    "zero-curve.csv": b"pressure,5.0,5.1,5.2\n1.0,0,0,0\n2.0,1,5,2\n",
    "flipped.csv": b"pressure,5.0,5.1,5.2\n1.0,-1,-9,-2\n2.0,1,5,2\n",
    "absurd-pressure.csv": b"pressure,5.0,5.1,5.2\n1e30,1,5,2\n-50,1,5,2\n",
    "nan-time.csv": b"pressure,time,5.0,5.1,5.2\n1,nan,1,5,2\n2,1,1,5,2\n",
    "short.xy": b"# 2theta intensity\n5.0 1\n",
}
EXPECTED = {
    "empty.nc": "not a readable NetCDF-4", "garbage.nc": "not a readable NetCDF-4",
    "empty.csv": "not a spectra CSV", "header-only.csv": "no rows",
    "text-cell.csv": "line 3 (curve 1), column '5.1': 'x' is not a number",
    "no-pressure.csv": "missing pressure", "zero-curve.csv": "constant",
    "flipped.csv": "mostly negative", "absurd-pressure.csv": "pressure outside",
    "nan-time.csv": "time is NaN", "short.xy": "no two-column numeric data",
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_give_one_clear_line(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(BAD_FILES[name])
    out, text = invoke("plot", str(path), "--out", str(tmp_path / "x.png"))
    assert out.exit_code == 1, out.output
    assert "Traceback" not in out.output and "error:" in text
    assert name in text and EXPECTED[name] in text, text
    assert not (tmp_path / "x.png").exists()


def test_missing_file_and_debug_traceback(tmp_path):
    out, text = invoke("plot", str(tmp_path / "nope.nc"), "--out", str(tmp_path / "x.png"))
    assert out.exit_code == 2 and "nope.nc" in text and "Traceback" not in out.output
    path = tmp_path / "garbage.nc"
    path.write_bytes(b"junk")
    out = CliRunner().invoke(app, ["--debug", "plot", str(path), "--out",
                                   str(tmp_path / "x.png")])
    assert out.exit_code == 1 and isinstance(out.exception, SpectraValidationError)


@pytest.mark.parametrize("args,option", [
    (["evaluate", "--data", "a.nc", "--method", "nope"], "--method"),
    (["evaluate", "--data", "a.nc", "--label-strategy", "nope"], "--label-strategy"),
    (["evaluate", "--data", "a.nc", "--label-fraction", "1.5"], "--label-fraction"),
    (["evaluate", "--data", "a.nc", "--label-fraction", "-0.1"], "--label-fraction"),
    (["pretrain", "--data", "a.nc", "--epochs", "0"], "--epochs"),
    (["pretrain", "--data", "a.nc", "--epochs", "-3"], "--epochs"),
    (["probe", "--pretrain-run", "x", "--data", "a.nc", "--label-fraction", "-1"],
     "--label-fraction"),
    (["simulate", "--out", "a.nc", "--cell", "nope"], "--cell"),
    (["simulate", "--out", "s.txt"], "--out"),
    (["promote", "--version", "abc"], "--version"),
    (["demo", "--label-fraction", "1.5"], "--label-fraction"),
])
def test_bad_options_are_usage_errors(args, option):
    out, text = invoke(*args)
    assert out.exit_code == 2, out.output
    assert option in text and "Traceback" not in out.output


def test_registry_errors_name_what_to_check(tmp_path, mlflow_store, monkeypatch):
    from specflow.data.io import write_spectra
    from specflow.simulator.simulate import simulate_run

    data = write_spectra(simulate_run("Fe", 40, seed=2), tmp_path / "fe.nc")
    for model, words in ((f"models:/{mlflow_store.name}/99", "version"),
                         (f"models:/{mlflow_store.name}@nope", "alias"),
                         ("models:/no-such-model@champion", "no-such-model"),
                         ("not-a-uri", "not-a-uri")):
        out, text = invoke("suggest-labels", "--data", str(data), "--model", model)
        assert out.exit_code == 1, (model, out.output)
        assert words in text and "Traceback" not in out.output, text
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    out, text = invoke("register", "--probe-run", "x", "--workdir", str(tmp_path / "wrokdir"))
    assert out.exit_code == 1 and "no MLflow store in --workdir" in text
    assert not (tmp_path / "wrokdir").exists()  # a typo does not create an empty store


# ------------------------------------------------------------------ fuzz corpus
cell = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32).map(repr),
                 st.integers(-10**6, 10**6).map(str), st.sampled_from(["", "x", "nan", " "]))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.lists(st.one_of(st.sampled_from(["pressure", "time", "label"]),
                                 st.floats(0.5, 60).map(lambda v: f"{v:.3f}"),
                                 st.text(max_size=4)), min_size=0, max_size=6),
       rows=st.lists(st.lists(cell, min_size=0, max_size=7), max_size=6))
def test_fuzzed_csv_is_read_or_refused_clearly(tmp_path, header, rows):
    path = tmp_path / "fuzz.csv"
    path.write_text("\n".join([",".join(header)] + [",".join(r) for r in rows]))
    try:
        ds = read_spectra(path)
    except SpectraValidationError as exc:
        assert all(str(path) in p for p in exc.problems), exc.problems
        return
    assert ds["intensity"].dims == ("curve", "two_theta")
    assert np.isfinite(ds["pressure"].values).all()


@settings(max_examples=150, deadline=None)
@given(n=st.integers(0, 4), m=st.integers(0, 6), data=st.data())
def test_fuzzed_arrays_validate_or_refuse(n, m, data):
    values = st.floats(allow_nan=True, allow_infinity=True, width=32)
    intensity = np.array(data.draw(st.lists(st.lists(values, min_size=m, max_size=m),
                                            min_size=n, max_size=n)), dtype=float)
    if n == 0:
        intensity = intensity.reshape(0, m)
    grid = np.array(data.draw(st.lists(st.floats(-5, 200), min_size=m, max_size=m)))
    pressure = np.array(data.draw(st.lists(values, min_size=n, max_size=n)))
    time = np.array(data.draw(st.lists(values, min_size=n, max_size=n)))
    try:
        ds = make_spectra(intensity, grid, pressure, time=time)
    except SpectraValidationError as exc:
        assert exc.problems
        return
    assert np.isfinite(ds["pressure"].values).all() and np.isfinite(ds["time"].values).all()
    assert (np.diff(ds["two_theta"].values) > 0).all()


def test_mixed_grids_are_refused_not_cropped_and_a_narrow_curve_is_refused(small_phase_model):
    from specflow.learn.data import to_curves, wavelength_of
    from specflow.learn.predictor import PhasePredictor
    from specflow.simulator.simulate import simulate_run

    run = simulate_run("Fe", 20, seed=1)
    half = run.isel(two_theta=slice(0, run.sizes["two_theta"] // 2))
    with pytest.raises(ValueError, match="different 2θ ranges"):
        to_curves([run, half])  # the legacy 2θ path would have dropped half of `run`
    cropped = to_curves([run, half], crop_to_overlap=True).grid  # only when asked for
    assert cropped[-1] == pytest.approx(float(half["two_theta"][-1]))
    bundle, _ = small_phase_model
    sliver = run.isel(two_theta=slice(0, 50))  # a few tenths of a degree of a wide model
    with pytest.raises(ValueError, match="only .* of the model's"):
        PhasePredictor(bundle).predict(sliver["intensity"].values, sliver["two_theta"].values,
                                       wavelength_of(sliver))


def test_a_missing_extra_is_named_with_its_install_line(tmp_path):
    """As without `specflow[beamline]`: pyFAI cannot be imported."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['pyFAI'] = None\n"
            "from specflow.cli import app\n"
            f"app(['integrate', '{tmp_path}/x.tif', '--poni', '{tmp_path}/g.poni', "
            f"'--pressure', '{tmp_path}/p.csv', '--out', '{tmp_path}/o.nc'], "
            "prog_name='specflow')")
    for name in ("x.tif", "g.poni", "p.csv"):
        (tmp_path / name).write_text("x")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    text = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 1, text
    assert "pip install 'specflow[beamline]'" in text and "Traceback" not in text


PYFAI_HEADER = "# == pyFAI calibration ==\n# Wavelength: 4.133e-11 m\n# 2th_deg I\n"
Q_HEADER = "# q_A^-1 I\n"  # no wavelength: Q needs --energy or --wavelength


def _inputs(tmp_path):
    """A good NetCDF run, a folder of pyFAI text curves, a folder of Q curves without a beam,
    a labels table, a bad labels table and two bad files: name → path."""
    from specflow.data.io import write_spectra
    from specflow.simulator.simulate import simulate_run

    run = simulate_run("Fe", 12, seed=2)
    paths = {"run.nc": write_spectra(run, tmp_path / "run.nc")}
    tth = run["two_theta"].values[::20]
    for name, header, axis in (("xy", PYFAI_HEADER, tth), ("q", Q_HEADER, None)):
        folder = tmp_path / name
        folder.mkdir()
        rows = []
        for i, (p, y) in enumerate(zip(run["pressure"].values,
                                       run["intensity"].values[:, ::20], strict=True)):
            x = axis if axis is not None else np.linspace(1.0, 5.0, y.size)
            body = "\n".join(f"{a:.5f} {b:.3f}" for a, b in zip(x, y, strict=True))
            (folder / f"c{i:03d}.xy").write_text(header + body + "\n")
            rows.append(f"c{i:03d}.xy,{p:.3f}")
        (folder / "pressure.csv").write_text("file,pressure\n" + "\n".join(rows) + "\n")
        paths[name] = folder
    (tmp_path / "labels.csv").write_text("curve,label\n0,before\n11,after\n")
    (tmp_path / "bad-labels.csv").write_text("curve,label\n0,sideways\n")
    paths["labels.csv"] = tmp_path / "labels.csv"
    paths["bad-labels.csv"] = tmp_path / "bad-labels.csv"
    for name in ("garbage.nc", "text-cell.csv"):
        (tmp_path / name).write_bytes(BAD_FILES[name])
        paths[name] = tmp_path / name
    return paths


def _snapshot(paths) -> dict:
    out = {}
    for p in paths.values():
        for f in ([p] if p.is_file() else sorted(p.iterdir())):
            out[f] = f.read_bytes()
    return out


OPTIONS = {
    "energy": st.sampled_from([[], ["--energy", "30"], ["--energy", "500"],
                               ["--energy", "x"]]),
    "wavelength": st.sampled_from([[], ["--wavelength", "0.4133"], ["--wavelength", "9"]]),
    "unit": st.sampled_from([[], ["--radial-unit", "q_A^-1"], ["--radial-unit", "2th_deg"],
                             ["--radial-unit", "furlongs"]]),
    "labels": st.sampled_from([[], ["--labels", "labels.csv"], ["--labels", "bad-labels.csv"],
                               ["--labels", "missing.csv"]]),
    "ranges": st.sampled_from([[], ["--before-below", "10", "--after-above", "20"],
                               ["--before-below", "20", "--after-above", "10"],
                               ["--after-above", "-5"]]),
}


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(source=st.sampled_from(["run.nc", "xy", "q", "garbage.nc", "text-cell.csv",
                               "missing.nc"]),
       picked=st.fixed_dictionaries(OPTIONS))
def test_option_combinations_succeed_or_fail_in_a_line_and_touch_no_input(
        tmp_path_factory, source, picked):
    """Every combination of a command's reading and labelling options with good and bad
    inputs: it draws the figure, or stops with exit 1 (one 'error:' line and the --debug
    hint) or 2 (usage), never a traceback, and no input file changes."""
    tmp_path = tmp_path_factory.mktemp("combo")
    paths = _inputs(tmp_path)
    before = _snapshot(paths)
    args = [str(paths.get(source, tmp_path / source)), "--out", str(tmp_path / "fig.png")]
    for option in picked.values():
        args += [str(paths.get(a, tmp_path / a)) if a.endswith(".csv") else a for a in option]
    out, text = invoke("plot", *args)
    assert out.exit_code in (0, 1, 2), out.output
    assert "Traceback" not in out.output
    if out.exit_code == 0:
        assert (tmp_path / "fig.png").exists()
    elif out.exit_code == 1:
        lines = [line for line in out.output.splitlines() if line.strip()]
        assert text.startswith("error:") and len(lines) <= 3, out.output
        assert not (tmp_path / "fig.png").exists()
    else:
        assert "Error" in out.output or "error:" in out.output
    assert _snapshot(paths) == before  # inputs never touched
