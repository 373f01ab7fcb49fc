"""Reading a run back: specflow's reader against bluesky-tiled-plugins' run API.

One simulated compression (``--curves`` curves of 4000 points) is written through a RunEngine
and TiledWriter into an embedded Tiled server; then, alternately in the same process,
``run_to_dataset(client[uid])`` (the whole canonical Dataset: descriptor, spectra, event
table, from a fresh lookup of the run) and the plugins' ``run["primary"].read(variables=...)``
(the same columns as an xarray Dataset, from the run object already at hand), each
``--repeats`` times. Median and range of the seconds, and their ratio.

    python benchmarks/run_read.py --curves 200 --repeats 7
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
from bluesky import RunEngine
from bluesky_tiled_plugins import TiledWriter

from specflow.ingest import compression_ramp, run_to_dataset
from specflow.servers import tiled_server
from specflow.simulator.devices import DiamondAnvilCell, IntegratedDetector

COLUMNS = ["xrd_spectrum", "pressure", "pressure_setpoint", "seq_num", "xrd_phase_fraction"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--curves", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, tiled_server(tmp) as info:
        client = info.client()
        engine = RunEngine({}, call_returns_result=False)
        engine.subscribe(TiledWriter(client, batch_size=50))
        cell = DiamondAnvilCell(name="pressure", seed=0)
        det = IntegratedDetector(name="xrd", cell=cell, material="Fe", seed=0)
        (uid,) = engine(compression_ramp(cell, det, 0.0, 30.0, args.curves))
        run = client[uid]
        ours, plugins = [], []
        for _ in range(args.repeats + 1):  # the first round warms both up and is dropped
            t0 = time.perf_counter()
            ds = run_to_dataset(client[uid])
            ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            theirs = run["primary"].read(variables=COLUMNS)
            plugins.append(time.perf_counter() - t0)
        assert np.array_equal(ds["intensity"].values, theirs["xrd_spectrum"].values)
    print(f"run of {args.curves} curves × 4000 points, {args.repeats} reads each "
          "(after one warm-up)")
    print(f"{'reader':<46} | {'median s':>8} | {'range s':>13}")
    for name, times in (("specflow run_to_dataset (whole Dataset)", ours[1:]),
                        ("bluesky-tiled-plugins stream.read(variables)", plugins[1:])):
        print(f"{name:<46} | {statistics.median(times):8.3f} | "
              f"{min(times):5.3f}–{max(times):5.3f}")
    ratio = statistics.median(plugins[1:]) / statistics.median(ours[1:])
    print(f"ratio plugins / specflow: {ratio:.2f}")


if __name__ == "__main__":
    main()
