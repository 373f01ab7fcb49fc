"""Corpus networks trained with other seeds, and averages of them (FeO by default).

Three corpus networks of the same recipe and budget, training seeds 0 (the shipped one), 1
and 2, label the same unseen runs with zero hand labels — realistic, and the same loadings
under shifted conditions; then the arithmetic mean of two and of three networks'
probabilities and the normalised geometric mean of three, decoded as usual. Per-curve
accuracy and "during" recall: mean ± 1.96 standard errors over runs, and the paired
difference from seed 0. Validation seeds 600+ (no accuracy table uses them).

    python benchmarks/network_seeds.py FeO 12     # transition, runs; minutes per network
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from specflow.learn.classifier import PhaseClassifier
from specflow.learn.corpus_model import corpus_training
from specflow.learn.decode import DecoderConfig, decode
from specflow.simulator.simulate import (
    draw_conditions,
    shifted_conditions,
    simulate_family,
    simulate_run_parts,
)
from specflow.simulator.transitions import get_transition


def unseen_runs(name: str, n_runs: int) -> dict[str, list]:
    """``n_runs`` loadings (seeds 600+), each under realistic and under shifted conditions."""
    mat = get_transition(name)
    runs: dict[str, list] = {"realistic": [], "shifted": []}
    for seed in range(600, 600 + n_runs):
        rng = np.random.default_rng(seed)
        real = draw_conditions(mat, "realistic", rng)
        shifted = shifted_conditions(real, rng)
        n = int(rng.integers(150, 251))
        for kind, cond in (("realistic", real), ("shifted", shifted)):
            runs[kind].append(simulate_run_parts(
                mat, n, seed=seed, conditions=cond,
                start=max(0.5, real.transition(mat).onset - 6.0)).data)
    return runs


def sem(values: np.ndarray) -> float:
    return float(1.96 * values.std(ddof=1) / np.sqrt(len(values)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("transition", nargs="?", default="FeO")
    ap.add_argument("runs", nargs="?", type=int, default=12)
    args = ap.parse_args()
    name = args.transition
    runs = unseen_runs(name, args.runs)
    unlabelled = [r.drop_vars("label") for r in simulate_family(name, 2, seed=500)]
    clfs = []
    for s in (0, 1, 2):
        t0 = time.perf_counter()
        clfs.append(PhaseClassifier(corpus_training=corpus_training(seed=s)).fit(unlabelled))
        print(f"seed {s} fitted in {time.perf_counter() - t0:.0f} s", flush=True)
    dec = clfs[0].bundle_.get("decoder")
    print("decoder", dec, flush=True)
    cfg = DecoderConfig(**dec) if isinstance(dec, dict) else dec
    for kind, rs in runs.items():
        res: dict[str, tuple[list, list]] = {
            k: ([], []) for k in ("seed0", "seed1", "seed2", "mean01", "mean012", "geo012")}
        for run in rs:
            t, pressure = run["label"].values, run["pressure"].values
            probs = [c.predict(run)["probabilities"].values for c in clfs]
            cands = {f"seed{i}": c.predict(run)["label"].values for i, c in enumerate(clfs)}
            cands["mean01"] = decode((probs[0] + probs[1]) / 2, pressure, cfg).labels
            cands["mean012"] = decode(sum(probs) / 3, pressure, cfg).labels
            g = np.exp(np.mean([np.log(np.clip(p, 1e-6, None)) for p in probs], 0))
            cands["geo012"] = decode(g / g.sum(1, keepdims=True), pressure, cfg).labels
            for k, p in cands.items():
                res[k][0].append(100 * (p == t).mean())
                res[k][1].append(100 * (p[t == 1] == 1).mean() if (t == 1).any() else np.nan)
        base = np.array(res["seed0"][0])
        for k, (acc, during) in res.items():
            a = np.array(acc)
            d = a - base
            print(f"{name} {kind:9s} {k:8s} acc {a.mean():5.1f} ± {sem(a):.1f}  during "
                  f"{np.nanmean(during):5.1f}  − seed0 {d.mean():+.1f} ± {sem(d):.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
