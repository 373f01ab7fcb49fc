"""The ideal observer of simulated runs: what the data allow before any method is tried.

An observer that is *given* what a method has to learn — the loading's two phases with their
texture, every nuisance (background, gasket, medium, diamond spots, beam decay) and each
curve's true pressure — and does not know the grain sparkle or the counting noise. Two
questions, on a :class:`~specflow.simulator.simulate.SimulatedRun`:

* :func:`distinguishability` — can a "during" curve be told from a pure phase at all? Each
  curve's noise-free sample signal is fitted by the best *single* phase (either one), with
  free non-negative intensity per reflection and a free line width;
  the misfit in units of the run's Poisson noise (χ²) is what separates the mixture from a
  pure phase. A curve is distinguishable when χ² ≥ :data:`DISTINGUISHABLE_CHI2`.
* :func:`visible_labels` — labels by what can be seen: each "during" stretch trimmed to the
  curves between the first and last distinguishable one, as a scientist labelling by eye
  would (used by the simulator for transitions that need it, e.g. FeO's small distortion).
* :func:`ideal_observer` — the **ceiling**: each noisy curve's high-phase fraction fitted
  with both phases' patterns (nuisances subtracted, line width scanned), thresholded like the
  labeller (5 % / 95 %), with class probabilities from the fit's uncertainty so the same
  sequence decoder can run on them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.optimize import minimize_scalar, nnls
from scipy.special import ndtr

from specflow.data.labels import LABEL_THRESHOLD
from specflow.simulator.lines import line_widths, pseudo_voigt_sum
from specflow.simulator.phases import Phase

if TYPE_CHECKING:
    from specflow.simulator.simulate import SimulatedRun

DISTINGUISHABLE_CHI2 = 25.0  # a 5σ likelihood-ratio for the one parameter a mixture adds
WIDTHS = np.array([0.7, 0.85, 1.0, 1.2, 1.5, 2.0])  # free line width, × the curve's own
#: An observer not told the line shape (``line_shape="fitted"``): the run's FWHM (deg) and
#: Lorentzian share are those at which both phases fit its first :data:`SHAPE_CURVES` curves
#: best; each curve's width is then optimised within :data:`SHAPE_FACTORS` × the run's
SHAPE_WIDTHS = np.geomspace(0.005, 0.3, 30)
SHAPE_ETAS = np.round(np.arange(0.05, 0.96, 0.05), 2)
SHAPE_CURVES = 10
SHAPE_FACTORS = (0.7, 3.0)


def _columns(phase: Phase, run: SimulatedRun, pressure: float, fwhm: float, eta: float,
             textured: bool = False, strain_scale: float = 1.0) -> np.ndarray:
    """Line profiles (m, L) of ``phase`` at ``pressure``, one row per reflection (unit area,
    or the run's textured per-unit intensity with ``textured``); each line ``fwhm`` wide
    plus the run's microstrain broadening times ``strain_scale``, if it has any."""
    sim = run.simulator
    pos, inten = sim.peaks(phase, np.array([pressure]))
    pos, inten = pos[0], inten[0] * sim._scale[phase.name]
    keep = pos < sim.two_theta[-1] + 1.0
    pos, inten = pos[keep], inten[keep]
    area = inten if textured else np.ones_like(pos)
    x = sim.two_theta.astype(np.float32)
    strain = sim.instrument.strain(np.full(len(pos), pressure))
    widths = line_widths(np.full(len(pos), fwhm, np.float32),
                         None if strain is None else strain * strain_scale, pos[:, None])
    return pseudo_voigt_sum(x, pos[:, None].astype(np.float32),
                             area[:, None].astype(np.float32), widths, eta)


def _weighted_nnls(columns: np.ndarray, target: np.ndarray, weight: np.ndarray
                   ) -> tuple[np.ndarray, float]:
    """Non-negative coefficients of ``columns`` (m, L) fitting ``target`` (L,) with weights
    (1/variance), and the weighted χ²."""
    a = (columns * np.sqrt(weight)).T
    b = target * np.sqrt(weight)
    coef, norm = nnls(a.astype(np.float64), b.astype(np.float64), maxiter=2000)
    return coef, float(norm ** 2)


def _valid(run: SimulatedRun) -> np.ndarray:
    """Detector bins that hold data (not in a gap, not a hot pixel)."""
    ok = ~run.simulator._gaps.copy()
    ok[run.simulator._hot] = False
    return ok


def _targets(run: SimulatedRun, ok: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each curve's valid bins minus its known nuisances, and their weights (1/counts)."""
    counts, other = run.data["intensity"].values, run.expected.other
    return [(y[ok] - o[ok], 1.0 / np.maximum(y[ok], 1.0)) for y, o in zip(counts, other,
                                                                         strict=True)]


def _both_phases(run: SimulatedRun, pressure: float, width: float, shape: _Shape,
                 ok: np.ndarray) -> np.ndarray:
    """Line profiles of both phases at ``pressure`` (valid bins), ``width`` wide, with
    ``shape``'s Lorentzian share and microstrain."""
    mat = run.simulator.material
    return np.concatenate([_columns(phase, run, pressure, width, shape.eta,
                                    strain_scale=shape.strain_scale)[:, ok]
                           for phase in (mat.low, mat.high)])


def distinguishability(run: SimulatedRun, curves: np.ndarray | None = None) -> np.ndarray:
    """χ² (one per curve of ``curves``, default the labelled "during" ones) by which each
    curve's noise-free sample signal differs from the best pure-phase fit, in units of the
    run's counting noise (Poisson variance of the curve's mean counts)."""
    ds, exp = run.data, run.expected
    if curves is None:
        curves = np.flatnonzero(ds["label"].values == 1)
    pressure = ds["true_pressure"].values
    ok = _valid(run)
    eta = run.simulator.instrument.eta
    phases = (run.simulator.material.low, run.simulator.material.high)
    out = np.empty(len(curves))
    for k, i in enumerate(np.asarray(curves, dtype=int)):
        target = (exp.low[i] + exp.high[i])[ok]
        weight = 1.0 / np.maximum(exp.total[i][ok], 1.0)
        out[k] = min(_weighted_nnls(_columns(phase, run, pressure[i], w * exp.fwhm[i],
                                             eta, strain_scale=w)[:, ok], target, weight)[1]
                     for phase in phases for w in WIDTHS)
    return out


def visible_labels(labels: np.ndarray, run: SimulatedRun) -> np.ndarray:
    """``labels`` with each stretch of "during" (1) curves trimmed to the curves between the
    first and the last one whose mixture can be told from a pure phase
    (:func:`distinguishability`); a trimmed curve takes the label of the neighbouring
    stretch on its side."""
    labels = np.asarray(labels)
    seen = np.zeros(len(labels), dtype=bool)
    during = np.flatnonzero(labels == 1)
    if during.size:
        seen[during] = distinguishability(run, during) >= DISTINGUISHABLE_CHI2
    return _trimmed(labels, seen).astype(labels.dtype)


@dataclass
class Observation:
    """The ideal observer's reading of a run: per-curve high-phase ``fraction`` and its
    standard error, thresholded ``labels`` and class ``probabilities`` (n, 3)."""

    fraction: np.ndarray
    error: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray


def ideal_observer(run: SimulatedRun, threshold: float = LABEL_THRESHOLD,
                   broadening_steps: int = 5, pressure_search: float = 0.0,
                   line_shape: str = "told") -> Observation:
    """The ceiling: read each noisy curve's high-phase fraction by fitting, threshold it like
    the labeller.

    Each curve minus its known nuisances is fitted by both phases' lines at the curve's true
    pressure, each reflection with its own non-negative intensity (grain sparkle is unknown),
    the line width scanned over the transformation broadening. A phase's amount is the
    summed fitted intensity of its reflections that no line of the other phase overlaps,
    over the loading's textured intensity of the same reflections; the fraction is the high
    phase's share. Its error combines the fit's covariance with the sparkle of those
    reflections; probabilities are the normal mass of the fraction in each class's interval
    (0: < ``threshold``, 2: > 1 − ``threshold``). Transitions labelled by sight
    (``labels_by_sight``) also trim "during" to where two phases beat one on the noisy curve.

    ``pressure_search`` > 0 (GPa): an observer that is not told the true pressure. Each
    curve's pressure is the one within ± ``pressure_search`` of the *recorded* pressure
    (0.1 GPa steps) at which both phases' lines fit the curve best; the rest as above. How
    much of the ceiling is the exact pressure (``benchmarks/observer_knowledge.py``).

    ``line_shape="fitted"``: an observer not told the instrument's line width, its growth
    with pressure, its Lorentzian share or any microstrain. The run's width and share are
    fitted on its first curves (:data:`SHAPE_CURVES`, at their pressures; share in steps of
    0.05), and each curve's width is optimised between 0.7 and 3 times the run's
    (:data:`SHAPE_FACTORS`, to 1 %) instead of scanned over the transformation broadening;
    with ``pressure_search``, each curve's pressure is searched at the width fitted to the
    curve before it.
    """
    if line_shape not in ("told", "fitted"):
        raise ValueError(f"line_shape must be 'told' or 'fitted', not {line_shape!r}")
    ds, sim = run.data, run.simulator
    pressure = ds["true_pressure"].values
    ok = _valid(run)
    inst, mat = sim.instrument, sim.material
    sparkle = max(inst.grain_noise, sim.artefacts.sparkle)
    n = len(pressure)
    targets = _targets(run, ok)
    shape = _Shape(inst.fwhm, inst.eta, 1.0)
    if pressure_search > 0:
        pressure = pressure.copy()
    extra = np.linspace(0.0, mat.transformation_broadening, broadening_steps)
    if line_shape == "fitted":
        shape = _fitted_line_shape(run, ds["pressure"].values, pressure_search, targets, ok)
    fraction, error, two_phase_gain = np.empty(n), np.empty(n), np.empty(n)
    tracked = shape  # fitted: the pressure is searched at the previous curve's width
    for i in range(n):
        target, weight = targets[i]
        if pressure_search > 0:
            pressure[i] = _fitted_pressure(run, float(ds["pressure"].values[i]),
                                           pressure_search, target, weight, ok, shape=tracked)
        if line_shape == "told":
            best = min((_two_phase_fit(run, pressure[i], w, target, weight, ok, shape)
                        for w in shape.width(pressure[i]) + extra), key=lambda f: f.chi2)
        else:
            best = _best_width_fit(run, pressure[i], shape, target, weight, ok)
            tracked = _Shape(lambda p, w=best.width: w, shape.eta, 0.0)
        fraction[i], error[i] = best.fraction(sparkle)
        two_phase_gain[i] = best.single_phase_chi2 - best.chi2
    labels = np.ones(n, dtype=np.int64)
    labels[fraction < threshold] = 0
    labels[fraction > 1 - threshold] = 2
    if mat.labels_by_sight:
        labels = _trimmed(labels, two_phase_gain >= DISTINGUISHABLE_CHI2)
    lo = ndtr((threshold - fraction) / error)
    hi = 1.0 - ndtr((1 - threshold - fraction) / error)
    probs = np.stack([lo, np.clip(1.0 - lo - hi, 0.0, 1.0), hi], axis=1)
    if mat.labels_by_sight:  # the trimmed labels are the observer's reading
        probs = np.where(labels[:, None] == np.arange(3), 0.98, 0.01)
    probs = np.clip(probs, 1e-6, None)
    return Observation(fraction, error, labels, probs / probs.sum(1, keepdims=True))


@dataclass
class _TwoPhaseFit:
    """Free-intensity fit of one curve by both phases' reflections."""

    coef: np.ndarray  # fitted areas, low reflections then high
    expected: np.ndarray  # the loading's textured area of each reflection (per unit)
    unique: np.ndarray  # reflections no line of the other phase overlaps
    n_low: int
    variance: np.ndarray  # variance of each fitted area from the fit's covariance
    chi2: float
    single_phase_chi2: float
    width: float = 0.0  # the FWHM (deg) fitted with

    def fraction(self, sparkle: float) -> tuple[float, float]:
        amounts, variances = [], []
        for part in (slice(0, self.n_low), slice(self.n_low, None)):
            use = self.unique[part] if self.unique[part].any() else np.ones_like(
                self.unique[part])
            c, e, v = self.coef[part][use], self.expected[part][use], self.variance[part][use]
            total = max(e.sum(), 1e-12)
            amount = c.sum() / total
            amounts.append(amount)
            fit = np.clip(v, 0, None).sum() / total**2
            grains = (sparkle * amount) ** 2 * (e**2).sum() / total**2
            variances.append(fit + grains)
        low, high = amounts
        s = low + high
        if s <= 0:
            return 0.0, 1.0
        f = high / s
        var = (low**2 * variances[1] + high**2 * variances[0]) / s**4
        return float(f), float(max(np.sqrt(max(var, 0.0)), 1e-3))


@dataclass
class _Shape:
    """The line shape an observer uses: FWHM (deg) at a pressure, Lorentzian share, and the
    scale of the run's microstrain broadening (1: the simulator's, 0: none)."""

    width: Callable[[float], Any]
    eta: float
    strain_scale: float


def _fitted_line_shape(run: SimulatedRun, recorded: np.ndarray, search: float,
                       targets: list, ok: np.ndarray) -> _Shape:
    """The constant FWHM and Lorentzian share (from :data:`SHAPE_WIDTHS`, :data:`SHAPE_ETAS`)
    at which both phases' lines fit the run's first :data:`SHAPE_CURVES` curves best, each at
    its true pressure, or, with ``search`` > 0, at the pressure found for it: first with a
    provisional shape (0.05°, η 0.5), then again with the shape fitted there."""
    first = range(min(SHAPE_CURVES, len(targets)))
    if search <= 0:
        return _shape_at(run, [float(p) for p in run.data["true_pressure"].values[list(first)]],
                         targets, ok)
    shape = _Shape(lambda p: 0.05, 0.5, 0.0)
    for _ in range(2):
        at = [_fitted_pressure(run, float(recorded[i]), search, *targets[i], ok, shape=shape)
              for i in first]
        shape = _shape_at(run, at, targets, ok)
    return shape


def _shape_at(run: SimulatedRun, pressures: list[float], targets: list, ok: np.ndarray
              ) -> _Shape:
    """The grid's FWHM and Lorentzian share that fit the first curves best at ``pressures``."""
    best, best_chi2 = None, np.inf
    for eta in SHAPE_ETAS:
        for w in SHAPE_WIDTHS:
            trial = _Shape(lambda p, w=w: w, float(eta), 0.0)
            chi2 = sum(_weighted_nnls(_both_phases(run, p, w, trial, ok), *targets[i])[1]
                       for i, p in enumerate(pressures))
            if chi2 < best_chi2:
                best, best_chi2 = (float(w), float(eta)), chi2
    width, eta = best
    return _Shape(lambda p: width, eta, 0.0)


def _best_width_fit(run: SimulatedRun, pressure: float, shape: _Shape, target: np.ndarray,
                    weight: np.ndarray, ok: np.ndarray) -> _TwoPhaseFit:
    """The two-phase fit at the line width (within :data:`SHAPE_FACTORS` × ``shape``'s)
    that fits ``target`` best, found by a bounded scalar search on its logarithm (1 %)."""
    w0 = shape.width(pressure)

    def chi2(log_w: float) -> float:
        return _two_phase_fit(run, pressure, w0 * np.exp(log_w), target, weight, ok,
                              shape).chi2

    lo, hi = np.log(SHAPE_FACTORS)
    found = minimize_scalar(chi2, bounds=(lo, hi), method="bounded",
                            options={"xatol": 0.01})
    return _two_phase_fit(run, pressure, w0 * np.exp(found.x), target, weight, ok, shape)


def _fitted_pressure(run: SimulatedRun, recorded: float, search: float, target: np.ndarray,
                     weight: np.ndarray, ok: np.ndarray, step: float = 0.1,
                     shape: _Shape | None = None) -> float:
    """The pressure within ± ``search`` GPa of ``recorded`` (``step`` apart from it, not
    below 0) at which the two phases' lines, at the instrument's width there (or
    ``shape``'s), fit ``target`` best."""
    inst = run.simulator.instrument
    shape = shape or _Shape(inst.fwhm, inst.eta, 1.0)
    best_chi2, best = np.inf, recorded
    grid = recorded + np.arange(-search, search + step / 2, step)
    for p in np.clip(grid[grid >= 0.0], None, recorded + search):
        design = _both_phases(run, p, shape.width(p), shape, ok)
        chi2 = _weighted_nnls(design, target, weight)[1]
        if chi2 < best_chi2:
            best_chi2, best = chi2, float(p)
    return best


def _two_phase_fit(run: SimulatedRun, pressure: float, width: float, target: np.ndarray,
                   weight: np.ndarray, ok: np.ndarray, shape: _Shape) -> _TwoPhaseFit:
    sim = run.simulator
    mat, eta = sim.material, shape.eta
    cols, areas, positions = [], [], []
    for phase in (mat.low, mat.high):
        pos, inten = sim.peaks(phase, np.array([pressure]))
        keep = pos[0] < sim.two_theta[-1] + 1.0
        positions.append(pos[0][keep])
        areas.append(inten[0][keep] * sim._scale[phase.name])
        cols.append(_columns(phase, run, pressure, width, eta,
                             strain_scale=shape.strain_scale)[:, ok])
    n_low = len(positions[0])
    design = np.concatenate(cols)
    coef, chi2 = _weighted_nnls(design, target, weight)
    single = min(_weighted_nnls(c, target, weight)[1] for c in cols)
    inside = ((np.concatenate(positions) > sim.two_theta[0])
              & (np.concatenate(positions) < sim.two_theta[-1]))
    strain = sim.instrument.strain(np.array([pressure]))
    strain = None if strain is None or not shape.strain_scale else strain * shape.strain_scale
    low_w, high_w = (line_widths(np.array([width]), strain, p[None, :])[0] for p in positions)
    gap = np.abs(np.subtract.outer(positions[0], positions[1])) < 1.5 * np.maximum.outer(
        np.broadcast_to(low_w, positions[0].shape), np.broadcast_to(high_w, positions[1].shape))
    unique = np.concatenate([~gap.any(1), ~gap.any(0)]) & inside
    a = (design * np.sqrt(weight)).T
    gram = a.T @ a
    variance = np.diag(np.linalg.pinv(gram)) * max(chi2 / max(ok.sum() - len(coef), 1), 1.0)
    return _TwoPhaseFit(coef, np.concatenate(areas), unique, n_low, variance, chi2, single,
                        float(width))


def _trimmed(labels: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Each "during" stretch of ``labels`` trimmed to the curves between the first and last
    ``seen`` one (the rule of :func:`visible_labels`)."""
    out = np.array(labels, copy=True)
    during = np.flatnonzero(out == 1)
    for stretch in np.split(during, np.flatnonzero(np.diff(during) > 1) + 1) if during.size \
            else []:
        before = int(out[stretch[0] - 1]) if stretch[0] > 0 else None
        after = int(out[stretch[-1] + 1]) if stretch[-1] + 1 < len(out) else None
        before = after if before is None else before
        after = before if after is None else after
        if before is None:
            continue
        visible = stretch[seen[stretch]]
        first, last = ((visible[0], visible[-1]) if visible.size
                       else (stretch[-1] + 1, stretch[-1] + 1))
        out[stretch[stretch < first]] = before
        out[stretch[stretch > last]] = after
    return out
