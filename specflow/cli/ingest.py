"""``specflow ingest``: runs from files into Tiled; ``specflow ingest-demo``: simulated
compression runs through a RunEngine into Tiled, as integrated curves or as area-detector
frames in HDF5."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from specflow.cli.lazy import load
from specflow.cli.options import (
    ApiKeyOpt,
    DataOpt,
    EnergyOpt,
    RadialUnitOpt,
    SeedOpt,
    TiledServerOpt,
    WavelengthOpt,
    WorkdirOpt,
    read_options,
)
from specflow.cli.tiled import connect

live = load("specflow.annotate.live")
model_loader = load("specflow.annotate.model")
catalog = load("specflow.ingest.catalog")
area = load("specflow.simulator.area")
simulated_runs = load("specflow.simulator.runs")
frame_router = load("specflow.ingest.frames")
tracking = load("specflow.registry.tracking")
sources = load("specflow.data.sources")
file_runs = load("specflow.ingest.files")


def ingest_files(
    data: DataOpt,
    tiled_uri: TiledServerOpt,
    api_key: ApiKeyOpt = None,
    metadata: Annotated[list[str] | None, typer.Option(
        "--metadata", help="KEY=VALUE for every run's start document, e.g. proposal=12345 "
        "(repeatable).")] = None,
    energy: EnergyOpt = None,
    wavelength: WavelengthOpt = None,
    radial_unit: RadialUnitOpt = None,
) -> list[str]:
    """Write runs read from files into Tiled as Bluesky runs; print a uid per run.

    The runs are read as every command reads them (files, folders, globs; curves in Q placed
    on 2θ with the beam), then stored through TiledWriter: a primary stream with an event per
    curve, the 2θ grid and beam energy in the detector configuration. 'specflow annotate',
    'specflow phases' and any Tiled client then see them like live runs."""
    if not data:
        raise typer.BadParameter("give the runs to store", param_hint="--data")
    runs = sources.read_runs(data, **read_options(energy, wavelength, radial_unit))
    client = connect(tiled_uri, api_key)
    try:
        metadata_md = catalog.parse_key_values(metadata)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--metadata") from None
    stored = file_runs.write_runs(client, runs, metadata_md)
    table = Table("run", "curves", "uid", "stored", title=f"in {tiled_uri}")
    for item in stored:
        table.add_row(item.name, str(runs[item.name].sizes["curve"]), item.uid,
                      "now" if item.new else "before (not again)")
    Console().print(table)
    uids = [item.uid for item in stored]
    return uids


class DetectorKind(StrEnum):
    curve = "curve"
    area = "area"


def ingest_demo(
    tiled_uri: TiledServerOpt,
    api_key: ApiKeyOpt = None,
    runs: Annotated[int, typer.Option("--runs", min=1, help="Simulated experiments")] = 3,
    curves: Annotated[int, typer.Option("--curves", min=2, help="Curves per run")] = 300,
    material: Annotated[str, typer.Option("--material", help="Fe or FeO")] = "Fe",
    detector: Annotated[DetectorKind, typer.Option(
        "--detector", help="curve: integrated curves event by event; area: 2-D frames "
        "written to HDF5 (--frames), registered in Tiled as external data and integrated "
        "with pyFAI into an 'integrated' stream")] = DetectorKind.curve,
    frames: Annotated[Path | None, typer.Option(
        "--frames", help="With --detector area: folder for the HDF5 frames; the Tiled "
        "server must be allowed to read it (readable_storage)")] = None,
    pixels: Annotated[int, typer.Option(
        "--pixels", min=64, help="With --detector area: detector side in pixels (1024: "
        "1 Mpixel, ~0.6 MB per compressed frame)")] = 1024,
    model: Annotated[str | None, typer.Option(
        "--model", help="With --detector area: label the integrated curves live with this "
        "registered model, e.g. models:/specflow-phase@champion")] = None,
    seed: SeedOpt = 0,
    workdir: WorkdirOpt = Path("work"),
) -> list[str]:
    """Run simulated diamond-anvil-cell compressions and write them to Tiled; print run uids.

    Each run ramps 0→max pressure over ~2/3 of the curves and decompresses over the rest,
    so the data contain the transition and its hysteresis.
    """
    console = Console()
    if detector is DetectorKind.curve and (frames or model):
        raise typer.BadParameter("--frames and --model go with --detector area")
    if detector is DetectorKind.area and frames is None:
        raise typer.BadParameter("--detector area needs --frames DIR (a folder the Tiled "
                                 "server may read)", param_hint="--frames")
    client = connect(tiled_uri, api_key)
    catalog.require_table_storage(client)  # refuse before the progress bar, not after it
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(f"{material} runs", total=runs * curves)
        advance = lambda: progress.advance(task)  # noqa: E731
        if detector is DetectorKind.curve:
            uids = simulated_runs.record_compressions(client, runs, curves, material, seed,
                                                    on_event=advance)
        else:
            uids = _record_area(client, frames, runs, curves, material, seed, pixels, model,
                                workdir, advance, console)
    for uid in uids:
        console.print(uid)
    return uids


def _record_area(client, frames, runs, curves, material, seed, pixels, model, workdir,
                 advance, console) -> list[str]:
    callbacks = []
    monitor = None
    if model:
        tracking.configure_tracking(workdir, must_exist=True)
        monitor = live.LivePhaseMonitor(model_loader.load_model(model),
                                        stream=frame_router.INTEGRATED_STREAM)
        callbacks.append(monitor)
    uids, router = simulated_runs.record_frame_compressions(
        client, frames, runs, curves, material, seed, area.DetectorGeometry.square(pixels),
        callbacks, on_event=advance)
    if router.latency:
        median = 1e3 * float(np.median(router.latency))
        console.print(f"frame → curve, stored and labelled: median {median:.0f} ms")
    if monitor is not None:
        for uid in uids:
            labels = monitor.labels(uid)
            console.print(f"{uid}: {len(labels)} curves labelled live, phases "
                          f"{sorted(set(labels.tolist()))}")
    return uids

