"""Normalisation, regridding and background removal on the canonical layout."""

import contextlib

import numpy as np
import pytest
import torch

from specflow.data.preprocess import (
    Preprocessing,
    interp_curves,
    minmax,
    normalize,
    prepare_curves,
    regrid,
    remove_background,
)
from specflow.data.schema import energy_to_wavelength, make_spectra
from specflow.simulator.simulate import simulate_run


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


# --- Q grid and the shared train/serve preparation ---------------------------------------------


def test_q_conversion_round_trips_and_matches_bragg():
    from specflow.data.schema import q_to_two_theta, two_theta_to_q

    lam = energy_to_wavelength(30.0)
    tt = np.linspace(3.0, 35.0, 50)
    assert np.allclose(q_to_two_theta(two_theta_to_q(tt, lam), lam), tt)
    d = 2.0268  # bcc Fe (110), Å: Q = 2π/d at any energy
    two_theta = 2 * np.degrees(np.arcsin(lam / (2 * d)))
    assert two_theta_to_q(two_theta, lam) == pytest.approx(2 * np.pi / d)
    assert np.isnan(q_to_two_theta(100.0, lam))  # beyond 4π/λ
    with pytest.raises(ValueError):
        two_theta_to_q(tt, 0.0)


def test_same_run_at_two_energies_prepares_to_the_same_q_curves():
    from specflow.simulator.simulate import RunConditions

    cfg = Preprocessing(grid=(1.5, 5.5, 1024))
    out = []
    for energy, grid in ((25.6, (4.0, 30.0, 3000)), (37.0, (2.8, 21.0, 2500))):
        cond = RunConditions(energy_kev=energy, two_theta=grid)
        ds = simulate_run("Fe", 20, seed=2, conditions=cond, peak_counts=1e6)
        out.append(prepare_curves(ds["intensity"].values, ds["two_theta"].values, cfg,
                                  energy_to_wavelength(energy)).x)
    a, b = out
    # peaks line up on Q: the two energies' curves agree to within resolution effects
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9
    assert np.argmax(a[0]) == pytest.approx(np.argmax(b[0]), abs=3)


def test_prepare_curves_fills_gaps_removes_spikes_and_rejects_bad_input():

    ds = simulate_run("Fe", 8, seed=3)
    x, tt, lam = ds["intensity"].values, ds["two_theta"].values, ds.attrs["wavelength"]
    cfg = Preprocessing(grid=(1.5, 5.5, 1024))
    ref = prepare_curves(x, tt, cfg, lam).x
    damaged = x.copy()
    damaged[:, 1000:1030] = np.nan  # a module gap
    damaged[:, 2500] = 50 * np.nanmax(x)  # a hot pixel
    got = prepare_curves(damaged, tt, cfg, lam)
    assert np.isfinite(got.x).all()
    assert np.abs(got.x - ref).max() < 0.25 and np.abs(got.x - ref).mean() < 0.01
    with pytest.raises(ValueError, match="wavelength"):
        prepare_curves(x, tt, cfg)
    with pytest.raises(ValueError, match="inf"):
        prepare_curves(np.where(np.isnan(damaged), np.inf, damaged), tt, cfg, lam)
    with pytest.raises(ValueError, match="cover"):
        prepare_curves(x, tt, Preprocessing(grid=(8.0, 12.0, 256)), lam)


def test_gaps_filled_together_are_the_same_bits_as_numpy_interp_curve_by_curve():
    from specflow.data.preprocess import fill_gaps

    rng = np.random.default_rng(5)
    x = (rng.random((40, 300)) * 1e4).astype(np.float32)
    x[:, rng.random(300) < 0.2] = np.nan  # module gaps, the same in every curve
    x[:10][rng.random((10, 300)) < 0.03] = np.nan  # and masked pixels of ten curves
    x[3, :4] = x[7, -5:] = np.nan  # edges: the nearest valid value
    shared = np.isnan(x[10:])
    assert (shared == shared[0]).all()  # 30 curves are filled together
    expected = x.copy()
    idx = np.arange(x.shape[1])
    for row in expected:
        bad = np.isnan(row)
        row[bad] = np.interp(idx[bad], idx[~bad], row[~bad])
    got = fill_gaps(x)
    assert np.array_equal(got.view(np.uint32), expected.view(np.uint32))
    x[5] = np.nan
    with pytest.raises(ValueError, match="curve 5 has no data"):
        fill_gaps(x)


def textbook_despike(x: np.ndarray, threshold: float = 8.0) -> np.ndarray:
    """despike's definition in numpy, float32 throughout (rows with NaN: σ NaN, untouched)."""
    x = np.array(x, dtype=np.float32, copy=True)
    left, mid, right = x[:, :-2], x[:, 1:-1], x[:, 2:]
    diff = np.diff(x, axis=1)
    mad = np.median(np.abs(diff - np.median(diff, axis=1, keepdims=True)), axis=1,
                    keepdims=True)
    sigma = 1.4826 * mad / np.float32(np.sqrt(2))
    spike = mid - np.maximum(left, right) > threshold * np.maximum(sigma, 1e-12)
    mid[spike] = ((left + right) / 2)[spike]
    return x


