"""The canonical layout: construction and every validation error path."""

import numpy as np
import pytest

from specflow.data.schema import (
    SpectraValidationError,
    concat_runs,
    energy_kev,
    energy_to_wavelength,
    make_spectra,
    validate,
    wavelength_to_energy,
)

GRID = np.linspace(5, 25, 50)


def good(n=4, **kw):
    rng = np.random.default_rng(0)
    args = dict(intensity=rng.random((n, GRID.size)), two_theta=GRID,
                pressure=np.linspace(0, 30, n))
    args.update(kw)
    return args


def test_make_spectra_layout():
    ds = make_spectra(**good(label=[0, 1, 2, -1]), attrs={"energy": 25.6, "sample": "Fe"})
    assert ds["intensity"].dims == ("curve", "two_theta")
    assert ds["intensity"].dtype == np.float32
    assert ds["label"].dtype == np.int8
    assert ds["pressure"].dims == ("curve",)
    assert ds["time"].values.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert ds["two_theta"].attrs["units"] == "deg"
    assert validate(ds) is ds


def test_energy_wavelength_round_trip():
    assert energy_to_wavelength(25.6) == pytest.approx(0.48431, abs=1e-5)
    assert wavelength_to_energy(energy_to_wavelength(30.0)) == pytest.approx(30.0)
    ds = make_spectra(**good(), attrs={"wavelength": 0.5})
    assert energy_kev(ds) == pytest.approx(24.797, abs=1e-3)
    with pytest.raises(KeyError, match="energy"):
        energy_kev(make_spectra(**good()))


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(intensity=np.full((4, 50), np.nan)),
         "NaN (no data) in more than 50% of the points of 4 curve"),
        (dict(intensity=np.where(np.eye(4, 50) > 0, np.inf, 1.0)), "4 inf values"),
        (dict(intensity=np.ones(50)), "must be 2-D"),
        (dict(intensity=np.ones((4, 50), dtype=complex)), "real numbers"),
        (dict(two_theta=GRID[::-1]), "strictly increasing"),
        (dict(two_theta=np.r_[GRID[:10], GRID[9], GRID[11:]]), "non-monotonic at index 9"),
        (dict(two_theta=GRID[:40]), "length mismatch"),
        (dict(two_theta=np.r_[GRID[:-1], np.nan]), "NaN/inf"),
        (dict(pressure=None), "missing pressure"),
        (dict(pressure=[1.0, np.nan, 3.0, 4.0]), "missing pressure for curve index 1"),
        (dict(pressure=[1.0, 2.0]), "pressure has shape (2,) but there are 4 curves"),
        (dict(time=[0.0, 1.0]), "time has shape"),
        (dict(label=[0, 1]), "label has shape"),
        (dict(label=[0, 1, 3, 7]), "found [3, 7]"),
    ],
)
def test_every_validation_error(change, message):
    with pytest.raises(SpectraValidationError) as err:
        make_spectra(**good(**change))
    assert message in str(err.value)


def test_all_problems_reported_at_once():
    with pytest.raises(SpectraValidationError) as err:
        make_spectra(**good(intensity=np.full((4, 50), np.nan), pressure=None))
    assert len(err.value.problems) == 2


def test_validate_rejects_bad_datasets():
    ds = make_spectra(**good())
    with pytest.raises(SpectraValidationError, match="expected an xarray.Dataset"):
        validate(ds["intensity"])
    with pytest.raises(SpectraValidationError, match="no 'intensity' variable"):
        validate(ds.rename({"intensity": "counts"}))
    with pytest.raises(SpectraValidationError, match="dims must be"):
        validate(ds.transpose("two_theta", "curve"))
    with pytest.raises(SpectraValidationError, match="missing pressure"):
        validate(ds.drop_vars("pressure"))
    with pytest.raises(SpectraValidationError, match="missing time"):
        validate(ds.drop_vars("time"))
    with pytest.raises(SpectraValidationError, match="missing two_theta"):
        validate(ds.drop_vars("two_theta"))
    gap = ds.copy(deep=True)
    gap["intensity"][:, 3:6] = np.nan  # a detector gap: bins without data are fine
    assert validate(gap) is gap
    bad = ds.copy(deep=True)
    bad["intensity"][1, 3] = np.inf
    with pytest.raises(SpectraValidationError, match="curve index 1"):
        validate(bad)
    bad["intensity"][2, :30] = np.nan  # most of a curve missing is not
    with pytest.raises(SpectraValidationError, match="NaN .* curve index 2"):
        validate(bad)
    twisted = ds.assign_coords(pressure=(("curve", "two_theta"),
                                         np.ones((4, 50))))
    with pytest.raises(SpectraValidationError, match="pressure must have dims"):
        validate(twisted)


def test_concat_runs_keeps_origin_and_rejects_other_grids():
    a = make_spectra(**good(), attrs={"run_uid": "a"})
    b = make_spectra(**good(n=2), attrs={"run_uid": "b"})
    both = concat_runs([a, b])
    assert both.sizes["curve"] == 6
    assert list(both["run"].values) == ["a"] * 4 + ["b"] * 2
    c = make_spectra(**good(two_theta=np.linspace(4, 20, 50)))
    with pytest.raises(SpectraValidationError, match="different 2θ grids"):
        concat_runs([a, c])
