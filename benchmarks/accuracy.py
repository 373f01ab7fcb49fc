"""Accuracy benchmark: SpecRR, SpecMoco, SpecRRMoco, SpecSelfTime and a raw-data baseline on the
simulator's paper-shaped Fe (D1 D2 D3 D5 D6) and FeO (D4 D7 D8 D9) sets with ≤ 3 % labels.

Each material is pretrained on all its curves (labels hidden), probed with ``--label-fraction``
of each file's labels and scored (weighted precision/recall) on the remaining curves.

    python benchmarks/accuracy.py [--epochs 4] [--seeds 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from specflow.data.simulate import PAPER_PRESETS, paper_datasets
from specflow.learn.evaluate import METHOD_NAMES, default_config, evaluate_datasets

METHODS = ["rr", "moco", "rrmoco", "selftime", "raw"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--epochs", type=int, default=None, help="default: preset for the device")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--label-fraction", type=float, default=0.03)
    ap.add_argument("--n-points", type=int, default=None, help="regrid curves (default: keep)")
    ap.add_argument("--batch-size", type=int, default=None, help="default: preset")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    results: dict[str, dict] = {}
    for seed in args.seeds:
        data = paper_datasets(seed=seed)
        for material in ("Fe", "FeO"):
            sets = {k: v for k, v in data.items() if PAPER_PRESETS[k]["material"] == material}
            for method in args.methods:
                cfg = None
                if method != "raw":
                    cfg = default_config(method, args.epochs, seed, args.device)
                    cfg.n_points = args.n_points
                    cfg.batch_size = args.batch_size or cfg.batch_size
                t0 = time.perf_counter()
                res = evaluate_datasets(sets, method, args.label_fraction, seed=seed,
                                        config=cfg, n_points=args.n_points)
                res["seconds"] = time.perf_counter() - t0
                results.setdefault(f"{method}/{material}", {})[seed] = res
                o = res["overall"]
                print(f"{METHOD_NAMES[method]:>13} {material:>4} seed {seed}: precision "
                      f"{100 * o['precision']:.2f} %  recall {100 * o['recall']:.2f} %  "
                      f"labels {res['n_labels']}  {res['seconds']:.0f} s", flush=True)

    print(f"\nweighted precision / recall (%), mean over seeds {args.seeds}, "
          f"{100 * args.label_fraction:.1f} % labels")
    print(f"{'method':>13} | {'Fe P':>6} {'Fe R':>6} | {'FeO P':>6} {'FeO R':>6}")
    for method in args.methods:
        row = []
        for material in ("Fe", "FeO"):
            runs = results[f"{method}/{material}"].values()
            row += [np.mean([r["overall"][k] for r in runs]) * 100 for k in ("precision", "recall")]
        print(f"{METHOD_NAMES[method]:>13} | {row[0]:6.2f} {row[1]:6.2f} | {row[2]:6.2f} "
              f"{row[3]:6.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)


if __name__ == "__main__":
    main()
