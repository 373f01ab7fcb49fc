"""Annotation speed: one 460-curve run end to end, and bulk re-annotation of a catalog.

Run: ``python benchmarks/annotate.py [--runs 50] [--run-curves 60]`` (from the repo root).
Uses a real Tiled server and a throwaway MLflow SQLite store with two registered versions
of a small phase model (random frozen encoder + trained probe: same cost as a trained one).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from specflow.ingest import (  # noqa: E402
    DiamondAnvilCell,
    IntegratedDetector,
    compression_ramp,
    run_to_dataset,
    tiled_server,
)

NAME = "specflow-phase-bench"


def register_models(workdir: Path) -> list[str]:
    """Three versions of a small phase model in an embedded store; v1 holds champion."""
    import mlflow
    import torch
    from mlflow.tracking import MlflowClient

    from specflow.data.simulate import simulate_run
    from specflow.learn.data import to_curves
    from specflow.learn.pretrain import encode
    from specflow.learn.probe import train_probe
    from specflow.models.convsc import ConvSCEncoder
    from specflow.registry.phase_model import build_bundle
    from specflow.registry.promotion import log_phase_model, register
    from specflow.registry.tracking import configure_tracking, ensure_experiment

    configure_tracking(workdir)
    ensure_experiment("annotate-bench")
    runs = [simulate_run("Fe", 120, seed=1), simulate_run("FeO", 120, seed=2)]
    torch.manual_seed(0)
    encoder = ConvSCEncoder(init="pytorch").eval()
    grid = np.linspace(5.0, 25.0, 1000)
    curves = to_curves(runs, grid=grid)
    h = encode(encoder, curves.x, device="cpu")
    bundle = build_bundle(encoder, train_probe(h, curves.label), grid, h)
    versions = []
    for _ in range(3):
        with mlflow.start_run():
            info = log_phase_model(bundle)
        versions.append(str(register(info.model_uri, NAME).version))
    MlflowClient().set_registered_model_alias(NAME, "champion", versions[0])
    return versions


def ingest(client, n_runs: int, n_curves: int, seed: int = 0) -> list[str]:
    from bluesky import RunEngine
    from bluesky_tiled_plugins import TiledWriter

    engine = RunEngine({}, call_returns_result=False)
    engine.subscribe(TiledWriter(client, batch_size=500))
    uids = []
    for i in range(n_runs):
        cell = DiamondAnvilCell(seed=seed + i)
        det = IntegratedDetector(cell=cell, material="Fe" if i % 2 else "FeO", seed=seed + i)
        uids += engine(compression_ramp(cell, det, 0.0, 32.0, n_curves))
    return uids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50, help="runs in the bulk catalog")
    parser.add_argument("--run-curves", type=int, default=60, help="curves per bulk run")
    parser.add_argument("--workers", type=int, default=4, help="parallel runs (last row)")
    parser.add_argument("--repeat", type=int, default=3, help="repeats of the single run")
    args = parser.parse_args()

    from specflow.annotate import annotate, annotate_run, load_model

    console = Console()
    with tempfile.TemporaryDirectory() as tmp, tiled_server(Path(tmp) / "tiled") as info:
        versions = register_models(Path(tmp) / "work")
        client = info.client()
        v1 = load_model(f"models:/{NAME}@champion")
        big = ingest(client, args.repeat, 460, seed=100)
        stages = {"read (run_to_dataset)": [], "predict": [], "end to end": []}
        for uid in big:
            t0 = time.perf_counter()
            ds = run_to_dataset(client[uid])
            t1 = time.perf_counter()
            v1.predict(ds["intensity"].values, ds["two_theta"].values)
            t2 = time.perf_counter()
            result = annotate_run(client, uid, v1)
            t3 = time.perf_counter()
            assert result.status == "written", result
            stages["read (run_to_dataset)"].append(t1 - t0)
            stages["predict"].append(t2 - t1)
            stages["end to end"].append(t3 - t2)
        console.print(f"ingesting {args.runs} runs x {args.run_curves} curves ...")
        uids = ingest(client, args.runs, args.run_curves)
        t0 = time.perf_counter()
        first = annotate(client, uids, model=v1)
        t_first = time.perf_counter() - t0
        v2 = load_model(f"models:/{NAME}/{versions[1]}")
        t0 = time.perf_counter()
        again = annotate(client, uids, model=v2)
        t_again = time.perf_counter() - t0
        v3 = load_model(f"models:/{NAME}/{versions[2]}")
        t0 = time.perf_counter()
        parallel = annotate(client, uids, model=v3, workers=args.workers)
        t_par = time.perf_counter() - t0
        assert {r.status for r in first + again + parallel} == {"written"}
        n = sum(r.n_curves for r in again)

    table = Table("measurement", "value", title="specflow annotate (2 CPU cores)")
    for stage, times in stages.items():
        table.add_row(f"460-curve run: {stage}",
                      f"{statistics.median(times):.2f} s (median of {len(times)})")
    table.add_row(f"bulk annotate {args.runs} runs ({n} curves), model v1",
                  f"{t_first:.1f} s, {n / t_first:.0f} curves/s")
    table.add_row(f"bulk re-annotate {args.runs} runs, model v2 (new nodes)",
                  f"{t_again:.1f} s, {n / t_again:.0f} curves/s, "
                  f"{t_again / args.runs:.2f} s/run")
    table.add_row(f"bulk re-annotate {args.runs} runs, model v3, workers={args.workers}",
                  f"{t_par:.1f} s, {n / t_par:.0f} curves/s")
    console.print(table)


if __name__ == "__main__":
    main()
