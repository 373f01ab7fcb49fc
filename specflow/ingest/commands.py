"""``specflow ingest-demo``: simulated compression runs through a RunEngine into Tiled."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from specflow.ingest.catalog import require_reachable

#: Events buffered by TiledWriter before a write. 50 keeps the RunEngine thread from
#: stalling (one HTTP round trip per 50 curves, ~2 writes/s at beamline rates) while the
#: data in Tiled lags the experiment by at most 50 curves; batch_size=1 costs ~115 ms/event.
TILED_BATCH_SIZE = 50


def ingest_demo(
    tiled_uri: Annotated[str, typer.Option(
        "--tiled-uri", envvar="TILED_URI", help="Tiled server, e.g. http://127.0.0.1:8000")],
    api_key: Annotated[str | None, typer.Option(
        "--api-key", envvar="TILED_API_KEY", help="Tiled API key")] = None,
    runs: Annotated[int, typer.Option("--runs", min=1, help="Simulated experiments")] = 3,
    curves: Annotated[int, typer.Option("--curves", min=2, help="Curves per run")] = 300,
    material: Annotated[str, typer.Option("--material", help="Fe or FeO")] = "Fe",
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the first run")] = 0,
) -> list[str]:
    """Run simulated diamond-anvil-cell compressions and write them to Tiled; print run uids.

    Each run ramps 0→max pressure over ~2/3 of the curves and decompresses over the rest,
    so the data contain the transition and its hysteresis.
    """
    from bluesky import RunEngine
    from bluesky_tiled_plugins import TiledWriter
    from tiled.client import from_uri

    from specflow.data.simulate import MATERIALS

    from .devices import DiamondAnvilCell, IntegratedDetector
    from .plans import compression_ramp

    console = Console()
    require_reachable(tiled_uri)
    client = from_uri(tiled_uri, api_key=api_key)
    engine = RunEngine({}, call_returns_result=False)
    engine.subscribe(TiledWriter(client, batch_size=TILED_BATCH_SIZE))
    n_up = max(2, round(curves * 2 / 3))
    top = MATERIALS[material].end + 14.0  # well past the transition
    uids: list[str] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(f"{material} runs", total=runs * curves)
        engine.subscribe(lambda name, doc: progress.advance(task), "event")
        for i in range(runs):
            cell = DiamondAnvilCell(name="pressure", seed=seed + i)
            detector = IntegratedDetector(name="xrd", cell=cell, material=material,
                                          seed=seed + i)
            uids.extend(engine(compression_ramp(
                cell, detector, 0.0, top, n_up, decompress_to=0.0,
                decompress_num=max(1, curves - n_up), md={"demo_index": i, "seed": seed + i},
            )))
    for uid in uids:
        console.print(uid)
    return uids
