"""Readers and writers round-trip the canonical layout and reject bad files clearly."""

import numpy as np
import pytest

from specflow.data.io import (
    read_csv,
    read_netcdf,
    read_spectra,
    read_xy,
    write_csv,
    write_netcdf,
    write_spectra,
    write_xy,
)
from specflow.data.schema import SpectraValidationError, make_spectra
from specflow.simulator.simulate import simulate_run


@pytest.fixture(scope="module")
def run():
    return simulate_run("Fe", 20, seed=0, two_theta=np.linspace(5, 25, 500))


def test_netcdf_round_trip_is_exact(run, tmp_path):
    path = write_spectra(run, tmp_path / "sub" / "fe.nc")
    back = read_spectra(path)
    assert np.array_equal(back["intensity"].values, run["intensity"].values)
    assert back["intensity"].dtype == np.float32 and back["label"].dtype == np.int8
    assert np.array_equal(back["pressure"].values, run["pressure"].values)
    assert back.attrs["sample"] == "Fe"
    assert np.array_equal(back["phase_fraction"].values, run["phase_fraction"].values)


def test_csv_round_trip(run, tmp_path):
    back = read_spectra(write_csv(run, tmp_path / "fe.csv"))
    assert np.allclose(back["intensity"].values, run["intensity"].values)
    assert np.allclose(back["two_theta"].values, run["two_theta"].values)
    assert np.array_equal(back["label"].values, run["label"].values)
    assert np.allclose(back["time"].values, run["time"].values)


def test_xy_files_round_trip_with_pressure_list(run, tmp_path):
    paths = write_xy(run, tmp_path / "xy")
    back = read_xy(paths, pressure=run["pressure"].values, sample="Fe")
    assert np.allclose(back["intensity"].values, run["intensity"].values)
    assert np.allclose(back["two_theta"].values, run["two_theta"].values, atol=1e-6)


def test_xy_pressure_from_csv_and_other_grids(tmp_path):
    x = np.linspace(5, 25, 101)
    (tmp_path / "a.xy").write_text("# pyFAI\n" + "\n".join(f"{u} {u * 2}" for u in x))
    # descending, 3 columns (.xye), finer grid: interpolated onto the first file's grid
    fine = np.linspace(25, 4, 400)
    (tmp_path / "b.xye").write_text("\n".join(f"{u} {u * 2} 0.1" for u in fine))
    # Fit2D .chi: title, axis names, point count, then data
    chi = "title\n2-Theta Angle (Degrees)\nIntensity\n101\n" + "\n".join(
        f"  {u:.6E}  {3 * u:.6E}" for u in x)
    (tmp_path / "c.chi").write_text(chi)
    (tmp_path / "p.csv").write_text("file,pressure\na.xy,1.0\nb.xye,2.0\nc.chi,3.5\n")
    ds = read_xy([tmp_path / n for n in ("a.xy", "b.xye", "c.chi")], pressure=tmp_path / "p.csv")
    assert ds["pressure"].values.tolist() == [1.0, 2.0, 3.5]
    assert np.allclose(ds["intensity"].values[1], 2 * x, atol=1e-3)
    assert np.allclose(ds["intensity"].values[2], 3 * x, rtol=1e-5)


def test_bad_files_give_clear_errors(tmp_path, run):
    (tmp_path / "empty.xy").write_text("# nothing here\n")
    with pytest.raises(SpectraValidationError, match="no two-column numeric data"):
        read_xy([tmp_path / "empty.xy"], pressure=[1.0])
    (tmp_path / "ok.xy").write_text("5 1\n6 2\n7 3\n")
    with pytest.raises(SpectraValidationError, match="no pressure for 1 text file.*ok.xy"):
        read_xy([tmp_path / "ok.xy"])
    (tmp_path / "short.xy").write_text("5.5 1\n6 2\n")
    with pytest.raises(SpectraValidationError, match="does not cover"):
        read_xy([tmp_path / "ok.xy", tmp_path / "short.xy"], pressure=[1, 2])
    (tmp_path / "p.csv").write_text("name,p\nok.xy,1\n")
    with pytest.raises(SpectraValidationError, match="needs columns"):
        read_xy([tmp_path / "ok.xy"], pressure=tmp_path / "p.csv")
    (tmp_path / "q.csv").write_text("file,pressure\nother.xy,1\n")
    with pytest.raises(SpectraValidationError, match="q.csv: no pressure for files"):
        read_xy([tmp_path / "ok.xy"], pressure=tmp_path / "q.csv")
    (tmp_path / "bad.csv").write_text("pressure,time,foo\n1,0,3\n")
    with pytest.raises(SpectraValidationError, match="must be 2θ values"):
        read_csv(tmp_path / "bad.csv")
    (tmp_path / "nan.csv").write_text("pressure,5.0,6.0,7.0\n1,nan,nan,3\n")
    with pytest.raises(SpectraValidationError, match="nan.csv: intensity is NaN"):
        read_csv(tmp_path / "nan.csv")
    (tmp_path / "x.tiff").write_bytes(b"II*\0")
    with pytest.raises(ValueError, match="x.tiff: unknown spectra format"):
        read_spectra(tmp_path / "x.tiff")
    with pytest.raises(SpectraValidationError, match="absent.xy: no such file"):
        read_spectra(tmp_path / "absent.xy")
    with pytest.raises(FileNotFoundError):
        read_netcdf(tmp_path / "absent.nc")


def test_invalid_dataset_is_not_written(tmp_path):
    ds = make_spectra(np.arange(1.0, 7.0).reshape(2, 3), [1, 2, 3], [0, 1])
    ds["intensity"][0, 0] = np.inf
    with pytest.raises(SpectraValidationError):
        write_netcdf(ds, tmp_path / "x.nc")
    assert not (tmp_path / "x.nc").exists()


def test_text_inside_data_block_is_an_error_not_skipped(tmp_path):
    (tmp_path / "c.xy").write_text("# header\n5 1\n6 2\noops here\n7 3\n")
    with pytest.raises(SpectraValidationError, match=r"c.xy:4: not a 'radial intensity' row"):
        read_xy([tmp_path / "c.xy"], pressure=[1.0])


def test_xy_folders_and_headers_carry_their_pressure(run, tmp_path):
    from typer.testing import CliRunner

    from specflow.cli import app

    folder = tmp_path / "xy"
    write_xy(run, folder)  # each file's header holds pressure_GPa=...
    back = read_spectra(folder)
    np.testing.assert_allclose(back["pressure"].values, run["pressure"].values, rtol=1e-5)
    one = read_spectra(sorted(folder.iterdir())[3])
    assert one.sizes["curve"] == 1 and one["pressure"].values[0] == pytest.approx(
        float(run["pressure"][3]), rel=1e-5)
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("a.xy", "b.xy"):
        (plain / name).write_text("5 1\n6 3\n7 2\n")
    with pytest.raises(SpectraValidationError, match="pressure.csv"):
        read_spectra(plain)
    (plain / "pressure.csv").write_text("file,pressure\na.xy,1.5\nb.xy,2.5\n")
    assert read_spectra(plain)["pressure"].values.tolist() == [1.5, 2.5]
    out = CliRunner().invoke(app, ["plot", str(folder), "-o", str(tmp_path / "f.png")])
    assert out.exit_code == 0, out.output
