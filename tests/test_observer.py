"""The yardstick's physics: labels a scientist can see, and the ideal observer (ceiling)."""

from __future__ import annotations

import numpy as np
import pytest

from specflow.data.labels import labels_from_fraction
from specflow.learn.decode import decode
from specflow.simulator.observer import (
    DISTINGUISHABLE_CHI2,
    distinguishability,
    ideal_observer,
    visible_labels,
)
from specflow.simulator.simulate import resimulate, simulate_family, simulate_family_parts
from specflow.simulator.transitions import TRANSITIONS

pytestmark = [pytest.mark.slow]


@pytest.mark.parametrize("name", list(TRANSITIONS))
def test_during_curves_are_distinguishable_from_a_pure_phase(name):
    """Observability: under `realistic`, ≥ 95 % of the "during" curves differ from the best
    pure-phase fit (free reflection intensities and width) by χ² ≥ 25 at the run's noise,
    and labelling by sight moves at most a fifth of the fraction-defined "during" curves."""
    runs = simulate_family_parts(name, 4, n_curves=(100, 140), seed=11)
    chi2 = np.concatenate([distinguishability(r) for r in runs])
    by_fraction = np.concatenate([labels_from_fraction(r.data["phase_fraction"].values)
                                  for r in runs])
    by_sight = np.concatenate([r.data["label"].values for r in runs])
    assert len(chi2) >= 10
    assert (chi2 >= DISTINGUISHABLE_CHI2).mean() >= 0.95, np.sort(chi2)[:10]
    moved = ((by_fraction == 1) & (by_sight != 1)).sum() / max((by_fraction == 1).sum(), 1)
    assert moved <= 0.2


def test_visible_labels_trim_only_the_ends_of_a_during_stretch():
    run = simulate_family_parts("FeO", 1, n_curves=120, seed=12)[0]
    fraction = labels_from_fraction(run.data["phase_fraction"].values)
    trimmed = visible_labels(fraction, run)
    assert np.array_equal(trimmed[fraction != 1], fraction[fraction != 1])
    sweep = slice(0, int(np.argmax(run.data["true_pressure"].values)) + 1)
    assert np.all(np.diff(trimmed[sweep]) >= 0)  # still before → during → after
    kept = np.flatnonzero(trimmed == 1)
    if kept.size:
        chi2 = distinguishability(run, kept[[0, -1]])
        assert (chi2 >= DISTINGUISHABLE_CHI2).all()


def test_ideal_observer_reads_fe_and_si_runs_almost_perfectly():
    for name in ("Fe", "Si"):
        for run in simulate_family_parts(name, 2, n_curves=(100, 140), seed=13):
            seen = ideal_observer(run)
            decoded = decode(seen.probabilities, run.data["pressure"].values).labels
            np.testing.assert_allclose(seen.probabilities.sum(1), 1, atol=1e-9)
            assert (decoded == run.data["label"].values).mean() >= 0.97
            f = run.data["phase_fraction"].values
            assert np.abs(seen.fraction - f).mean() < 0.05


def test_an_observer_not_told_the_pressure_finds_it_near_the_true_one_and_reads_fe(
        monkeypatch):
    from specflow.simulator import observer

    run = simulate_family_parts("Fe", 1, n_curves=60, seed=14)[0]
    found = []
    real = observer._fitted_pressure

    def spy(run_, recorded, search, *args, **kwargs):
        found.append((recorded, real(run_, recorded, search, *args, **kwargs)))
        return found[-1][1]

    monkeypatch.setattr(observer, "_fitted_pressure", spy)
    seen = ideal_observer(run, pressure_search=1.5)
    monkeypatch.undo()
    recorded, fitted = np.array(found).T
    true = run.data["true_pressure"].values
    assert np.all(np.abs(fitted - recorded) <= 1.5 + 1e-9) and np.all(fitted >= 0)
    # Fe's lines tell the pressure better than the gauge does
    assert np.abs(fitted - true).mean() < np.abs(recorded - true).mean()
    decoded = decode(seen.probabilities, run.data["pressure"].values).labels
    assert (decoded == run.data["label"].values).mean() >= 0.95


def test_a_simulated_file_can_be_rebuilt_for_the_ceiling_and_a_changed_one_cannot(tmp_path):
    from specflow.data.io import read_spectra, write_spectra

    ds = simulate_family("Si", 1, n_curves=50, seed=14)[0]
    path = write_spectra(ds, tmp_path / "si.nc")
    again = resimulate(read_spectra(path))
    assert again is not None
    assert np.array_equal(again.data["label"].values, ds["label"].values)
    changed = ds.copy(deep=True)
    changed["intensity"].values[3, 10] += 1
    assert resimulate(changed) is None
    assert resimulate(ds.assign_attrs(simulation="")) is None


def test_an_observer_not_told_the_line_shape_fits_it_from_the_run_and_reads_fe():
    from dataclasses import replace

    from specflow.simulator.observer import _fitted_line_shape, _targets, _valid
    from specflow.simulator.simulate import draw_conditions, simulate_run_parts
    from specflow.simulator.transitions import get_transition

    mat = get_transition("Fe")
    realistic = draw_conditions(mat, "realistic", np.random.default_rng(15))
    broad = replace(realistic, instrument=replace(
        realistic.instrument, fwhm0=2.5 * realistic.instrument.fwhm0, eta=0.85))
    widths = []
    for cond in (realistic, broad):  # two line shapes: each must be read from its run
        run = simulate_run_parts(mat, 60, seed=15, conditions=cond, start=7.0)
        inst, ds = run.simulator.instrument, run.data
        ok = _valid(run)
        shape = _fitted_line_shape(run, ds["pressure"].values, 0.0, _targets(run, ok), ok)
        told = inst.fwhm(ds["true_pressure"].values[:10]).mean()
        assert abs(shape.width(0.0) / told - 1) < 0.15, (shape.width(0.0), told)
        assert abs(shape.eta - inst.eta) <= 0.25 and shape.strain_scale == 0.0
        widths.append(told)
        seen = ideal_observer(run, pressure_search=1.5, line_shape="fitted")
        decoded = decode(seen.probabilities, ds["pressure"].values).labels
        assert (decoded == ds["label"].values).mean() >= 0.95
    assert max(widths) / min(widths) > 1.3  # the two runs' lines differ: the width is read
    with pytest.raises(ValueError, match="line_shape"):
        ideal_observer(run, line_shape="guessed")
