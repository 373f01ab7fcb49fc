"""Annotation speed: requests per run, the write and read paths before/after, bulk
annotation in this process and on a Dask LocalCluster of 1 and 2 worker processes.

Run: ``python benchmarks/annotate.py [--runs 40] [--run-curves 60] [--quick]`` (repo root).

The Tiled server (SQLite catalog, the embedded one) runs in its own process, as at a
facility, so client and server do not share one interpreter lock. Then the facility's
deployment: ``deploy/tiled/config-postgres.yml`` (catalog and tables in a throwaway
PostgreSQL server) served by ``uvicorn --factory tiled.server.app:app_factory --workers N``
for N = 1 and 2 (``--server-workers``), each on fresh databases: the runs annotated for the
first time in this process, then by another model version on Dask (2 workers), with the CPU
seconds of the server processes and of PostgreSQL per run (``--no-postgres`` skips it; it
needs PostgreSQL's server binaries). MLflow is a throwaway
SQLite store with three versions of a small phase model (random frozen encoder + trained
probe: the same cost as a trained one). "before" is the write/read sequence of spec
version 2 (a container with three arrays and the table; the stream read part by part),
reproduced here so both are timed in one run on the same server.

Goals: per-run overhead <= 0.1 s on loopback, >= 2,000 curves/s for 60-curve runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from specflow.ingest import compression_ramp, run_to_dataset  # noqa: E402
from specflow.simulator.devices import DiamondAnvilCell, IntegratedDetector  # noqa: E402

NAME = "specflow-phase-bench"
GOAL_RUN_S, GOAL_CURVES_S = 0.1, 2000.0
SERVE = """
import sys, time
from specflow.servers.tiled import tiled_server
with tiled_server(sys.argv[1], api_key=sys.argv[2]) as info:
    print(info.api_uri, flush=True)
    while True:
        time.sleep(3600)
"""


@contextmanager
def tiled_process(directory: Path):
    """The embedded Tiled server in a child process; yields (api_uri, api_key)."""
    key = secrets.token_hex(8)
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(directory), key],
                            stdout=subprocess.PIPE, text=True)
    try:
        uri = proc.stdout.readline().strip()
        if not uri:
            raise RuntimeError("Tiled server process did not start")
        yield uri, key, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def register_models(workdir: Path, count: int = 4) -> list[str]:
    """``count`` versions of a small phase model in an embedded store; v1 holds champion."""
    import mlflow
    import torch
    from mlflow.tracking import MlflowClient

    from specflow.learn.data import to_curves
    from specflow.learn.pretrain import encode
    from specflow.learn.probe import train_probe
    from specflow.models.convsc import ConvSCEncoder
    from specflow.registry.phase_model import build_bundle
    from specflow.registry.promotion import log_phase_model, register
    from specflow.registry.tracking import configure_tracking, ensure_experiment
    from specflow.simulator.simulate import simulate_run

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
    for _ in range(count):
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


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process, its live descendants and the children it has reaped
    (uvicorn's workers; PostgreSQL's per-connection backends)."""
    import psutil

    root = psutil.Process(pid)
    total = sum(root.cpu_times()[:4])  # user, system, children_user, children_system
    for child in root.children(recursive=True):
        with suppress(psutil.NoSuchProcess):
            total += sum(child.cpu_times()[:2])
    return total


