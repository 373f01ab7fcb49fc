"""Corpus networks trained on class-balanced batches against the default's plain batches.

The corpus's class shares are set by the simulated pressure ranges, not by nature: a network
trained on plain batches learns them as a prior and the decoder adds its own. Balanced
batches (each class equally likely) leave the prior to the decoder. Each variant is trained
with two seeds, so a difference is not one seed's luck; all label the same unseen runs with
zero hand labels (realistic, and the same loadings under shifted conditions). Per-curve
accuracy and "during" recall, mean ± 95 % interval over runs, the paired difference from
the default, and balanced − plain averaged over the two seeds, with the ceiling.
Validation seeds 600+ (no accuracy table uses them).

    python benchmarks/corpus_sampling.py --transitions FeO Fe --runs 12
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from corpus_budget import (  # benchmarks/corpus_budget.py, beside this
    CONDITIONS,
    ceiling_scores,
    test_runs,
    unlabelled_runs,
    variant_rows,
)

from specflow.learn.classifier import PhaseClassifier
from specflow.learn.corpus_model import corpus_training
from specflow.learn.metrics import mean_interval, paired_difference

VARIANTS = {"default (plain, seed 0)": corpus_training(),
            "plain, seed 1": corpus_training(seed=1),
            "balanced, seed 0": corpus_training(balance=True),
            "balanced, seed 1": corpus_training(balance=True, seed=1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transitions", nargs="+", default=["FeO", "Fe"])
    ap.add_argument("--runs", type=int, default=12)
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message="No Pauling electronegativity")
    for name in args.transitions:
        runs = test_runs(name, args.runs)
        unlabelled = unlabelled_runs(name)
        fitted = {}
        for variant, training in VARIANTS.items():
            t0 = time.perf_counter()
            fitted[variant] = (PhaseClassifier(corpus_training=training).fit(unlabelled),
                               time.perf_counter() - t0)
        for kind in CONDITIONS:
            truth = [r.data["label"].values for r in runs[kind]]
            print(f"\n## {name}: {args.runs} unseen {kind} runs (seeds 600+), zero labels")
            print(f"{'corpus network':<26} | {'accuracy %':>12} | {'during rec. %':>13} | "
                  f"{'− default (points)':>22} | train s")
            first = next(iter(VARIANTS))
            scores = variant_rows(fitted, runs[kind], truth, first, 26)
            balanced = np.mean([scores["balanced, seed 0"], scores["balanced, seed 1"]], 0)
            plain = np.mean([scores[first], scores["plain, seed 1"]], 0)
            diff = paired_difference(balanced, plain)
            print(f"{'balanced − plain (2 seeds)':<26} | {'':>12} | {'':>13} | "
                  f"{diff['mean']:+.1f} [{diff['low']:+.1f}, {diff['high']:+.1f}]".rstrip())
            m, h = mean_interval(ceiling_scores(runs[kind], truth))
            print(f"{'ceiling: ideal observer':<26} | {m:6.1f} ± {h:3.1f} |")


if __name__ == "__main__":
    main()
