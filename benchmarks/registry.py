"""Load ``models:/<name>@champion`` in a fresh process and time predicting a 460-curve run.

Builds a full-size model (ConvSC encoder + linear head, 4000-point grid; weights do not
change the timing) in a temporary SQLite store, registers it, sets the alias, then times a
new Python process: load, first predict, and the median of repeated predicts. Goal: < 1 s
to predict a 460-curve run after load. Run: python benchmarks/registry.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import mlflow
import numpy as np
import torch
from mlflow.tracking import MlflowClient
from rich.console import Console
from rich.table import Table

from specflow.data.io import write_netcdf
from specflow.learn.probe import LinearProbe
from specflow.models.convsc import ConvSCEncoder
from specflow.models.heads import LinearClassifier
from specflow.registry.phase_model import build_bundle
from specflow.registry.promotion import log_phase_model, register
from specflow.registry.tracking import configure_tracking, ensure_experiment
from specflow.simulator.simulate import simulate_run

CHILD = """
import json, statistics, time
t0 = time.perf_counter()
import mlflow, numpy as np, xarray as xr
mlflow.set_tracking_uri({uri!r})
t_import = time.perf_counter()
model = mlflow.pyfunc.load_model("models:/bench-phase@champion")
t_load = time.perf_counter()
ds = xr.open_dataset({data!r}, engine="h5netcdf").load()
x = ds["intensity"].values.astype(np.float32)
grid, pressure = ds["two_theta"].values.tolist(), ds["pressure"].values.tolist()
params = {{"two_theta": grid, "pressure": pressure}}
t1 = time.perf_counter(); model.predict(x, params=params); first = time.perf_counter() - t1
runs = []
for _ in range(5):
    t1 = time.perf_counter(); model.predict(x, params=params); runs.append(time.perf_counter() - t1)
print(json.dumps(dict(imports=t_import - t0, load=t_load - t_import, first=first,
                      steady=statistics.median(runs), n=len(x))))
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        uri = configure_tracking(Path(tmp))
        ensure_experiment("bench")
        ds = simulate_run("Fe", 460, seed=0)
        data = write_netcdf(ds, Path(tmp) / "run.nc")
        encoder = ConvSCEncoder(init="pytorch").eval()
        probe = LinearProbe(LinearClassifier(128, 3), np.zeros(128), np.ones(128), np.arange(3))
        bundle = build_bundle(encoder, probe, ds["two_theta"].values,
                              np.random.default_rng(0).normal(size=(256, 128)))
        with mlflow.start_run():
            info = log_phase_model(bundle)
        version = register(info.model_uri, "bench-phase").version
        MlflowClient().set_registered_model_alias("bench-phase", "champion", str(version))
        script = textwrap.dedent(CHILD.format(uri=uri, data=str(data)))
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             cwd=tmp, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
    table = Table(title=f"@champion in a fresh process ({torch.get_num_threads()} threads, "
                  f"{r['n']} curves × 4000 points)")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    for step, key in (("import mlflow + numpy + xarray", "imports"),
                      ("load models:/bench-phase@champion", "load"),
                      ("first predict (460 curves)", "first"),
                      ("steady predict (median of 5)", "steady")):
        table.add_row(step, f"{r[key]:.3f}")
    table.add_row("curves/s (steady)", f"{r['n'] / r['steady']:,.0f}")
    Console().print(table)


if __name__ == "__main__":
    main()
