"""Does a bigger corpus or longer training close the gap to the ceiling?

For each transition, corpus networks are trained with the default recipe and training and
with more corpus runs and/or more optimiser steps (each cached like the shipped ones); each
labels the same unseen realistic runs with zero hand labels. Per-curve accuracy and
"during" recall, mean ± 95 % interval over runs, the ideal observer beside them, and
the paired difference of each variant from the default (same runs).

Seeds 600+ (validation; no accuracy table uses them).

    python benchmarks/corpus_budget.py                          # FeO, 12 runs
    python benchmarks/corpus_budget.py --transitions Fe FeO --runs 8
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from specflow.data.corpus import CorpusRecipe
from specflow.data.simulate import draw_conditions, simulate_family, simulate_run_parts
from specflow.data.transitions import get_transition
from specflow.learn.ceiling import observer_probabilities
from specflow.learn.classifier import PhaseClassifier
from specflow.learn.corpus_model import corpus_training
from specflow.learn.decode import decode
from specflow.learn.metrics import mean_interval, paired_difference

#: name -> (corpus runs, training steps)
VARIANTS = {"default (60 runs, 1,500 steps)": (60, 1500),
            "60 runs, 4,000 steps": (60, 4000),
            "200 runs, 4,000 steps": (200, 4000),
            "200 runs, 8,000 steps": (200, 8000)}


def test_runs(name: str, n_runs: int) -> list:
    mat = get_transition(name)
    runs = []
    for seed in range(600, 600 + n_runs):
        rng = np.random.default_rng(seed)
        real = draw_conditions(mat, "realistic", rng)
        n = int(rng.integers(150, 251))
        runs.append(simulate_run_parts(mat, n, seed=seed, conditions=real,
                                       start=max(0.5, real.transition(mat).onset - 6.0)))
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transitions", nargs="+", default=["FeO"])
    ap.add_argument("--runs", type=int, default=12)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message="No Pauling electronegativity")
    for name in args.transitions:
        runs = test_runs(name, args.runs)
        truth = [r.data["label"].values for r in runs]
        ceiling = [100 * float((decode(observer_probabilities([r]), r.data["pressure"].values)
                                .labels == t).mean()) for r, t in zip(runs, truth, strict=True)]
        unlabelled = [r.drop_vars("label") for r in simulate_family(name, 2, seed=500)]
        scores: dict[str, list[float]] = {}
        print(f"\n## {name}: {args.runs} unseen realistic runs (seeds 600+), zero labels")
        print(f"{'corpus network':<32} | {'accuracy %':>12} | {'during rec. %':>13} | "
              f"{'− default (points)':>22} | train s")
        for variant in args.variants:
            corpus_runs, steps = VARIANTS[variant]
            t0 = time.perf_counter()
            clf = PhaseClassifier(corpus=CorpusRecipe.for_transition(name, runs=corpus_runs),
                                  corpus_training=corpus_training(steps=steps)).fit(unlabelled)
            seconds = time.perf_counter() - t0
            acc, during = [], []
            for run, t in zip(runs, truth, strict=True):
                p = clf.predict(run.data)["label"].values
                acc.append(100 * float((p == t).mean()))
                during.append(100 * float((p[t == 1] == 1).mean()) if (t == 1).any() else np.nan)
            scores[variant] = acc
            m, h = mean_interval(acc)
            d, dh = mean_interval(during)
            first = scores[args.variants[0]]
            diff = paired_difference(acc, first)
            delta = ("—" if variant == args.variants[0] else
                     f"{diff['mean']:+.1f} [{diff['low']:+.1f}, {diff['high']:+.1f}]")
            print(f"{variant:<32} | {m:6.1f} ± {h:3.1f} | {d:6.1f} ± {dh:4.1f} | {delta:>22} | "
                  f"{seconds:.0f}", flush=True)
        m, h = mean_interval(ceiling)
        print(f"{'ceiling: ideal observer':<32} | {m:6.1f} ± {h:3.1f} |")


if __name__ == "__main__":
    main()
