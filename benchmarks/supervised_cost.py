"""What each supervised model costs: parameters, training time, peak memory, inference speed.

Every model is trained on the same labels (``--fraction`` of a simulated Fe family's training
runs, as in ``benchmarks/label_efficiency.py``) with its default
:class:`~specflow.learn.supervised.SupervisedConfig`, each in a fresh process so that the peak
resident memory it adds (``ru_maxrss`` after training minus before) is its own. Times are
ratios to the supervised ConvSC measured in the same run; the original comparison's P100
figures (Transformer 0.449 s, ConvSCT 1.269 s: ratio 0.35) are quoted as ratios only.

    python benchmarks/supervised_cost.py                # ≈ 3 min on 2 cores
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def _child(path: str, arch: str, steps: int, threads: int, queue: mp.Queue) -> None:
    import torch

    from specflow.learn.data import Curves
    from specflow.learn.supervised import (
        SupervisedConfig,
        network_outputs,
        run_sequences,
        train_network,
    )
    from specflow.models.convsc import count_parameters

    torch.set_num_threads(threads)
    z = np.load(path)
    curves = Curves(z["x"], z["grid"], z["run"], z["order"], None, z["label"])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    trained = train_network(curves, z["labelled"], SupervisedConfig(arch=arch, steps=steps,
                                                                    device="cpu"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    seqs = run_sequences(curves)
    network_outputs(trained.network, curves.x[:64], device="cpu")  # warm-up
    t0 = time.perf_counter()
    network_outputs(trained.network, curves.x, seqs, device="cpu")
    infer = time.perf_counter() - t0
    queue.put({"arch": arch, "params": count_parameters(trained.network),
               "seconds": trained.seconds, "step_ms": 1000 * trained.seconds / steps,
               "peak_mb": peak / 1024 if sys.platform != "darwin" else peak / 2**20,
               "curves_per_s": len(curves.x) / infer, "context": trained.network.context})


def main() -> None:
    from specflow.learn.names import METHOD_NAMES, SUPERVISED_METHODS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(SUPERVISED_METHODS))
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message="No Pauling electronegativity")

    from accuracy import family  # benchmarks/accuracy.py, beside this file

    from specflow.data.preprocess import Preprocessing
    from specflow.learn.data import to_curves
    from specflow.learn.evaluate import pick_probe_labels

    data, _, _ = family("Fe", 0, 4, 1, (150, 300))
    curves = to_curves(list(data.values()), preprocessing=Preprocessing())
    labelled = pick_probe_labels(curves, args.fraction, 0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "curves.npz")
        np.savez(path, x=curves.x, grid=curves.grid, run=curves.run, order=curves.order,
                 label=curves.label, labelled=labelled)
        ctx = mp.get_context("spawn")
        for arch in args.models:
            queue = ctx.Queue()
            proc = ctx.Process(target=_child, args=(path, arch, args.steps, args.threads,
                                                    queue))
            proc.start()
            rows.append(queue.get())
            proc.join()
    ref = next((r for r in rows if r["arch"] == "convsc"), rows[0])
    print(f"\n{len(curves.x)} curves of {curves.x.shape[1]} points, {len(labelled)} labels, "
          f"{args.steps} steps, {args.threads} threads (CPU); ratios to "
          f"{METHOD_NAMES[ref['arch']]}")
    print(f"{'model':<28}{'context':>8}{'params':>11}{'train s':>9}{'× ConvSC':>9}"
          f"{'ms/step':>9}{'peak MB':>9}{'curves/s':>10}")
    for r in rows:
        print(f"{METHOD_NAMES[r['arch']]:<28}{r['context']:>8}{r['params']:>11,}"
              f"{r['seconds']:>9.1f}{r['seconds'] / ref['seconds']:>9.2f}"
              f"{r['step_ms']:>9.0f}{r['peak_mb']:>9.0f}{r['curves_per_s']:>10.0f}")
    by = {r["arch"]: r for r in rows}
    if {"transformer", "convsct"} <= set(by):
        print(f"\nTransformer / ConvSCT training time: "
              f"{by['transformer']['seconds'] / by['convsct']['seconds']:.2f} here, "
              f"{0.449 / 1.269:.2f} in the original comparison (P100)")


if __name__ == "__main__":
    main()
