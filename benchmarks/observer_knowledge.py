"""How much of the ceiling is knowing each curve's true pressure, and the line shape?

The ceiling of the accuracy tables is an ideal observer told the loading's phases, texture,
nuisances and each curve's *true* pressure, so it knows where every line of either phase
sits. Here a second observer knows the same except the pressure: it takes, for each curve,
the pressure within ±1.5 GPa of the recorded one (the simulated gauge errs by an offset of
0.3 GPa and a gain of 2 %, both 1σ, plus 0.05–0.4 GPa readback noise) at which both
phases fit best
(``ideal_observer(..., pressure_search=1.5)``). Two more are not told the line shape: the
run's width and Lorentzian share are fitted on its first 10 curves and each curve's width
optimised from 0.7 to 3 times it (``line_shape="fitted"``), so they do not know the
instrument's width, its growth with pressure or its shape; one is told the true pressure,
the other must find it too. Beside them the default corpus network with
zero labels, all decoded along the run; per-curve accuracy and "during" recall, mean ± 95 %
interval over runs, and paired differences (same runs).

The unseen runs are the validation loadings of ``benchmarks/corpus_budget.py`` (seeds 600+,
realistic and the same loadings shifted); no accuracy table's test seeds are used.

    python benchmarks/observer_knowledge.py                    # FeO and Fe, 12 loadings
    python benchmarks/observer_knowledge.py --transitions FeO --runs 4
    python benchmarks/observer_knowledge.py --transitions FeO --conditions shifted
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from corpus_budget import CONDITIONS, run_score, test_runs, unlabelled_runs

from specflow.learn.classifier import PhaseClassifier
from specflow.learn.decode import decode
from specflow.learn.metrics import mean_interval, paired_difference
from specflow.simulator.corpus import CorpusRecipe
from specflow.simulator.observer import ideal_observer

SEARCH_GPA = 1.5


def observer_labels(run, pressure_search: float, line_shape: str = "told") -> np.ndarray:
    """The ideal observer's labels of one simulated run, decoded like a model's."""
    probs = ideal_observer(run, pressure_search=pressure_search,
                           line_shape=line_shape).probabilities
    return decode(probs, run.data["pressure"].values).labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transitions", nargs="+", default=["FeO", "Fe"])
    ap.add_argument("--runs", type=int, default=12)
    ap.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message="No Pauling electronegativity")
    for name in args.transitions:
        runs = test_runs(name, args.runs)
        unlabelled = unlabelled_runs(name)
        network = PhaseClassifier(corpus=CorpusRecipe.for_transition(name)).fit(unlabelled)
        for kind in args.conditions:
            t0 = time.perf_counter()
            truth = [r.data["label"].values for r in runs[kind]]
            rows = {
                "ceiling: told the true pressure": [observer_labels(r, 0.0)
                                                    for r in runs[kind]],
                f"observer finding the pressure (±{SEARCH_GPA} GPa)": [
                    observer_labels(r, SEARCH_GPA) for r in runs[kind]],
                "observer finding the line shape": [
                    observer_labels(r, 0.0, "fitted") for r in runs[kind]],
                "observer finding the pressure and line shape": [
                    observer_labels(r, SEARCH_GPA, "fitted") for r in runs[kind]],
                "default corpus network, zero labels": [
                    network.predict(r.data)["label"].values for r in runs[kind]],
            }
            print(f"\n## {name}: {args.runs} unseen {kind} runs (seeds 600+)")
            print(f"{'reader':<45} | {'accuracy %':>12} | {'during rec. %':>13} | "
                  f"{'network − this (points)':>24}")
            network_acc = [run_score(p, t)[0] for p, t in
                           zip(rows["default corpus network, zero labels"], truth, strict=True)]
            for reader, labels in rows.items():
                acc, during = zip(*(run_score(p, t) for p, t in zip(labels, truth, strict=True)),
                                  strict=True)
                m, h = mean_interval(acc)
                d, dh = mean_interval(during)
                diff = paired_difference(network_acc, list(acc))
                delta = ("—" if reader.startswith("default") else
                         f"{diff['mean']:+.1f} [{diff['low']:+.1f}, {diff['high']:+.1f}]")
                print(f"{reader:<45} | {m:6.1f} ± {h:3.1f} | {d:6.1f} ± {dh:4.1f} | "
                      f"{delta:>24}", flush=True)
            for reader in list(rows)[1:4]:
                per_run = [run_score(p, t)[0] for p, t in zip(rows[reader], truth, strict=True)]
                print(f"per run, {reader}: {np.round(per_run, 1).tolist()}")
            print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
