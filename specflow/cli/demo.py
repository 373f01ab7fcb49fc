"""``specflow demo``: the embedded end-to-end demo (:func:`specflow.demo.run_demo`)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from specflow.cli.lazy import load
from specflow.cli.options import DeviceOpt, Method, SeedOpt, fraction
from specflow.learn.names import DEFAULT_METHOD

demo_mod = load("specflow.demo")


def demo(
    workdir: Path = typer.Option(Path("work"), help="Where Tiled, MLflow and figures live."),
    runs: int = typer.Option(2, min=1, help="Simulated runs per material (Fe, FeO)."),
    curves: int = typer.Option(300, min=30, help="Curves per run."),
    method: Method = typer.Option(Method(DEFAULT_METHOD), help="Features under the probe: "
                                  "untrained (default: best in docs/benchmarks.md), raw, or "
                                  "an SSL method (rrmoco, rr, moco, selftime: adds MLflow-"
                                  "tracked pretraining)."),
    epochs: int = typer.Option(10, min=1, help="Pretraining epochs (SSL methods)."),
    label_fraction: float = typer.Option(0.03, callback=fraction,
                                         help="Fraction of curves with labels (0 < f ≤ 1)."),
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
    area_frames: int = typer.Option(40, min=0, help="Frames of the area-detector run "
                                    "(step 5: HDF5 → Tiled → pyFAI → live labels); 0 skips it."),
    keep: bool = typer.Option(False, help="Keep an existing demo work dir instead of "
                              "starting fresh (fresh removes only the demo's own tiled/, "
                              "mlflow/ and figures/, and never touches a directory the demo "
                              "did not create)."),
) -> None:
    """End-to-end demo: embedded Tiled + MLflow, ingest, train, promote, annotate, query."""
    try:
        demo_mod.run_demo(demo_mod.DemoConfig(
            workdir=workdir, runs_per_material=runs, curves=curves, method=method.value,
            epochs=epochs, label_fraction=label_fraction, seed=seed, device=device,
            fresh=not keep, area_frames=area_frames), Console())
    except demo_mod.WorkdirNotOurs as exc:
        Console(stderr=True).print(f"[red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(2) from exc
