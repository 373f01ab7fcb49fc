"""Simulated compression runs through a real RunEngine into Tiled (bluesky-tiled-plugins'
TiledWriter, fed in pages by :func:`~specflow.ingest.paging.paged_writer`): the embedded
data source of the demo and the ingest tests — curves event by event
(:func:`record_compressions`); area-detector frames:
:func:`record_frame_compressions` (written to HDF5, registered in Tiled as external data, and
integrated with pyFAI into each run's ``integrated`` stream)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bluesky import RunEngine

from specflow.ingest.catalog import require_table_storage
from specflow.ingest.frames import IntegratingRouter
from specflow.ingest.paging import paged_writer
from specflow.ingest.plans import compression_ramp
from specflow.simulator.area import DetectorGeometry
from specflow.simulator.detector import AreaDetector
from specflow.simulator.devices import DiamondAnvilCell, IntegratedDetector
from specflow.simulator.simulate import MATERIALS

#: Events buffered before a write to Tiled (TiledWriter's batch, handed over in pages of
#: as many by :func:`~specflow.ingest.paging.paged_writer`). 50 keeps the RunEngine thread
#: from stalling (one HTTP round trip per 50 curves, ~2 writes/s at beamline rates) while the
#: data in Tiled lags the experiment by at most 50 curves; batch_size=1 costs ~115 ms/event.
TILED_BATCH_SIZE = 50


def record_compressions(
    client: Any,
    runs: int = 3,
    curves: int = 300,
    material: str = "Fe",
    seed: int = 0,
    on_event: Callable[[], None] | None = None,
) -> list[str]:
    """Run ``runs`` simulated diamond-anvil-cell compressions and write them to Tiled.

    Each run ramps 0 → 14 GPa past the end of the transition over ~2/3 of the ``curves``
    and decompresses over the rest, so the data contain the transition and its hysteresis.

    Parameters
    ----------
    client : tiled.client.container.Container
        A writable Tiled container (``tiled.client.from_uri(uri, api_key=...)``).
    runs, curves : int
        Experiments, and curves per experiment.
    material : str
        ``Fe`` or ``FeO`` (:data:`specflow.simulator.simulate.MATERIALS`).
    seed : int
        Random seed of the first run (run ``i`` uses ``seed + i``).
    on_event : callable, optional
        Called once per curve recorded (a progress bar's ``advance``).

    Returns
    -------
    list of str
        The run uids, in order.
    """
    require_table_storage(client)
    engine = RunEngine({}, call_returns_result=False)
    engine.subscribe(paged_writer(client, TILED_BATCH_SIZE))
    return run_compressions(
        engine, runs, curves, material, seed,
        lambda cell, i: IntegratedDetector(name="xrd", cell=cell, material=material,
                                           seed=seed + i), on_event=on_event)


def run_compressions(
    engine: RunEngine,
    runs: int,
    curves: int,
    material: str,
    seed: int,
    detector: Callable[[DiamondAnvilCell, int], Any],
    md: dict[str, Any] | None = None,
    on_event: Callable[[], None] | None = None,
) -> list[str]:
    """Run ``runs`` compression ramps on ``engine``: run ``i`` uses a cell seeded
    ``seed + i`` and ``detector(cell, i)``; ``md`` goes into every start document. Each
    ramp goes 0 → 14 GPa past the transition over ~2/3 of ``curves`` and back to 0."""
    if material not in MATERIALS:
        raise ValueError(f"unknown material {material!r}: choose from {', '.join(MATERIALS)}")
    if on_event is not None:
        engine.subscribe(lambda name, doc: on_event(), "event")
    n_up = max(2, round(curves * 2 / 3))
    top = MATERIALS[material].end + 14.0  # well past the transition
    uids: list[str] = []
    for i in range(runs):
        cell = DiamondAnvilCell(name="pressure", seed=seed + i)
        uids.extend(engine(compression_ramp(
            cell, detector(cell, i), 0.0, top, n_up, decompress_to=0.0,
            decompress_num=max(1, curves - n_up),
            md={"demo_index": i, "seed": seed + i, **(md or {})},
        )))
    return uids


def record_frame_compressions(
    client: Any,
    frames: str | Path,
    runs: int = 1,
    curves: int = 60,
    material: str = "Fe",
    seed: int = 0,
    geometry: DetectorGeometry | None = None,
    callbacks: Sequence[Callable[[str, dict], Any]] = (),
    on_event: Callable[[], None] | None = None,
) -> tuple[list[str], IntegratingRouter]:
    """Simulated compressions recorded by an area detector: frames → HDF5 (in ``frames``,
    a folder the Tiled server may read) → Tiled as external data, and each frame integrated
    with pyFAI into the run's ``integrated`` stream (:class:`IntegratingRouter`).

    ``callbacks`` get every document, the integrated stream included (e.g. a live labeller
    with ``stream="integrated"``). Returns the run uids and the router (its ``latency``
    holds the frame-to-curve delay of every frame).
    """
    require_table_storage(client)
    engine = RunEngine({}, call_returns_result=False)
    router = IntegratingRouter(paged_writer(client, TILED_BATCH_SIZE), *callbacks)
    engine.subscribe(router)
    uids = run_compressions(
        engine, runs, curves, material, seed,
        lambda cell, i: AreaDetector(name="det", cell=cell, directory=frames,
                                     geometry=geometry, material=material, seed=seed + i),
        md={"detector": "area"}, on_event=on_event)
    return uids, router
