"""A fit-based reader of two-phase curves, alone and combined with the corpus network (FeO).

Does a reader that fits the two phases' lines — a width-invariant cue — add what FeO's
network misses? The reader is told what a user has: the transition's phases (structures,
equations of state, the onset-dependent distortion), the beam energy and each curve's
recorded pressure; not the line shape, the nuisances, the texture or the true pressure.
Per curve, on the raw counts minus a SNIP background, with Poisson weights:

* the pressure is searched ±1.5 GPa of the recorded one (0.25 GPa steps), the line width
  scanned (constant in Q, or growing as tan θ; Lorentzian share 0.2/0.5/0.8, re-chosen
  every 10 curves), the high phase's distortion scanned through its onset;
* every reflection gets a free non-negative intensity (texture, sparkle);
* χ² of each phase alone and of both together: the gains of two phases over each one are
  the reader's evidence. A logistic regression maps them — and their change from the run's
  first 15 curves, the run's own reference — to class probabilities; it is fitted on
  12 realistic runs of other seeds (700+).

Rows: the default network (zero labels), the reader alone, and their combination
``p_network × p_reader^λ`` (renormalised) for three λ, each decoded by the default
decoder; per-curve accuracy and "during" recall, mean ± 95 % interval over runs, the paired
difference from the network, and the ideal observer. Validation seeds 600+ (no accuracy
table uses them). Benchmark code: the reader is not part of specflow.

    python benchmarks/fit_reader.py                 # FeO, 12 runs per protocol (~15 min)
    python benchmarks/fit_reader.py --runs 4 --train-runs 4
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from corpus_budget import (  # benchmarks/corpus_budget.py, beside this
    CONDITIONS,
    ceiling_scores,
    run_score,
    test_runs,
    unlabelled_runs,
)
from pybaselines import Baseline
from scipy.optimize import nnls
from sklearn.linear_model import LogisticRegression

from specflow.data.schema import energy_to_wavelength, two_theta_to_q
from specflow.learn.classifier import PhaseClassifier
from specflow.learn.decode import DecoderConfig, decode
from specflow.learn.metrics import mean_interval, paired_difference
from specflow.simulator.lines import pseudo_voigt_sum
from specflow.simulator.phases import Phase
from specflow.simulator.transitions import Transition, get_transition

WIDTHS_Q = np.geomspace(0.005, 0.045, 10)  # FWHM in Q (Å⁻¹) scanned
ETAS = (0.2, 0.5, 0.8)  # Lorentzian share scanned
TAN_SHARES = (0.0, 1.0)  # share of the width that grows as tan θ (microstrain)
PRESSURE_SEARCH = np.arange(-1.5, 1.51, 0.25)  # GPa around the recorded pressure
ONSET_OFFSETS = (0.0, 2.0, 4.0, 6.0)  # GPa below the curve's pressure: the distortion scan
REFERENCE_CURVES = 15  # the run's first curves: its own reference
LAMBDAS = (0.25, 0.5, 1.0)


class FitReader:
    """Two-phase line fits of one run's curves (2θ in degrees, counts)."""

    def __init__(self, transition: Transition, energy_kev: float, two_theta: np.ndarray):
        self.transition = transition
        self.energy = energy_kev
        self.x = two_theta.astype(np.float64)
        self.wavelength = energy_to_wavelength(energy_kev)
        q = two_theta_to_q(self.x, self.wavelength)
        self.half_window = max(5, int(round(0.12 / np.median(np.diff(q)))))
        self.baseline = Baseline(self.x)
        self.mid = float(np.median(self.x))
        self.shape = (0.5, 0.0)  # (Lorentzian share, tan θ share)
        self._highs: dict[float, Phase] = {}

    def high(self, onset: float) -> Phase:
        """The high phase of a loading whose transition started at ``onset`` (1 GPa steps)."""
        if self.transition.high_at_onset is None:
            return self.transition.high
        key = float(round(onset))
        if key not in self._highs:
            self._highs[key] = self.transition.high_at_onset(key)
        return self._highs[key]

    def columns(self, phase: Phase, pressure: float, width_q: float) -> np.ndarray:
        """Unit-area line profiles (m, L) of ``phase``'s reflections at ``pressure``."""
        pos = phase.peaks(np.array([pressure]), self.energy, float(self.x[-1]) + 1.0)[0][0]
        pos = pos[(pos > self.x[0]) & (pos < self.x[-1])]
        if pos.size == 0:
            return np.zeros((0, len(self.x)))
        eta, tan_share = self.shape
        theta = np.radians(pos / 2)
        fwhm = np.degrees(width_q * self.wavelength / (2 * np.pi * np.cos(theta)))
        fwhm *= (1 - tan_share) + tan_share * np.tan(theta) / np.tan(np.radians(self.mid / 2))
        return pseudo_voigt_sum(self.x.astype(np.float32), pos[:, None].astype(np.float32),
                                np.ones((pos.size, 1), np.float32),
                                fwhm[:, None].astype(np.float32), eta).astype(np.float64)

    @staticmethod
    def chi2(columns: np.ndarray, target: np.ndarray, sqrt_weight: np.ndarray) -> float:
        return float(nnls((columns * sqrt_weight).T, target * sqrt_weight, maxiter=2000)[1] ** 2)

    def read(self, counts: np.ndarray, pressure: np.ndarray) -> np.ndarray:
        """(n, 2): χ² gain of both phases over the low phase alone, and over the high one."""
        low = self.transition.low
        out = np.zeros((len(pressure), 2))
        width = None
        for i, (y, recorded) in enumerate(zip(counts.astype(np.float64), pressure,
                                              strict=True)):
            ok = np.isfinite(y)
            y = np.where(ok, y, np.interp(np.arange(len(y)), np.flatnonzero(ok), y[ok]))
            target = y - self.baseline.snip(y, max_half_window=self.half_window,
                                            decreasing=True, smooth_half_window=3)[0]
            sw = np.sqrt(1.0 / np.maximum(y, 1.0)) * ok
            fit = (target, sw)
            p0 = float(recorded)
            if width is None:
                width = min(WIDTHS_Q, key=lambda w: self.both(p0, w, p0, *fit))
            p = p0 + min(PRESSURE_SEARCH, key=lambda d: self.both(p0 + d, width, p0, *fit))
            if i % 10 == 0:  # the line shape, re-chosen every 10 curves
                self.shape = min(((e, s) for e in ETAS for s in TAN_SHARES),
                                 key=lambda sh: self._shape_chi2(sh, p, *fit))
            width = min(WIDTHS_Q, key=lambda w: self.both(p, w, p, *fit))
            onset = min((p - d for d in ONSET_OFFSETS),
                        key=lambda o: self.both(p, width, o, *fit))
            two = self.both(p, width, onset, *fit)
            alone = [min(self.chi2(self.columns(phase, p, w), *fit) for w in WIDTHS_Q)
                     for phase in (low, self.high(onset))]
            out[i] = alone[0] - two, alone[1] - two
        return out

    def both(self, p: float, width: float, onset: float, target: np.ndarray,
             sw: np.ndarray) -> float:
        """χ² of both phases' lines at pressure ``p``, the high one distorted from ``onset``."""
        design = np.vstack([self.columns(self.transition.low, p, width),
                            self.columns(self.high(onset), p, width)])
        return self.chi2(design, target, sw)

    def _shape_chi2(self, shape: tuple[float, float], p: float, target: np.ndarray,
                    sw: np.ndarray) -> float:
        self.shape = shape
        return min(self.both(p, w, p, target, sw) for w in WIDTHS_Q)