@pytest.mark.parametrize("length", [3, 4, 7, 8, 3999, 4000])
def test_compiled_despike_is_the_numpy_definition_bit_for_bit(length):
    from specflow.data.preprocess import despike

    rng = np.random.default_rng(length)
    x = (rng.random((40, length)) * 100 + 1000).astype(np.float32)
    x[::3, length // 2] += 5e4  # hot pixels in every third curve
    x[4, 1] = np.nan  # a curve with NaN is left alone
    x[5] = 3.0  # a flat curve (σ = 0)
    x[6, ::2] = 1.0  # ties
    x[7] = rng.normal(size=length).astype(np.float32)  # signs mixed: negative medians
    x[8, : length // 2] = -0.0
    got = despike(x)
    expected = textbook_despike(x)
    assert np.array_equal(got.view(np.uint32), expected.view(np.uint32))
    changed = (got != x) & ~np.isnan(x)
    if length > 4:
        assert changed[::3].any() and not changed[1::3].any()
    assert np.array_equal(despike(x, threshold=0), x, equal_nan=True)


def test_prepared_curves_do_not_depend_on_the_blocks_or_threads(monkeypatch):
    from specflow.data import preprocess

    ds = simulate_run("FeO", 300, seed=8, preset="realistic")
    x, tt, lam = ds["intensity"].values, ds["two_theta"].values, ds.attrs["wavelength"]
    x[:, 700:740] = np.nan
    together = prepare_curves(x, tt, Preprocessing(), lam).x
    one_by_one = np.concatenate([prepare_curves(row, tt, Preprocessing(), lam).x
                                 for row in x[:5]])
    monkeypatch.setattr(preprocess, "PREPARE_BLOCK", 7)
    small_blocks = prepare_curves(x, tt, Preprocessing(), lam).x
    monkeypatch.setattr(preprocess, "usable_cpus", lambda: 1)
    one_thread = prepare_curves(x, tt, Preprocessing(), lam).x
    assert np.array_equal(small_blocks, together)
    assert np.array_equal(one_thread, together)
    assert np.array_equal(one_by_one, together[:5])
    x[42] = np.nan
    with pytest.raises(ValueError, match="curve 42 has no data"):
        prepare_curves(x, tt, Preprocessing(), lam)


@pytest.mark.parametrize("half_window", [1, 2, 13, 52, 5000])
def test_batched_snip_equals_pybaselines_curve_by_curve(half_window):
    from pybaselines import Baseline

    from specflow.data.preprocess import snip_baselines, subtract_baseline

    x = simulate_run("FeO", 7, seed=4)["intensity"].values[:, :600]  # 5000: clipped window
    x = x + np.linspace(0, 50, x.shape[1])  # a sloped background at the edges
    fitter = Baseline(np.arange(x.shape[1], dtype=float))
    # pybaselines warns that a window beyond half the curve acts as half the curve
    with pytest.warns() if half_window > 299 else contextlib.nullcontext():
        expected = np.stack([fitter.snip(y.astype(float), max_half_window=half_window)[0]
                             for y in x])
    got = snip_baselines(x, half_window, chunk=3)  # chunks that do not divide the rows
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-9 * np.abs(x).max())
    assert not np.allclose(got, x)  # it did clip peaks
    removed = subtract_baseline(x.astype(np.float32), half_window)
    np.testing.assert_allclose(removed, x - expected, rtol=1e-5, atol=1e-3)


def test_square_root_intensities_equalise_poisson_noise_and_keep_old_fingerprints():
    rng = np.random.default_rng(0)
    two_theta = np.linspace(5, 25, 2000)
    pos = np.linspace(0, 1, 2000)
    mean = 100 + 5000 * np.exp(-0.5 * ((pos - 0.5) / 0.01) ** 2)
    counts = rng.poisson(mean, size=(200, 2000)).astype(np.float32)
    plain = Preprocessing(axis="two_theta", grid=None, despike=0.0, baseline=None)
    root = Preprocessing(axis="two_theta", grid=None, despike=0.0, baseline=None,
                         intensity="sqrt")
    noise = {name: prepare_curves(counts, two_theta, cfg).x.std(axis=0)
             for name, cfg in (("linear", plain), ("sqrt", root))}
    for n in noise.values():  # spread on the line (bin 1000) over the spread off it (bin 100)
        n[:] = n / n[100]
    assert noise["linear"][1000] > 5 and noise["sqrt"][1000] < 1.5
    assert "intensity" not in Preprocessing().to_dict()  # fingerprints from before stay
    assert Preprocessing.from_dict(root.to_dict()) == root
    with pytest.raises(ValueError, match="intensity scale"):
        Preprocessing(intensity="log")
