"""Time simulating and augmenting 10,000 curves of 4000 points; prints a table.

Run: python benchmarks/data.py [--curves 10000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from specflow.data.augment import make_augmentation
from specflow.simulator.simulate import XRDSimulator


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--curves", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=512, help="augmentation batch size")
    args = parser.parse_args()
    n = args.curves
    rows = []
    for material in ("Fe", "FeO"):
        sim = XRDSimulator(material, seed=0)
        pressure = np.linspace(0.5, 35.0, n)
        fraction = sim.phase_fraction(pressure)
        seconds = timed(lambda sim=sim, p=pressure, f=fraction: sim.curves(p, f))
        rows.append((f"simulate {material}", n, seconds))
    curves = torch.from_numpy(XRDSimulator("Fe", seed=1).curves(np.linspace(0.5, 30, n)))
    curves = (curves - curves.amin(1, keepdim=True)) / (
        curves.amax(1, keepdim=True) - curves.amin(1, keepdim=True))
    g = torch.Generator().manual_seed(0)
    for name in ("release", "G0", "G1", "G2", "physics"):
        aug = make_augmentation(name)

        def run(aug=aug):
            for s in range(0, n, args.batch):
                aug(curves[s : s + args.batch], g)

        rows.append((f"augment {name}", n, timed(run, repeat=2)))
    table = Table(title=f"specflow data benchmark ({torch.get_num_threads()} torch threads)")
    for col in ("step", "curves", "seconds", "curves/s", "µs/curve"):
        table.add_column(col, justify="right" if col != "step" else "left")
    for step, count, seconds in rows:
        table.add_row(step, f"{count:,}", f"{seconds:.2f}", f"{count / seconds:,.0f}",
                      f"{1e6 * seconds / count:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
