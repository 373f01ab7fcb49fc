"""Can the labels be seen? Observability of every built-in transition under a preset.

For each transition, ``--runs`` simulated runs: how many curves the phase fraction calls
"during" (5–95 % high phase), how many of them labelling by sight moves (the ends of a
"during" stretch where a mixture cannot be told from a pure phase at the run's noise), and
the share of the remaining "during" curves whose noise-free signal differs from the best
pure-phase fit (free reflection intensities and width) by χ² ≥ 25 — what
``tests/test_observer.py`` asserts (≥ 95 %). The ideal observer's decoded accuracy (the
ceiling of the accuracy tables) is printed beside it.

    python benchmarks/observability.py                    # realistic, 8 runs per transition
    python benchmarks/observability.py --preset shifted
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from specflow.data.labels import labels_from_fraction
from specflow.learn.decode import decode
from specflow.learn.metrics import mean_interval
from specflow.simulator.observer import DISTINGUISHABLE_CHI2, distinguishability, ideal_observer
from specflow.simulator.simulate import PRESETS, simulate_family_parts
from specflow.simulator.transitions import TRANSITIONS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=PRESETS, default="realistic")
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--curves", type=int, nargs=2, default=(120, 200))
    ap.add_argument("--seed", type=int, default=900)
    ap.add_argument("--transitions", nargs="+", default=list(TRANSITIONS))
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message="No Pauling electronegativity")
    print(f"preset {args.preset}, {args.runs} runs of {args.curves[0]}–{args.curves[1]} curves "
          f"per transition (seed {args.seed}); ceiling: mean ± 95 % CI over runs")
    print(f"{'transition':<11}{'during (fraction)':>18}{'moved by sight':>16}"
          f"{'distinguishable':>17}{'ceiling %':>14}{'s':>6}")
    for name in args.transitions:
        t0 = time.perf_counter()
        runs = simulate_family_parts(name, args.runs, n_curves=tuple(args.curves),
                                     seed=args.seed, preset=args.preset)
        by_fraction = np.concatenate([labels_from_fraction(r.data["phase_fraction"].values)
                                      for r in runs])
        by_sight = np.concatenate([r.data["label"].values for r in runs])
        chi2 = np.concatenate([distinguishability(r) for r in runs])
        ceiling = []
        for r in runs:
            seen = ideal_observer(r)
            decoded = decode(seen.probabilities, r.data["pressure"].values).labels
            ceiling.append(100 * float((decoded == r.data["label"].values).mean()))
        during = int((by_fraction == 1).sum())
        moved = int(((by_fraction == 1) & (by_sight != 1)).sum())
        mean, half = mean_interval(ceiling)
        print(f"{name:<11}{during:>18}{f'{moved} ({100 * moved / max(during, 1):.0f} %)':>16}"
              f"{f'{100 * (chi2 >= DISTINGUISHABLE_CHI2).mean():.1f} %':>17}"
              f"{f'{mean:.2f}±{half:.2f}':>14}{time.perf_counter() - t0:>6.0f}", flush=True)


if __name__ == "__main__":
    main()
