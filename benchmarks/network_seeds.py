"""Corpus networks trained with other seeds, and averages of them (FeO by default).

Three corpus networks of the same recipe and budget, training seeds 0 (the shipped one), 1
and 2, label the same unseen runs with zero hand labels — realistic, and the same loadings
under shifted conditions; then the arithmetic mean of two and of three networks'
probabilities and the normalised geometric mean of three, decoded as usual. Per-curve
accuracy and "during" recall: mean ± 1.96 standard errors over runs, and the paired
difference from seed 0. Validation seeds 600+ (no accuracy table uses them).

``--schedule cosine``: beside each seed's network, one of the same seed trained with that
learning-rate schedule, and the paired difference schedule − default averaged over the
three seeds per run (mean ± 1.96 standard errors over runs): whether the schedule helps
beyond one network's luck. ``--fraction-head W``: the same with a training-only head that
reads the high-phase fraction, its loss weighted W (``SupervisedConfig.fraction_weight``);
``--augmentation GROUP``: the same with another augmentation group (e.g. ``instrument``:
lines broadened half as far as the default ``instrument-wide`` does;
``results/network_seeds_wide.txt`` is the run that compared them the other way round,
when ``instrument`` was the default).

    python benchmarks/network_seeds.py FeO 12     # transition, runs; minutes per network
    python benchmarks/network_seeds.py Fe 12 --schedule cosine
    python benchmarks/network_seeds.py FeO 12 --fraction-head 1
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from corpus_budget import (  # benchmarks/corpus_budget.py, beside this
    run_score,
    unlabelled_runs,
    validation_runs,
)

from specflow.learn.classifier import PhaseClassifier
from specflow.learn.corpus_model import corpus_training
from specflow.learn.decode import DecoderConfig, decode


def sem(values: np.ndarray) -> float:
    return float(1.96 * values.std(ddof=1) / np.sqrt(len(values)))


def candidate_rows(name: str, kind: str, runs: list, candidates, base: str
                   ) -> dict[str, tuple[list, list]]:
    """Score ``candidates(run)`` (name → decoded labels) on every run and print one row per
    candidate: accuracy and "during" recall, mean ± 1.96 standard errors over runs, and the
    paired difference from ``base``."""
    res: dict[str, tuple[list, list]] = {}
    for run in runs:
        for key, labels in candidates(run).items():
            acc, during = run_score(labels, run["label"].values)
            res.setdefault(key, ([], []))[0].append(acc)
            res[key][1].append(during)
    width = max(8, *map(len, res))
    for key, (acc, during) in res.items():
        a = np.array(acc)
        d = a - np.array(res[base][0])
        print(f"{name} {kind:9s} {key:{width}s} acc {a.mean():5.1f} ± {sem(a):.1f}  during "
              f"{np.nanmean(during):5.1f}  − {base} {d.mean():+.1f} ± {sem(d):.1f}",
              flush=True)
    return res


def schedule_row(name: str, kind: str, res: dict[str, tuple[list, list]], schedule: str
                 ) -> None:
    """``schedule`` (a variant's label) − default per run, averaged over the seeds both were
    trained with."""
    seeds = [k for k in res if k.startswith("seed")]
    d = np.mean([np.array(res[f"{schedule}-{k}"][0]) - np.array(res[k][0]) for k in seeds], 0)
    print(f"{name} {kind:9s} {schedule} − default, mean over {len(seeds)} seeds: "
          f"{d.mean():+.1f} ± {sem(d):.1f} points", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("transition", nargs="?", default="FeO")
    ap.add_argument("runs", nargs="?", type=int, default=12)
    variant = ap.add_mutually_exclusive_group()
    variant.add_argument("--schedule", choices=["cosine"], default=None,
                         help="also train each seed with this learning-rate schedule")
    variant.add_argument("--fraction-head", type=float, default=None, metavar="W",
                         help="also train each seed with a fraction head of loss weight W")
    variant.add_argument("--augmentation", default=None, metavar="GROUP",
                         help="also train each seed with this augmentation group "
                              "(specflow.data.augment.GROUPS, e.g. instrument)")
    args = ap.parse_args()
    label, changes = None, {}  # the variant trained beside each seed, if any
    if args.schedule:
        label, changes = args.schedule, {"schedule": args.schedule}
    elif args.fraction_head:
        label, changes = "fraction", {"fraction_weight": args.fraction_head}
    elif args.augmentation:
        label, changes = args.augmentation, {"augmentation": args.augmentation}
    name = args.transition
    runs = validation_runs(name, args.runs)
    unlabelled = unlabelled_runs(name)
    clfs, others = [], []
    for s in (0, 1, 2):
        t0 = time.perf_counter()
        clfs.append(PhaseClassifier(corpus_training=corpus_training(seed=s)).fit(unlabelled))
        print(f"seed {s} fitted in {time.perf_counter() - t0:.0f} s", flush=True)
        if label:
            others.append(PhaseClassifier(corpus_training=corpus_training(
                seed=s, **changes)).fit(unlabelled))
    dec = clfs[0].bundle_.get("decoder")
    print("decoder", dec, flush=True)
    cfg = DecoderConfig(**dec) if isinstance(dec, dict) else dec

    def candidates(run) -> dict[str, np.ndarray]:
        pressure = run["pressure"].values
        predicted = [c.predict(run) for c in clfs]  # each network once per run
        probs = [p["probabilities"].values for p in predicted]
        out = {f"seed{i}": p["label"].values for i, p in enumerate(predicted)}
        out["mean01"] = decode((probs[0] + probs[1]) / 2, pressure, cfg).labels
        out["mean012"] = decode(sum(probs) / 3, pressure, cfg).labels
        g = np.exp(np.mean([np.log(np.clip(p, 1e-6, None)) for p in probs], 0))
        out["geo012"] = decode(g / g.sum(1, keepdims=True), pressure, cfg).labels
        for i, c in enumerate(others):
            out[f"{label}-seed{i}"] = c.predict(run)["label"].values
        return out

    for kind, rs in runs.items():
        res = candidate_rows(name, kind, rs, candidates, "seed0")
        if label:
            schedule_row(name, kind, res, label)


if __name__ == "__main__":
    main()
