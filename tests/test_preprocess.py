"""Normalisation, regridding and background removal on the canonical layout."""

import numpy as np
import pytest
import torch

from specflow.data.preprocess import interp_curves, minmax, normalize, regrid, remove_background
from specflow.data.schema import make_spectra
from specflow.data.simulate import simulate_run


def test_minmax_numpy_and_torch_agree():
    x = np.random.default_rng(0).random((5, 100)).astype(np.float32) * 50 + 3
    a = minmax(x)
    b = minmax(torch.from_numpy(x)).numpy()
    assert np.allclose(a.min(1), 0) and np.allclose(a.max(1), 1)
    assert np.allclose(a, b, atol=1e-6)
    ds = normalize(make_spectra(x, np.arange(100.0), np.arange(5.0)))
    assert float(ds["intensity"].max()) == pytest.approx(1.0)


def test_interp_curves_is_exact_for_linear_data():
    grid = np.linspace(0, 10, 11)
    values = np.stack([grid * 2, grid + 1])
    out = interp_curves(values, grid, np.array([0.5, 2.25, 9.9]))
    assert np.allclose(out, [[1.0, 4.5, 19.8], [1.5, 3.25, 10.9]])


def test_regrid_moves_peaks_correctly_and_guards_range():
    ds = simulate_run("Fe", 5, seed=0)
    new = np.linspace(6, 24, 1500)
    out = regrid(ds, new)
    assert out.sizes["two_theta"] == 1500 and out["label"].equals(ds["label"])
    x_old, x_new = ds["two_theta"].values, out["two_theta"].values
    for i in range(5):
        w_old, w_new = (x_old > 13) & (x_old < 14.5), (x_new > 13) & (x_new < 14.5)
        peak_old = x_old[w_old][ds["intensity"].values[i, w_old].argmax()]
        peak_new = x_new[w_new][out["intensity"].values[i, w_new].argmax()]
        assert peak_new == pytest.approx(peak_old, abs=0.02)
    assert regrid(ds, ds["two_theta"].values) is ds
    with pytest.raises(ValueError, match="exceeds"):
        regrid(ds, np.linspace(2, 20, 100))


def test_background_removal_flattens_the_baseline():
    ds = simulate_run("Fe", 3, seed=0)
    out = remove_background(ds)
    x = ds["two_theta"].values
    flat = (x > 6) & (x < 7)  # no reflection here, only background
    assert float(ds["intensity"][:, flat].mean()) > 100
    assert abs(float(out["intensity"][:, flat].mean())) < 30
    assert "background" in out and out.attrs["background_removal"] == "pybaselines.asls"
    snip = remove_background(ds, "snip", max_half_window=40, smooth_half_window=3)
    assert abs(float(snip["intensity"][:, flat].mean())) < 30
    with pytest.raises(ValueError, match="unknown pybaselines method"):
        remove_background(ds, "magic")
