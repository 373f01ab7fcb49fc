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
from corpus_budget import CONDITIONS, test_runs  # benchmarks/corpus_budget.py, beside this

from specflow.learn.ceiling import observer_probabilities
from specflow.learn.classifier import PhaseClassifier
from specflow.learn.corpus_model import corpus_training
from specflow.learn.decode import decode
from specflow.learn.metrics import mean_interval, paired_difference
from specflow.simulator.simulate import simulate_family

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
        unlabelled = [r.drop_vars("label") for r in simulate_family(name, 2, seed=500)]
        fitted = {}
        for variant, training in VARIANTS.items():
            t0 = time.perf_counter()
            fitted[variant] = (PhaseClassifier(corpus_training=training).fit(unlabelled),
                               time.perf_counter() - t0)
        for kind in CONDITIONS:
            truth = [r.data["label"].values for r in runs[kind]]
            ceiling = [100 * float((decode(observer_probabilities([r]),
                                           r.data["pressure"].values).labels == t).mean())
                       for r, t in zip(runs[kind], truth, strict=True)]
            scores: dict[str, list[float]] = {}
            print(f"\n## {name}: {args.runs} unseen {kind} runs (seeds 600+), zero labels")
            print(f"{'corpus network':<26} | {'accuracy %':>12} | {'during rec. %':>13} | "
                  f"{'− default (points)':>22} | train s")
            first = next(iter(VARIANTS))
            for variant, (clf, seconds) in fitted.items():
                acc, during = [], []
                for run, t in zip(runs[kind], truth, strict=True):
                    p = clf.predict(run.data)["label"].values
                    acc.append(100 * float((p == t).mean()))
                    during.append(100 * float((p[t == 1] == 1).mean()) if (t == 1).any()
                                  else np.nan)
                scores[variant] = acc
                m, h = mean_interval(acc)
                d, dh = mean_interval(during)
                diff = paired_difference(acc, scores[first])
                delta = ("—" if variant == first else
                         f"{diff['mean']:+.1f} [{diff['low']:+.1f}, {diff['high']:+.1f}]")
                print(f"{variant:<26} | {m:6.1f} ± {h:3.1f} | {d:6.1f} ± {dh:4.1f} | "
                      f"{delta:>22} | {seconds:.0f}", flush=True)
            balanced = np.mean([scores["balanced, seed 0"], scores["balanced, seed 1"]], 0)
            plain = np.mean([scores[first], scores["plain, seed 1"]], 0)
            diff = paired_difference(balanced, plain)
            print(f"{'balanced − plain (2 seeds)':<26} | {'':>12} | {'':>13} | "
                  f"{diff['mean']:+.1f} [{diff['low']:+.1f}, {diff['high']:+.1f}]".rstrip())
            m, h = mean_interval(ceiling)
            print(f"{'ceiling: ideal observer':<26} | {m:6.1f} ± {h:3.1f} |")


if __name__ == "__main__":
    main()
