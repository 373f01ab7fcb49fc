"""The simulator follows the physics: Bragg's law on EOS lattices, phase fractions, noise."""

import numpy as np
import pytest

from specflow.data.schema import validate
from specflow.simulator.eos import BirchMurnaghan3
from specflow.simulator.phases import (
    FE_BCC,
    FE_HCP,
    FEO_B1,
    FEO_RB1,
    SQRT6,
    feo_c_over_a,
    feo_rhombohedral,
)
from specflow.simulator.simulate import (
    MATERIALS,
    PAPER_PRESETS,
    XRDSimulator,
    labels_from_fraction,
    paper_datasets,
    phase_fraction,
    pressure_path,
    simulate_run,
)

E = 25.6


def in_range(pos):
    return np.sort(pos[(pos >= 5) & (pos <= 25)])


def test_birch_murnaghan_inverse_and_bulk_modulus():
    eos = BirchMurnaghan3(v0=11.78, k0=170.0, k0_prime=4.9)
    p = np.array([0.0, 5.0, 13.0, 40.0])
    assert np.allclose(eos.pressure(eos.volume(p)), p, atol=1e-4)
    v = eos.v0 * np.array([1 - 1e-5, 1 + 1e-5])
    k = -eos.v0 * np.diff(eos.pressure(v))[0] / np.diff(v)[0]
    assert k == pytest.approx(170.0, rel=1e-3)
    with pytest.raises(ValueError, match="outside"):
        eos.volume(5000.0)


def test_bcc_fe_110_at_ambient_and_25_6_kev():
    pos, _ = FE_BCC.peaks(np.array([0.0]), E, 27.0)
    assert pos[0, 0] == pytest.approx(13.72, abs=0.02)  # (110), d = a/√2 = 2.027 Å
    assert len(in_range(pos[0])) == 3  # (110), (200), (211)


def test_hcp_has_six_reflections_in_range_near_onset():
    pos, _ = FE_HCP.peaks(np.array([13.0]), E, 27.0)
    assert len(in_range(pos[0])) == 6  # (100), (002), (101), (102), (110), (103)


@pytest.mark.parametrize("phase", [FE_BCC, FE_HCP, FEO_B1, FEO_RB1])
def test_peaks_move_to_higher_angle_with_pressure(phase):
    pos, inten = phase.peaks(np.array([5.0, 15.0, 30.0]), E, 27.0)
    assert np.all(np.diff(pos, axis=0) > 0)
    assert np.all(inten > 0)


def test_feo_rhombohedral_distortion_splits_111_but_not_200():
    cubic, _ = FEO_B1.peaks(np.array([25.0]), E, 27.0)
    rhombo, _ = FEO_RB1.peaks(np.array([25.0]), E, 27.0)
    first_cubic = in_range(cubic[0])[0]  # (111)
    near = np.sort(rhombo[0][np.abs(rhombo[0] - first_cubic) < 0.2])
    assert len(near) == 2 and near[1] - near[0] > 0.03  # (003) and (101) split
    second_cubic = in_range(cubic[0])[1]  # (200) stays one line
    assert np.ptp(rhombo[0][np.abs(rhombo[0] - second_cubic) < 0.05]) < 1e-6


def test_feo_distortion_is_finite_at_each_loadings_own_onset():
    """rB1 appears already distorted (a sharp, displacive transition) wherever the loading's
    transition starts, and the distortion grows from there (issue: the strain used to start
    at a fixed 15 GPa, so early rB1 looked like B1)."""
    assert feo_c_over_a(np.array([10.0, 15.0]))[0] == pytest.approx(SQRT6 * 1.006)
    for onset in (11.0, 15.0, 19.0):
        phase = feo_rhombohedral(onset)
        at, _ = phase.peaks(np.array([onset]), E, 27.0)
        cubic, _ = FEO_B1.peaks(np.array([onset]), E, 27.0)
        first = in_range(cubic[0])[0]
        split = np.sort(at[0][np.abs(at[0] - first) < 0.2])
        assert len(split) == 2 and split[1] - split[0] > 0.02
        later, _ = phase.peaks(np.array([onset + 8]), E, 27.0)
        grown = np.sort(later[0][np.abs(later[0] - later[0][0]) < 0.3])
        assert np.ptp(grown) > split[1] - split[0]


def test_a_runs_feo_follows_its_own_onset_and_inherits_the_b1_texture():
    from specflow.simulator.simulate import simulate_family_parts

    run = simulate_family_parts("FeO", 1, n_curves=40, seed=4)[0]
    sim = run.simulator
    assert sim.material.high.reference_pressure == pytest.approx(sim.material.onset + 10,
                                                                 abs=0.01)
    low = sim._texture[sim.material.low.name]
    high = sim._texture[sim.material.high.name]
    # every rB1 reflection's texture factor is one of B1's (split families keep theirs)
    assert np.isin(high[0].round(12), low[0].round(12)).all()


def test_shifted_preset_draws_conditions_realistic_never_does():
    from specflow.simulator.simulate import BEAMLINE_ENERGIES, draw_conditions

    rng = np.random.default_rng(0)
    for _ in range(20):
        real = draw_conditions("Fe", "realistic", rng)
        shifted = draw_conditions("Fe", "shifted", rng)
        assert real.energy_kev in BEAMLINE_ENERGIES and real.artefacts.marker is None
        assert 50 <= shifted.energy_kev <= 80 and shifted.artefacts.marker in ("Au", "Pt")
        assert shifted.instrument.eta >= 0.75 > real.instrument.eta
        assert abs(shifted.two_theta_offset) <= 0.02 and real.two_theta_offset == 0


