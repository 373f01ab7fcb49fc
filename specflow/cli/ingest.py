"""``specflow ingest-demo``: simulated compression runs through a RunEngine into Tiled."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from specflow.cli.options import ApiKeyOpt, SeedOpt, TiledServerOpt
from specflow.cli.tiled import connect
from specflow.ingest.compressions import record_compressions


def ingest_demo(
    tiled_uri: TiledServerOpt,
    api_key: ApiKeyOpt = None,
    runs: Annotated[int, typer.Option("--runs", min=1, help="Simulated experiments")] = 3,
    curves: Annotated[int, typer.Option("--curves", min=2, help="Curves per run")] = 300,
    material: Annotated[str, typer.Option("--material", help="Fe or FeO")] = "Fe",
    seed: SeedOpt = 0,
) -> list[str]:
    """Run simulated diamond-anvil-cell compressions and write them to Tiled; print run uids.

    Each run ramps 0→max pressure over ~2/3 of the curves and decompresses over the rest,
    so the data contain the transition and its hysteresis.
    """
    console = Console()
    client = connect(tiled_uri, api_key)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(f"{material} runs", total=runs * curves)
        uids = record_compressions(client, runs, curves, material, seed,
                                   on_event=lambda: progress.advance(task))
    for uid in uids:
        console.print(uid)
    return uids
