"""Ingest throughput: the live SpectraCollector alone, and RunEngine → TiledWriter end to end.

Run: ``python benchmarks/ingest.py [--curves 20000] [--run-curves 300]`` (from the repo root).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from event_model import compose_run
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from specflow.ingest import (  # noqa: E402
    TILED_BATCH_SIZE,
    DiamondAnvilCell,
    IntegratedDetector,
    SpectraCollector,
    compression_ramp,
    run_to_dataset,
    tiled_server,
)

N_POINTS = 4000


def synthetic_docs(n: int, page: int | None, as_lists: bool = False) -> list[tuple[str, dict]]:
    """One run of ``n`` 4000-point float32 curves as events (``page=None``) or event pages."""
    rng = np.random.default_rng(0)
    pool = rng.random((min(n, 512), N_POINTS), dtype=np.float32) * 1000
    rows = [pool[i % len(pool)] for i in range(n)]
    if as_lists:
        rows = [r.tolist() for r in rows]
    run = compose_run(metadata={"sample": "bench"})
    desc = run.compose_descriptor(
        name="primary", validate=False,
        data_keys={"xrd_spectrum": {"dtype": "array", "shape": [N_POINTS], "source": "b"},
                   "pressure": {"dtype": "number", "shape": [], "source": "b"}},
        configuration={"xrd": {"data": {"xrd_two_theta": np.linspace(5, 25, N_POINTS)}}})
    docs = [("start", run.start_doc), ("descriptor", desc.descriptor_doc)]
    now = time.time()
    if page is None:
        for i, row in enumerate(rows):
            docs.append(("event", desc.compose_event(
                data={"xrd_spectrum": row, "pressure": 0.01 * i},
                timestamps={"xrd_spectrum": now, "pressure": now},
                seq_num=i + 1, time=now + i, validate=False)))
    else:
        for s in range(0, n, page):
            k = min(page, n - s)
            docs.append(("event_page", desc.compose_event_page(
                data={"xrd_spectrum": rows[s:s + k], "pressure": [0.01 * i for i in range(k)]},
                timestamps={"xrd_spectrum": [now] * k, "pressure": [now] * k},
                seq_num=list(range(s + 1, s + k + 1)), time=[now] * k, validate=False)))
    docs.append(("stop", run.compose_stop()))
    return docs


def time_collector(docs: list[tuple[str, dict]], repeats: int = 3) -> float:
    """Median seconds to feed ``docs`` to a fresh collector (buffers grow from 256 rows)."""
    times = []
    for _ in range(repeats):
        collector = SpectraCollector()
        t0 = time.perf_counter()
        for name, doc in docs:
            collector(name, doc)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_run_engine(curves: int, callbacks: Callable[[], list] | None,
                    repeats: int = 3) -> tuple[float, str]:
    """Median seconds for a simulated compression run of ``curves`` curves, and its uid."""
    from bluesky import RunEngine

    times, uid = [], ""
    for _ in range(repeats):
        engine = RunEngine({})
        for callback in callbacks() if callbacks else ():
            engine.subscribe(callback)
        cell = DiamondAnvilCell(seed=0)
        det = IntegratedDetector(cell=cell, material="Fe", seed=0)
        t0 = time.perf_counter()
        (uid,) = engine(compression_ramp(cell, det, 0.0, 30.0, curves))
        times.append(time.perf_counter() - t0)
    return statistics.median(times), uid


def time_detector(curves: int) -> float:
    """Seconds for ``curves`` detector triggers alone (the simulator's cost)."""
    cell = DiamondAnvilCell(seed=0)
    det = IntegratedDetector(cell=cell, material="Fe", seed=0)
    t0 = time.perf_counter()
    for p in np.linspace(0, 30, curves):
        cell.set(p).wait()
        det.trigger()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--curves", type=int, default=20000, help="curves for collector runs")
    parser.add_argument("--run-curves", type=int, default=300, help="curves per RunEngine run")
    args = parser.parse_args()
    n, m = args.curves, args.run_curves
    table = Table(title=f"specflow ingest throughput ({N_POINTS}-point float32 curves)")
    for col in ("path", "curves", "seconds", "curves/s"):
        table.add_column(col, justify="left" if col == "path" else "right")

    def row(label: str, count: int, seconds: float) -> None:
        table.add_row(label, str(count), f"{seconds:.3f}", f"{count / seconds:,.0f}")

    for label, page in (("collector: event_page x1000", 1000), ("collector: event_page x100", 100),
                        ("collector: event_page x10", 10), ("collector: single events", None)):
        row(label, n, time_collector(synthetic_docs(n, page)))
    k = min(n, 2000)
    row("collector: event_page x100, JSON lists", k, time_collector(synthetic_docs(k, 100, True)))

    from bluesky_tiled_plugins import TiledWriter

    with tempfile.TemporaryDirectory() as tmp, tiled_server(tmp) as server:
        client = server.client()
        time_run_engine(10, None, repeats=1)  # warm up imports and the simulator
        row("simulated detector alone (move + trigger)", m, time_detector(m))
        row("RunEngine + simulated detector (no callbacks)", m, time_run_engine(m, None)[0])
        row("RunEngine + SpectraCollector", m,
            time_run_engine(m, lambda: [SpectraCollector()])[0])
        for batch in (TILED_BATCH_SIZE, 10000):
            row(f"RunEngine + TiledWriter(batch_size={batch})", m,
                time_run_engine(m, lambda b=batch: [TiledWriter(client, batch_size=b)])[0])
        seconds, uid = time_run_engine(
            m, lambda: [TiledWriter(client, batch_size=TILED_BATCH_SIZE), SpectraCollector()])
        row(f"RunEngine + TiledWriter({TILED_BATCH_SIZE}) + SpectraCollector", m, seconds)
        t0 = time.perf_counter()
        run_to_dataset(client[uid])
        row("run_to_dataset (read back from Tiled)", m, time.perf_counter() - t0)
    Console(width=110).print(table)


if __name__ == "__main__":
    main()
