"""Simulator v2: per-run variation, DAC/detector artefacts, families of runs, the CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from specflow.data.schema import validate
from specflow.simulator.artefacts import Artefacts
from specflow.simulator.simulate import (
    BEAMLINE_ENERGIES,
    RunConditions,
    draw_conditions,
    simulate_family,
    simulate_run,
)
from specflow.simulator.transitions import get_transition


def test_realistic_conditions_vary_between_runs_and_clean_does_not():
    rng = np.random.default_rng(0)
    draws = [draw_conditions("Fe", "realistic", rng) for _ in range(12)]
    assert len({d.energy_kev for d in draws}) > 2
    assert {d.energy_kev for d in draws} <= set(BEAMLINE_ENERGIES)
    assert np.std([d.onset_shift for d in draws]) > 0.3  # onsets move between loadings
    assert len({d.two_theta for d in draws}) == 12 and len({d.artefacts for d in draws}) == 12
    clean = {draw_conditions("Fe", "clean", rng) for _ in range(3)}
    assert clean == {RunConditions()}
    with pytest.raises(ValueError, match="preset"):
        draw_conditions("Fe", "messy", rng)  # type: ignore[arg-type]


def test_shifted_transition_moves_onset_and_keeps_order():
    fe = get_transition("Fe")
    moved = RunConditions(onset_shift=2.0, width_scale=1.5).transition(fe)
    assert moved.onset == pytest.approx(15.0) and moved.end == pytest.approx(19.5)
    assert moved.reverse_end < moved.reverse_onset <= moved.onset < moved.end


def test_realistic_family_is_valid_with_gaps_noisy_labels_and_metadata():
    runs = simulate_family("Fe", 4, n_curves=(40, 60), seed=3)
    assert len(runs) == 4 and len({r.attrs["energy"] for r in runs}) >= 2
    assert len({r.sizes["two_theta"] for r in runs}) == 4  # each run its own detector grid
    for ds in runs:
        validate(ds)
        assert ds.attrs["preset"] == "realistic" and "wavelength" in ds.attrs
        assert 40 <= ds.sizes["curve"] <= 60
        truth = ds["true_label"].values if "true_label" in ds else ds["label"].values
        assert set(np.unique(truth)) <= {0, 1, 2}
    assert any(np.isnan(r["intensity"].values).any() for r in runs)  # module gaps somewhere
    again = simulate_family("Fe", 4, n_curves=(40, 60), seed=3)
    assert all(a.identical(b) for a, b in zip(runs, again, strict=True))  # deterministic


def test_each_artefact_changes_the_curves_where_expected():
    base = RunConditions(energy_kev=30.0, two_theta=(4.0, 30.0, 2600))
    clean = simulate_run("Fe", 30, seed=1, stop=12.0, conditions=base)
    x0 = clean["intensity"].values

    def with_(**kw):
        ds = simulate_run("Fe", 30, seed=1, stop=12.0,
                          conditions=replace(base, artefacts=Artefacts(**kw)))
        assert np.array_equal(ds["pressure"].values, clean["pressure"].values)
        return ds["intensity"].values

    gaps = with_(module_gaps=2)
    nan = np.isnan(gaps)
    assert nan.any() and (nan.all(0) == nan.any(0)).all()  # the same bins in every curve
    assert abs(np.nanmean(gaps) / x0[~nan].mean() - 1) < 0.05
    hot = with_(hot_pixels=3)
    assert len(np.flatnonzero(hot.min(0) > x0.max())) == 3  # stuck far above any peak
    medium = with_(medium="Ne", medium_amplitude=0.3)
    ratio = medium.sum(1) / x0.sum(1)
    p = clean["pressure"].values
    assert ratio[p > 5.5].min() > ratio[p < 4].max() + 0.01  # Ne lines once solid (4.7 GPa)


def test_total_scattering_is_conserved_through_feo_transition():
    cond = RunConditions(energy_kev=30.0, two_theta=(4.0, 30.0, 2600),
                         instrument=replace(RunConditions().instrument, energy_kev=30.0,
                                            background_counts=0.0, texture=0.0,
                                            grain_noise=0.0))
    ds = simulate_run("FeO", 60, seed=0, conditions=cond, start=5.0, stop=30.0)
    total = ds["intensity"].values.sum(1)
    label = ds["label"].values
    before, after = total[label == 0].mean(), total[label == 2].mean()
    assert 0.85 < after / before < 1.15  # was 0.52 with per-cell intensities


def test_simulate_cli_realistic_family_and_list(tmp_path):
    from typer.testing import CliRunner

    from specflow.cli import app

    runner = CliRunner()
    listed = runner.invoke(app, ["simulate", "--list"])
    assert listed.exit_code == 0, listed.output
    assert all(name in listed.output for name in ("Fe", "FeO", "Si", "NaCl", "ZnO"))
    out = runner.invoke(app, ["simulate", "--material", "ZnS", "--preset", "realistic",
                              "--runs", "2", "--curves", "30", "--out", str(tmp_path / "fam")])
    assert out.exit_code == 0, out.output
    files = sorted((tmp_path / "fam").glob("*.nc"))
    assert len(files) == 2
    bad = runner.invoke(app, ["simulate", "--material", "Unobtainium", "--out",
                              str(tmp_path / "y.nc")])
    assert bad.exit_code != 0 and "unknown transition" in bad.output
    assert json.dumps(get_transition("ZnS").references)  # the provenance is plain data


def test_strain_broadening_widens_high_angle_lines_more_and_the_observer_models_it():
    """Microstrain broadening (``Instrument.strain_per_gpa``) widens a line by 2ε·tan θ: at
    high pressure the high-angle lines of a strained run are broader than the same run's
    without strain by more than its low-angle lines; with no strain the widths are the
    instrument's alone and the run records no strain; the ideal observer's line profiles
    carry the strain (they fit the noise-free curve), and ``strain_law`` keeps the width at
    its reference Q."""
    from specflow.data.schema import energy_to_wavelength
    from specflow.simulator.lines import line_widths
    from specflow.simulator.observer import _columns, _valid, _weighted_nnls
    from specflow.simulator.simulate import STRAIN_Q_REF, Instrument, simulate_run_parts

    fwhm = np.array([0.05, 0.06])
    pos = np.array([[8.0, 24.0], [8.0, 24.0]])
    assert line_widths(fwhm, None, pos) is fwhm
    wide = line_widths(fwhm, np.array([0.0, 0.01]), pos)
    np.testing.assert_allclose(wide[0], 0.05, rtol=1e-6)
    np.testing.assert_allclose(wide[1] - 0.06, np.degrees(0.02 * np.tan(np.radians(pos[1] / 2))),
                               rtol=1e-5)
    # the strain law: as wide as the constant law at the reference Q, wider above it
    constant = Instrument(energy_kev=30.0, fwhm_per_gpa=0.002)
    law = constant.strain_law()
    ref = 2 * np.degrees(np.arcsin(STRAIN_Q_REF * energy_to_wavelength(30.0) / (4 * np.pi)))
    at = line_widths(law.fwhm(np.array([20.0])), law.strain(20.0), np.array([[ref, 2 * ref]]))
    np.testing.assert_allclose(at[0, 0], constant.fwhm(20.0), rtol=1e-5)
    assert at[0, 1] > constant.fwhm(20.0)
    with pytest.raises(ValueError, match="already has strain"):
        law.strain_law()

    inst = Instrument(energy_kev=30.0, fwhm_per_gpa=0.0, peak_counts=20_000)
    base = RunConditions(energy_kev=30.0, two_theta=(4.0, 30.0, 2600), instrument=inst)
    strained = replace(base, instrument=replace(inst, strain_per_gpa=4e-4))
    plain, run = (simulate_run_parts("Fe", 40, seed=3, stop=30.0, conditions=c)
                  for c in (base, strained))
    assert run.data.attrs["strain_per_gpa"] == 4e-4 and "strain_per_gpa" not in plain.data.attrs
    assert "strain_per_gpa" not in plain.data.attrs["simulation"]
    top = plain.data["true_pressure"].values.argmax()
    before, after = ((r.expected.low + r.expected.high)[top] for r in (plain, run))
    peaks = np.flatnonzero((before[1:-1] > before[:-2]) & (before[1:-1] >= before[2:])) + 1
    strong = np.sort(peaks[np.argsort(before[peaks])[::-1][:5]])
    # the same area spread wider: lower maxima, the more so at high angle
    drop = [after[i - 3:i + 4].max() / before[i] for i in strong]
    assert drop[-1] < drop[0] < 1.0, drop
    # the observer's profiles of the pure high phase fit that noise-free curve exactly
    ok = _valid(run)
    high = run.simulator.material.high
    p = float(run.data["true_pressure"].values[top])
    cols = _columns(high, run, p, float(run.expected.fwhm[top]), inst.eta)[:, ok]
    target = (run.expected.low + run.expected.high)[top][ok]
    chi2 = _weighted_nnls(cols, target, 1.0 / np.maximum(run.expected.total[top][ok], 1.0))[1]
    assert chi2 < 1.0, chi2
