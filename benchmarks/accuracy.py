"""Accuracy benchmark: SpecRR, SpecMoco, SpecRRMoco, SpecSelfTime and a raw-data baseline on the
simulator's paper-shaped Fe (D1 D2 D3 D5 D6) and FeO (D4 D7 D8 D9) sets with ≤ 3 % labels.

Each material is pretrained once per method on all its curves (labels hidden); the frozen
features are then probed with ``--label-fraction`` of the labels, picked by each
``--strategies`` entry (``spread``: through each file, the paper's protocol; ``suggest``: a few
spread, the rest where the probe is least sure), and scored (weighted precision/recall) on the
remaining curves; ``all`` is the probe's accuracy on every labelled curve.

    python benchmarks/accuracy.py [--epochs 20] [--seeds 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from specflow.data.simulate import PAPER_PRESETS, paper_datasets
from specflow.learn.evaluate import (
    LABEL_STRATEGIES,
    METHOD_NAMES,
    default_config,
    embed_datasets,
    score_probe,
)

METHODS = ["rr", "moco", "rrmoco", "selftime", "raw"]
MATERIALS = ("Fe", "FeO")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--strategies", nargs="+", default=list(LABEL_STRATEGIES))
    ap.add_argument("--epochs", type=int, default=None, help="default: preset for the device")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--label-fraction", type=float, default=0.03)
    ap.add_argument("--n-points", type=int, default=None, help="regrid curves (default: keep)")
    ap.add_argument("--batch-size", type=int, default=None, help="default: preset")
    ap.add_argument("--augmentation", default=None, help="default: preset's (quick: xrd)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    results: dict[str, dict] = {}
    for seed in args.seeds:
        data = paper_datasets(seed=seed)
        for material in MATERIALS:
            sets = {k: v for k, v in data.items() if PAPER_PRESETS[k]["material"] == material}
            for method in args.methods:
                cfg = None
                if method != "raw":
                    cfg = default_config(method, args.epochs, seed, args.device)
                    cfg.batch_size = args.batch_size or cfg.batch_size
                    cfg.augmentation = args.augmentation or cfg.augmentation
                    if seed == args.seeds[0] and material == MATERIALS[0]:
                        print(f"{METHOD_NAMES[method]}: {cfg.epochs} epochs, batch "
                              f"{cfg.batch_size}, K {cfg.n_views}, augmentation "
                              f"{cfg.augmentation}, c {cfg.coef}", flush=True)
                t0 = time.perf_counter()
                curves, h = embed_datasets(sets, cfg, args.n_points)
                seconds = time.perf_counter() - t0
                for strategy in args.strategies:
                    res = score_probe(curves, h, list(sets), args.label_fraction, seed, strategy)
                    res.update(method=METHOD_NAMES[method], pretrain_seconds=seconds)
                    results.setdefault(f"{method}/{strategy}/{material}", {})[seed] = res
                    o, a = res["overall"], res["all_curves"]
                    print(f"{METHOD_NAMES[method]:>13} {strategy:>7} {material:>4} seed {seed}: "
                          f"precision {100 * o['precision']:.2f} %  recall "
                          f"{100 * o['recall']:.2f} %  all {100 * a['accuracy']:.2f} %  "
                          f"labels {res['n_labels']}  {seconds:.0f} s", flush=True)

    print(f"\nweighted precision / recall on held-out curves and accuracy on all labelled "
          f"curves (%), mean over seeds {args.seeds}, {100 * args.label_fraction:.1f} % labels")
    print(f"{'method':>13} {'labels':>7} | {'Fe P':>6} {'Fe R':>6} {'Fe all':>6} | "
          f"{'FeO P':>6} {'FeO R':>6} {'FeO all':>7}")
    for method in args.methods:
        for strategy in args.strategies:
            row = []
            for material in MATERIALS:
                runs = results[f"{method}/{strategy}/{material}"].values()
                row += [np.mean([r["overall"][k] for r in runs]) * 100
                        for k in ("precision", "recall")]
                row.append(np.mean([r["all_curves"]["accuracy"] for r in runs]) * 100)
            print(f"{METHOD_NAMES[method]:>13} {strategy:>7} | {row[0]:6.2f} {row[1]:6.2f} "
                  f"{row[2]:6.2f} | {row[3]:6.2f} {row[4]:6.2f} {row[5]:7.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)


if __name__ == "__main__":
    main()
