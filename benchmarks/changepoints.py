"""Zero-label start: how often do change-point proposals land on a true transition boundary?

For realistic simulated runs of several transitions, the candidates of
:func:`specflow.learn.changepoints.propose_transitions` (prepared curves, no labels) are compared
with the true onset and end of the compression sweep: a boundary is *found* when a candidate
lies within ``--tolerance`` curves of it. The same count for evenly spaced candidates is the
control (what labelling blind at the same budget gives).

    python benchmarks/changepoints.py --runs 6
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from specflow.learn.changepoints import propose_transitions
from specflow.learn.data import to_curves
from specflow.learn.metrics import mean_interval
from specflow.simulator.simulate import simulate_family


def boundaries(truth: np.ndarray, up: int) -> list[int]:
    """Indices where the compression sweep's true label first leaves 0 and first reaches 2."""
    t = truth[:up]
    return [int(np.flatnonzero(t >= k)[0]) for k in (1, 2) if (t >= k).any()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transitions", nargs="+", default=["Fe", "FeO", "Si", "ZnO", "NaCl"])
    ap.add_argument("--runs", type=int, default=6, help="runs per transition")
    ap.add_argument("--changes", type=int, nargs="+", default=[2, 4, 6])
    ap.add_argument("--tolerance", type=int, default=5, help="curves")
    ap.add_argument("--seed", type=int, default=200)
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message="No Pauling electronegativity")
    print(f"share of true boundaries (onset, end) with a candidate within ±{args.tolerance} "
          f"curves; mean ± 95 % CI over runs ({args.runs} per transition)")
    print(f"{'transition':<10} {'candidates/sweep':>16} {'change points':>14} {'even':>10}")
    for name in args.transitions:
        runs = simulate_family(name, args.runs, n_curves=(150, 300), seed=args.seed)
        for k in args.changes:
            hit, even = [], []
            for ds in runs:
                pressure = ds["pressure"].values
                up = int(np.argmax(pressure)) + 1
                truth = ds["true_label"].values if "true_label" in ds else ds["label"].values
                cands = [p.index for p in propose_transitions(to_curves([ds]).x[:up],
                                                              pressure[:up], n_changes=k)]
                grid = np.linspace(0, up - 1, k + 2)[1:-1]
                for b in boundaries(truth, up):
                    hit.append(float(min(abs(c - b) for c in cands) <= args.tolerance))
                    even.append(float(np.min(np.abs(grid - b)) <= args.tolerance))
            h, e = mean_interval([100 * v for v in hit]), mean_interval([100 * v for v in even])
            print(f"{name:<10} {k:>16} {h[0]:>8.0f}±{h[1]:<4.0f} {e[0]:>5.0f}±{e[1]:<4.0f}")


if __name__ == "__main__":
    main()