def read_run(ds) -> np.ndarray:
    """The reader's gains on every curve of a run (Dataset in the simulator's 2θ layout)."""
    reader = FitReader(get_transition(ds.attrs["material"]), float(ds.attrs["energy"]),
                       ds["two_theta"].values)
    return reader.read(ds["intensity"].values, ds["pressure"].values)


def evidence(gains: np.ndarray) -> np.ndarray:
    """Features of the gains: log ratio and logs, and their change from the run's first
    curves."""
    g_low, g_high = np.maximum(gains[:, 0], 1.0), np.maximum(gains[:, 1], 1.0)
    x = np.column_stack([np.log(g_low / g_high), np.log(g_low), np.log(g_high)])
    return np.column_stack([x, x - np.median(x[:REFERENCE_CURVES], 0)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transition", default="FeO")
    ap.add_argument("--runs", type=int, default=12)
    ap.add_argument("--train-runs", type=int, default=12)
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message="No Pauling electronegativity")
    name = args.transition
    t0 = time.perf_counter()
    train = test_runs(name, args.train_runs, first_seed=700)["realistic"]
    x = np.concatenate([evidence(read_run(r.data)) for r in train])
    y = np.concatenate([r.data["label"].values for r in train])
    mapping = LogisticRegression(C=1.0, max_iter=2000).fit(x, y)
    print(f"# python benchmarks/fit_reader.py --transition {name} --runs {args.runs} "
          f"--train-runs {args.train_runs}\n# reader mapping fitted on {args.train_runs} "
          f"realistic runs (seeds 700+) in {time.perf_counter() - t0:.0f} s", flush=True)
    clf = PhaseClassifier().fit(unlabelled_runs(name))
    dec = clf.bundle_.get("decoder")
    cfg = DecoderConfig(**dec) if isinstance(dec, dict) else dec
    runs = test_runs(name, args.runs)
    for kind in CONDITIONS:
        scores: dict[str, tuple[list, list]] = {}
        for run in runs[kind]:
            ds = run.data
            pressure, truth = ds["pressure"].values, ds["label"].values
            net = clf.predict(ds)
            p_net = np.clip(net["probabilities"].values, 1e-6, None)
            p_read = np.clip(mapping.predict_proba(evidence(read_run(ds))), 1e-6, None)
            labels = {"default network, zero labels": net["label"].values,
                      "fit reader alone": decode(p_read, pressure, cfg).labels}
            for lam in LAMBDAS:
                g = np.log(p_net) + lam * np.log(p_read)
                g = np.exp(g - g.max(1, keepdims=True))
                labels[f"network × reader^{lam}"] = decode(g / g.sum(1, keepdims=True),
                                                           pressure, cfg).labels
            for key, lab in labels.items():
                acc, during = run_score(lab, truth)
                scores.setdefault(key, ([], []))[0].append(acc)
                scores[key][1].append(during)
        print(f"\n## {name}: {args.runs} unseen {kind} runs (seeds 600+), zero labels")
        print(f"{'reader':<30} | {'accuracy %':>12} | {'during rec. %':>13} | "
              f"{'− network (points)':>22}")
        first = "default network, zero labels"
        for key, (acc, during) in scores.items():
            m, h = mean_interval(acc)
            d, dh = mean_interval(during)
            diff = paired_difference(acc, scores[first][0])
            delta = ("—" if key == first or diff["low"] is None else
                     f"{diff['mean']:+.1f} [{diff['low']:+.1f}, {diff['high']:+.1f}]")
            print(f"{key:<30} | {m:6.1f} ± {h:3.1f} | {d:6.1f} ± {dh:4.1f} | {delta:>22}",
                  flush=True)
        truth = [r.data["label"].values for r in runs[kind]]
        m, h = mean_interval(ceiling_scores(runs[kind], truth))
        print(f"{'ceiling: ideal observer':<30} | {m:6.1f} ± {h:3.1f} |")
    print(f"\n# {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