def test_phase_fraction_compression_and_hysteresis():
    fe = MATERIALS["Fe"]
    up = np.linspace(0, 30, 301)
    f = phase_fraction(fe, up)
    assert np.all(np.diff(f) >= 0)
    assert np.all(f[up < fe.onset] == 0) and np.all(f[up > fe.end] == 1)
    down = np.linspace(30, 0, 301)
    g = phase_fraction(fe, np.r_[up, down])[301:]
    # stays transformed until the reverse onset, lower than the forward onset
    assert np.all(g[down > fe.reverse_onset] == 1)
    assert np.all(g[down < fe.reverse_end] == 0)


def test_labels_follow_phase_fraction():
    assert labels_from_fraction(np.array([0.0, 0.04, 0.06, 0.5, 0.94, 0.96, 1.0])).tolist() == [
        0, 0, 1, 1, 1, 2, 2]
    ds = simulate_run("Fe", 200, seed=3)
    assert np.array_equal(ds["label"].values, labels_from_fraction(ds["phase_fraction"].values))
    labels = ds["label"].values
    assert set(labels.tolist()) == {0, 1, 2}
    assert np.all(np.diff(labels) >= 0)  # a compression ramp goes before -> during -> after


def _band(ds, i, lo, hi):
    x = ds["two_theta"].values
    return ds["intensity"].values[i][(x > lo) & (x < hi)]


def test_hcp_lines_appear_only_after_onset():
    ds = simulate_run("Fe", 240, seed=5, peak_counts=4000)
    sim = XRDSimulator("Fe")
    for i, (p, f) in enumerate(zip(ds["true_pressure"].values, ds["phase_fraction"].values,
                                   strict=True)):
        pos, _ = sim.peaks(FE_HCP, np.array([p]))
        hcp_100 = pos[0, 0]  # (100) at ~13°, clear of every bcc line
        line = _band(ds, i, hcp_100 - 0.05, hcp_100 + 0.05).max()
        floor = np.median(_band(ds, i, hcp_100 - 0.6, hcp_100 - 0.3))
        excess = (line - floor) / np.sqrt(floor)
        if f == 0:
            assert excess < 6, (i, p, excess)
        elif f > 0.8:
            assert excess > 10, (i, p, excess)


def test_bcc_110_shifts_with_pressure_in_the_curves():
    ds = simulate_run("Fe", 100, seed=2)
    x = ds["two_theta"].values
    window = (x > 13.5) & (x < 14.5)
    lo = ds.isel(curve=slice(0, 5))
    hi = ds.isel(curve=slice(35, 45))  # still mostly bcc, higher pressure
    peak_lo = x[window][lo["intensity"].values[:, window].mean(0).argmax()]
    peak_hi = x[window][hi["intensity"].values[:, window].mean(0).argmax()]
    assert peak_lo == pytest.approx(13.75, abs=0.05)
    assert peak_hi > peak_lo + 0.05


def test_counting_noise_is_poisson():
    sim = XRDSimulator("Fe", seed=1)
    curves = sim.curves(np.full(400, 2.0))
    flat = curves[:, (sim.two_theta > 7.0) & (sim.two_theta < 7.5)]  # background only
    assert flat.var(axis=0).mean() / flat.mean() == pytest.approx(1.0, abs=0.1)
    assert curves.dtype == np.float32 and np.all(curves >= 0)


def test_run_is_valid_deterministic_and_records_noisy_pressure():
    a = simulate_run("FeO", 120, seed=7)
    b = simulate_run("FeO", 120, seed=7)
    c = simulate_run("FeO", 120, seed=8)
    validate(a)
    assert a.sizes == {"curve": 120, "two_theta": 4000}
    assert np.array_equal(a["intensity"].values, b["intensity"].values)
    assert not np.array_equal(a["intensity"].values, c["intensity"].values)
    residual = a["pressure"].values - a["true_pressure"].values
    assert 0.1 < residual.std() < 0.2
    assert np.all(np.diff(a["time"].values) > 0)
    assert a.attrs["energy"] == 25.6 and a.attrs["sample"] == "FeO"


@pytest.mark.parametrize("cell", ["dDAC", "mDAC"])
def test_pressure_paths(cell):
    rng = np.random.default_rng(0)
    p = pressure_path(90, 1.0, 30.0, cell=cell, rng=rng)
    assert p[0] == pytest.approx(1.0, abs=1.0) and p.max() <= 30.0 + 1e-9
    assert np.all(np.diff(p) >= -1e-9)
    q = pressure_path(90, 1.0, 30.0, cell=cell, decompress_to=3.0, rng=rng)
    assert q[-1] == pytest.approx(3.0) and q.argmax() < 70
    with pytest.raises(ValueError, match="unknown cell"):
        pressure_path(10, 0, 1, cell="piston", rng=rng)


def test_decompression_run_returns_to_before():
    ds = simulate_run("Fe", 150, seed=1, decompress_to=2.0)
    labels = ds["label"].values
    assert labels.max() == 2 and labels[-1] == 0


def test_paper_presets_shape():
    assert len(PAPER_PRESETS) == 9
    sizes = [kw["n_curves"] for kw in PAPER_PRESETS.values()]
    assert min(sizes) == 60 and max(sizes) == 460
    assert {kw["material"] for kw in PAPER_PRESETS.values()} == {"Fe", "FeO"}
    sets = paper_datasets(seed=0, names=["D3", "D8"])
    assert sets["D3"].sizes["curve"] == 60 and sets["D8"].attrs["material"] == "FeO"
    assert set(np.unique(sets["D8"]["label"].values)) == {0, 1, 2}