@contextmanager
def deployed_tiled(pg, directory: Path, workers: int, key: str):
    """``deploy/tiled/config-postgres.yml`` served by uvicorn with ``workers`` processes
    (tiled's ``app_factory``), on fresh databases of ``pg`` and arrays under ``directory``;
    yields (api_uri, uvicorn's pid, access log)."""
    import httpx

    from specflow.servers.ports import free_port

    port, log = free_port(), directory / "uvicorn.log"
    (directory / "data").mkdir(parents=True)
    catalog = pg.create_database(f"catalog_{workers}")
    env = {**os.environ, "TILED_CONFIG": str(REPO / "deploy" / "tiled" / "config-postgres.yml"),
           "TILED_SINGLE_USER_API_KEY": key, "SPECFLOW_DATA": str(directory),
           "SPECFLOW_TILED_CATALOG": catalog,
           "SPECFLOW_TILED_TABLES": pg.create_database(f"tables_{workers}")}
    # one process creates the catalog's tables, so the workers do not race to
    subprocess.run([sys.executable, "-m", "tiled", "catalog", "init", "--if-not-exists",
                    catalog], check=True, capture_output=True)
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "tiled.server.app:app_factory",
             "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
            env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not serve Tiled: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        while log.read_text().count("Application startup complete") < workers:  # all up
            if time.monotonic() > deadline:
                raise RuntimeError(f"{workers} workers did not start: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/api/v1", proc.pid, log
        if "Traceback" in log.read_text():  # a worker that died was restarted: not N workers
            raise RuntimeError(f"a uvicorn worker failed: {log.read_text()[-2000:]}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def requests_in(log: Path, since: int) -> int:
    return len(log.read_text().splitlines()) - since


def log_lines(log: Path) -> int:
    return len(log.read_text().splitlines())


def requests_by_route(log: Path, since: int) -> Counter:
    """The server's requests after line ``since`` of its access log, by method and route
    (run and node keys replaced by placeholders)."""
    routes: Counter = Counter()
    for line in log.read_text().splitlines()[since:]:
        found = re.search(r"(GET|POST|PUT|PATCH|DELETE) (/api/v1/[^ ?]*)", line)
        if found:
            path = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<run>", found.group(2))
            path = re.sub(rf"{NAME}-v\d+(-r\d+)?", "<node>", path)
            routes[f"{found.group(1)} {path}"] += 1
    return routes


# ------------------------------------------------------------------ before (spec v2)
def write_v2(container, key: str, table, summary: dict, me) -> None:
    """The previous node layout: container + three arrays + the table, then complete."""
    from tiled.structures.core import Spec

    model = summary["model"]
    node = container.create_container(
        key, metadata={"status": "partial", "model": model, "model_name": model["name"],
                       "writer": me.lease()}, specs=[Spec("SpecflowPhases", version="2")])
    probs = table[["p0", "p1", "p2"]].to_numpy(dtype=np.float32)
    node.write_array(table["label"].to_numpy(dtype=np.int8), key="label", dims=["curve"])
    node.write_array(probs, key="probabilities", dims=["curve", "phase"])
    node.write_array(table["ood_score"].to_numpy(dtype=np.float32), key="ood_score",
                     dims=["curve"])
    node.write_table(table, key="phases")
    node.update_metadata({"status": "complete", "summary": summary}, drop_revision=True)


def read_v2(run) -> None:
    """The previous read: the stream, then its array and table one request each."""
    node = run["primary"]
    base = node.base
    np.asarray(base["xrd_spectrum"].read())
    base["internal"].read(["seq_num", "time", "pressure"])


def write_v3(container, key: str, table, summary: dict, me) -> None:
    from specflow.annotate import writer

    node = writer.create_node(container, key, table, summary, me)
    writer.complete_node(node, summary)


def read_v3(run) -> None:
    node = dict(run.base.items())["primary"]
    parts = dict(getattr(node, "base", node).items())
    np.asarray(parts["xrd_spectrum"].read())
    parts["internal"].read(["seq_num", "time", "pressure"])


def paths_before_after(client, uids: list[str], log: Path, model) -> dict:
    """Seconds and requests per run of the write and read paths, v2 and v3 alternating."""
    from specflow.annotate import writer
    from specflow.annotate.analyzer import build_summary

    me = writer.Writer()
    out = {k: {"s": [], "requests": []} for k in
           ("write before", "write after", "read before", "read after")}
    for i, uid in enumerate(uids):
        run = client[uid]
        ds = run_to_dataset(run)
        pred = model.predict(ds["intensity"].values, ds["two_theta"].values,
                             ds["pressure"].values)
        summary = build_summary(ds, pred, model, "primary")
        table = writer.phase_table(ds["seq_num"].values, ds["time"].values,
                                   ds["pressure"].values, pred)
        container = writer.create_specflow_container(run.base)
        for label, fn, key in (("write before", write_v2, f"bench-v2-{i}"),
                               ("write after", write_v3, f"bench-v3-{i}")):
            n0, t0 = log_lines(log), time.perf_counter()
            fn(container, key, table, summary, me)
            out[label]["s"].append(time.perf_counter() - t0)
            out[label]["requests"].append(requests_in(log, n0))
        for label, fn in (("read before", read_v2), ("read after", read_v3)):
            fresh = client[uid]
            n0, t0 = log_lines(log), time.perf_counter()
            fn(fresh)
            out[label]["s"].append(time.perf_counter() - t0)
            out[label]["requests"].append(requests_in(log, n0))
    return {k: {"s": statistics.median(v["s"]), "requests": statistics.median(v["requests"])}
            for k, v in out.items()}


def request_floor(client, uri: str, uid: str, repeats: int = 30) -> float:
    """Median seconds of the cheapest useful request: a run's metadata."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        client.context.http_client.get(f"{uri}/metadata/{uid}").raise_for_status()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bulk_pass(client, uri: str, key: str, uids: list[str], run_curves: int, model,
              dask_workers: int, server_pid: int, log: Path, pg_pid: int | None = None
              ) -> dict:
    """Annotate ``uids`` (``run_curves`` curves each) with ``model`` through ``client`` in
    this process (``dask_workers`` 0) or on a Dask LocalCluster (each worker loads the model
    first: ``load`` s); wall time, requests and the server's (and PostgreSQL's) CPU per
    run."""
    from specflow.annotate import annotate
    from specflow.annotate.distributed import (
        ModelRef,
        annotate_on_dask,
        dask_client,
        worker_model,
    )

    def measured(work) -> dict:
        n0, s0 = log_lines(log), tree_cpu_seconds(server_pid)
        p0 = tree_cpu_seconds(pg_pid) if pg_pid else 0.0
        t0 = time.perf_counter()
        results = work()
        dt = time.perf_counter() - t0
        assert {r.status for r in results} == {"written"}, results
        row = {"s": dt, "per_run": dt / len(uids),
               "curves_s": len(uids) * run_curves / dt,
               "requests": requests_in(log, n0) / len(uids),
               "server_cpu": (tree_cpu_seconds(server_pid) - s0) / len(uids)}
        if pg_pid:
            row["postgres_cpu"] = (tree_cpu_seconds(pg_pid) - p0) / len(uids)
        return row

    if not dask_workers:
        return measured(lambda: annotate(client, uids, model=model))
    with dask_client(workers=dask_workers) as dc:
        t0 = time.perf_counter()
        dc.run(worker_model, ModelRef.of(model))  # each worker loads it once
        load = time.perf_counter() - t0
        return {**measured(lambda: annotate_on_dask(uri, key, uids, model, client=dc)),
                "load": load}


def postgres_section(args, versions: list[str], directory: Path) -> dict | None:
    """Bulk annotation against the facility deployment with 1..N server workers, each on
    a catalog of its own: the runs annotated for the first time (this process), then again
    by a newly promoted version (Dask)."""
    from tiled.client import from_uri

    from specflow.annotate import load_model
    from specflow.servers.postgres import PostgresUnavailable, postgres_server

    rows: dict[str, dict] = {}
    key = secrets.token_hex(8)
    with ExitStack() as stack:
        try:
            pg = stack.enter_context(postgres_server())
        except PostgresUnavailable as exc:
            print(f"PostgreSQL section skipped: {exc}")
            return None
        pg_pid = int((pg.directory / "data" / "postmaster.pid").read_text().split()[0])
        version = iter(versions)
        for workers in args.server_workers:
            with deployed_tiled(pg, directory / f"workers-{workers}", workers, key) as (
                    uri, pid, log):
                client = from_uri(uri, api_key=key)
                uids = ingest(client, args.runs, args.run_curves)
                for dask_workers in (0, 2):
                    model = load_model(f"models:/{NAME}/{next(version)}")
                    where = "this process" if not dask_workers else f"Dask {dask_workers}"
                    rows[f"{workers} server worker(s), client: {where}"] = bulk_pass(
                        client, uri, key, uids, args.run_curves, model, dask_workers, pid,
                        log, pg_pid)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40, help="runs in the bulk catalog")
    parser.add_argument("--run-curves", type=int, default=60, help="curves per bulk run")
    parser.add_argument("--quick", action="store_true", help="24 runs, fewer repeats")
    parser.add_argument("--out", type=Path, default=None, help="write the numbers as JSON")
    parser.add_argument("--server-workers", type=int, nargs="+", default=[1, 2],
                        help="uvicorn workers of the PostgreSQL-backed deployment")
    parser.add_argument("--no-postgres", action="store_true",
                        help="skip the PostgreSQL-backed deployment")
    args = parser.parse_args()
    if args.quick:
        args.runs = 24

    from tiled.client import from_uri

    from specflow.annotate import load_model

    console = Console(width=None if sys.stdout.isatty() else 160)  # files: whole rows
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "tiled"
        log = directory / "access.log"
        versions = register_models(Path(tmp) / "work", 3 + (
            0 if args.no_postgres else 2 * len(args.server_workers)))
        os.environ["MLFLOW_TRACKING_URI"] = __import__("mlflow").get_tracking_uri()
        with tiled_process(directory) as (uri, key, server_pid):
            client = from_uri(uri, api_key=key)
            console.print(f"ingesting {args.runs} runs x {args.run_curves} curves ...")
            uids = ingest(client, args.runs, args.run_curves)
            models = [load_model(f"models:/{NAME}/{v}") for v in versions[:3]]
            rows["request floor"] = {"s": request_floor(client, uri, uids[0])}
            rows.update(paths_before_after(client, uids[: 3 if args.quick else 8], log,
                                           models[0]))
            n0 = log_lines(log)
            rows["bulk, this process"] = bulk_pass(client, uri, key, uids, args.run_curves,
                                                   models[0], 0, server_pid, log)
            routes = requests_by_route(log, n0)
            for workers, model in ((1, models[1]), (2, models[2])):
                rows[f"bulk, Dask {workers} worker(s)"] = bulk_pass(
                    client, uri, key, uids, args.run_curves, model, workers, server_pid, log)
        deployed = None
        if not args.no_postgres:
            try:
                deployed = postgres_section(args, versions[3:], Path(tmp) / "deployed")
            except Exception as exc:  # the tables above are printed either way
                console.print(f"PostgreSQL section failed: {type(exc).__name__}: {exc}")

    table = Table("measurement", "value", "requests/run", "server CPU/run",
                  title=f"specflow annotate ({os.cpu_count()} CPU cores, Tiled server in its "
                  "own process)")
    table.add_row("one request (GET a run's metadata), median",
                  f"{rows['request floor']['s'] * 1e3:.0f} ms", "1", "")
    for what in ("write", "read"):
        before, after = rows[f"{what} before"], rows[f"{what} after"]
        table.add_row(f"{what} path, before (spec v2)", f"{before['s']:.3f} s/run",
                      f"{before['requests']:.0f}", "")
        table.add_row(f"{what} path, after (spec v3)", f"{after['s']:.3f} s/run "
                      f"({before['s'] / after['s']:.2f}x faster)", f"{after['requests']:.0f}",
                      "")
    for label in ("bulk, this process", "bulk, Dask 1 worker(s)", "bulk, Dask 2 worker(s)"):
        r = rows[label]
        load = f" (+{r['load']:.1f} s model load)" if "load" in r else ""
        table.add_row(f"{label}: {args.runs} runs x {args.run_curves} curves",
                      f"{r['per_run']:.3f} s/run, {r['curves_s']:.0f} curves/s{load}",
                      f"{r['requests']:.1f}", f"{r['server_cpu']:.3f} s")
    one, two = rows["bulk, Dask 1 worker(s)"], rows["bulk, Dask 2 worker(s)"]
    table.add_row("Dask 2 workers / 1 worker", f"{two['curves_s'] / one['curves_s']:.2f}x",
                  "", "")
    cpu = statistics.median(r["server_cpu"] for k, r in rows.items() if k.startswith("bulk"))
    table.add_row("ceiling of one server process (1 core / server CPU per run)",
                  f"{1 / cpu:.1f} runs/s = {args.run_curves / cpu:.0f} curves/s", "", "")
    best = max(r["curves_s"] for k, r in rows.items() if k.startswith("bulk"))
    table.add_row("goal: per-run overhead", f"<= {GOAL_RUN_S} s; best "
                  f"{min(r['per_run'] for k, r in rows.items() if k.startswith('bulk')):.3f} s",
                  "", "")
    table.add_row("goal: bulk throughput", f">= {GOAL_CURVES_S:.0f} curves/s; best "
                  f"{best:.0f} ({best / GOAL_CURVES_S:.0%} of the goal)", "", "")
    console.print(table)
    by_route = Table("route", "requests per run", title="requests of one bulk annotation "
                     "(this process), by route")
    for route, count in routes.most_common():
        by_route.add_row(route, f"{count / args.runs:.2f}")
    console.print(by_route)
    rows["bulk, this process"]["routes"] = {k: v / args.runs for k, v in routes.items()}
    if deployed:
        rows["postgres"] = deployed
        console.print(postgres_table(deployed, args))
    if args.out:
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                        "rows": rows}, indent=1))


def postgres_table(rows: dict[str, dict], args) -> Table:
    table = Table("server workers, client", "s/run", "curves/s", "requests/run",
                  "server CPU/run", "PostgreSQL CPU/run", "× 1 server worker",
                  title=f"bulk annotation of {args.runs} runs x {args.run_curves} curves, "
                  "deploy/tiled/config-postgres.yml under uvicorn --workers N "
                  f"({os.cpu_count()} CPU cores)")
    for label, r in rows.items():
        workers, client = label.split(", client: ")
        base = rows.get(f"1 server worker(s), client: {client}")
        ratio = f"{base['s'] / r['s']:.2f}x" if base else ""
        table.add_row(label, f"{r['per_run']:.3f}", f"{args.run_curves / r['per_run']:.0f}",
                      f"{r['requests']:.1f}", f"{r['server_cpu']:.3f} s",
                      f"{r['postgres_cpu']:.3f} s", ratio)
    cpu = statistics.median(r["server_cpu"] + r["postgres_cpu"] for r in rows.values())
    cores = os.cpu_count() or 1
    table.add_row(f"upper bound of the {cores} cores: server + PostgreSQL CPU per run, median",
                  f"{cpu / cores:.3f}", f"{cores * args.run_curves / cpu:.0f}", "", "", "", "")
    return table


if __name__ == "__main__":
    main()
