"""specflow command line: simulate, plot, and the commands of the ingest/learn stages."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="specflow: phase labels for streams of X-ray diffraction curves.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


class MaterialName(StrEnum):
    fe = "Fe"
    feo = "FeO"


class Preset(StrEnum):
    paper = "paper"


@app.command()
def simulate(
    out: Path = typer.Option(..., "--out", "-o", help="Output .nc/.csv file, or a directory "
                             "for --preset paper."),
    material: MaterialName = typer.Option(MaterialName.fe, help="Sample material."),
    curves: int = typer.Option(300, min=2, help="Number of curves in the run."),
    seed: int = typer.Option(0, help="Random seed (same seed, same data)."),
    start: float = typer.Option(0.5, help="Start pressure (GPa)."),
    stop: float = typer.Option(None, help="Peak pressure (GPa); default: 14 GPa past the end "
                               "of the transition."),
    decompress_to: float = typer.Option(None, help="Decompress to this pressure (GPa) in the "
                                        "last third of the run."),
    cell: str = typer.Option("dDAC", help="dDAC (smooth ramp) or mDAC (membrane steps)."),
    rate: float = typer.Option(1.0, help="Mean compression rate (GPa/s)."),
    peak_counts: float = typer.Option(3000.0, help="Counts at the strongest ambient peak "
                                      "(signal-to-noise)."),
    preset: Preset = typer.Option(None, help="'paper': write the nine sets D1–D9 into OUT/."),
) -> None:
    """Simulate DAC compression runs (pymatgen XRD + Birch–Murnaghan EOS) with true labels."""
    from specflow.data.io import write_spectra
    from specflow.data.simulate import paper_datasets, simulate_run

    if preset == Preset.paper:
        table = Table("set", "sample", "curves", "before/during/after", "file")
        with console.status("simulating D1–D9"):
            sets = paper_datasets(seed=seed)
        out.mkdir(parents=True, exist_ok=True)
        for name, ds in sets.items():
            path = write_spectra(ds, out / f"{name}.nc")
            counts = [int((ds.label == k).sum()) for k in (0, 1, 2)]
            table.add_row(name, ds.attrs["sample"], str(ds.sizes["curve"]),
                          "/".join(map(str, counts)), str(path))
        console.print(table)
        return
    ds = simulate_run(material.value, curves, seed=seed, start=start, stop=stop,
                      decompress_to=decompress_to, cell=cell, rate=rate, peak_counts=peak_counts)
    path = write_spectra(ds, out)
    counts = [int((ds.label == k).sum()) for k in (0, 1, 2)]
    console.print(f"wrote {path}: {curves} curves of {material.value}, "
                  f"{float(ds.pressure.min()):.1f}–{float(ds.pressure.max()):.1f} GPa, "
                  f"labels before/during/after = {counts[0]}/{counts[1]}/{counts[2]}")


@app.command()
def plot(
    data: Path = typer.Argument(..., exists=True, help="Spectra file (.nc, .csv, .xy)."),
    out: Path = typer.Option(..., "--out", "-o", help="Figure file (.png, .pdf, .svg)."),
    y: str = typer.Option("curve", help="Vertical axis: 'curve' (acquisition order) or "
                          "'pressure'."),
) -> None:
    """Draw the contour map of a run (2θ vs curve or pressure) with its labels beside it."""
    from specflow.data.io import read_spectra
    from specflow.plots import save_contour

    path = save_contour(read_spectra(data), out, y_axis=y)
    console.print(f"wrote {path}")


@app.command()
def demo(
    workdir: Path = typer.Option(Path("work"), help="Where Tiled, MLflow and figures live."),
    runs: int = typer.Option(2, min=1, help="Simulated runs per material (Fe, FeO)."),
    curves: int = typer.Option(300, min=30, help="Curves per run."),
    epochs: int = typer.Option(10, help="Pretraining epochs (quick CPU preset otherwise)."),
    label_fraction: float = typer.Option(0.03, help="Fraction of curves with labels."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    seed: int = typer.Option(0, help="Random seed."),
    keep: bool = typer.Option(False, help="Keep an existing work dir instead of starting "
                              "fresh."),
) -> None:
    """End-to-end demo: embedded Tiled + MLflow, ingest, train, promote, annotate, query."""
    from specflow.demo import DemoConfig, run_demo

    run_demo(DemoConfig(workdir=workdir, runs_per_material=runs, curves=curves, epochs=epochs,
                        label_fraction=label_fraction, seed=seed, device=device,
                        fresh=not keep), console)


def _register_stage_commands() -> None:
    """Add the commands that live with their stage (ingest, learn, registry)."""
    from specflow.annotate import commands as annotate
    from specflow.ingest.commands import ingest_demo
    from specflow.learn.commands import EVALUATE_CONTEXT, evaluate_command
    from specflow.registry import commands as registry

    app.command("ingest-demo")(ingest_demo)
    app.command("evaluate", context_settings=EVALUATE_CONTEXT)(evaluate_command)
    app.command("pretrain")(registry.pretrain_cmd)
    app.command("probe")(registry.probe_cmd)
    app.command("register")(registry.register_cmd)
    app.command("promote")(registry.promote_cmd)
    app.command("pipeline")(registry.pipeline_cmd)
    app.command("annotate")(annotate.annotate_cmd)
    app.command("watch")(annotate.watch_cmd)
    app.command("phases")(annotate.phases_cmd)
    app.command("suggest-labels")(annotate.suggest_cmd)


_register_stage_commands()
