"""Soak with faults: runs keep arriving while a watcher and a Dask bulk re-annotation label
them, and the servers die under them.

A PostgreSQL-backed Tiled server and an MLflow server run in their own processes. Runs of
simulated Fe compressions are stored one after another (``specflow.ingest.files``); a
``specflow watch`` process labels them as they finish. During the soak the Tiled server is
killed (SIGKILL) and restarted ``--tiled-kills`` times, the MLflow server is stopped for
``--mlflow-down`` seconds, a second model version is promoted to ``champion`` halfway, and
then ``specflow annotate --all --workers 2`` re-annotates the catalog on Dask while one of
its workers is killed. Afterwards every finished run is checked:

* **lost**: no complete node of the champion's version, or the run summary not pointing at it;
* **duplicates**: more than one complete node of one model version;
* **partial**: a node left ``partial``;
* **labels differ**: the node's labels are not what the champion labels in one clean process;
* **tracebacks**: any traceback in the watcher's or the bulk command's output.

Recovery: seconds from each Tiled restart until the watcher next writes a node.

    python benchmarks/soak.py                         # 200 runs, 5 Tiled kills (~20 min)
    python benchmarks/soak.py --runs 24 --tiled-kills 2 --mlflow-down 8   # a short soak
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

SERVE_TILED = """
import sys, time
from specflow.servers.tiled import tiled_server
with tiled_server(sys.argv[1], api_key=sys.argv[2], port=int(sys.argv[3]),
                  catalog_uri=sys.argv[4], tables_uri=sys.argv[5]):
    print("ready", flush=True)
    while True:
        time.sleep(1)
"""
MODEL = "soak"


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError as exc:
            if getattr(exc, "code", None) is not None:  # an HTTP answer: the server is up
                return
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"{url}: server did not start") from None
            time.sleep(0.3)


@dataclass
class Server:
    """A server process that can be killed and started again on the same port."""

    argv: list[str]
    health: str
    log: Path
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=log,
                                         start_new_session=True)
        wait_http(self.health, self.proc)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@dataclass
class Output:
    """A process's output lines with their arrival times, read in a thread."""

    proc: subprocess.Popen
    lines: list[tuple[float, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.rstrip()))

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


def kill_a_worker(bulk: subprocess.Popen, busy: float = 3.0, timeout: float = 120.0) -> bool:
    """SIGKILL one Dask worker process of the bulk command ``busy`` s after it appeared."""
    deadline = time.monotonic() + timeout
    seen: dict[int, float] = {}
    while time.monotonic() < deadline and bulk.poll() is None:
        try:
            workers = [p for p in psutil.Process(bulk.pid).children(recursive=True)
                       if "spawn" in " ".join(p.cmdline())]  # multiprocessing-spawned
        except psutil.Error:
            workers = []
        for worker in workers:
            if time.monotonic() - seen.setdefault(worker.pid, time.monotonic()) > busy:
                worker.kill()
                return True
        time.sleep(0.2)
    return False


def register_version(seed: int) -> str:
    """Fit a zero-label Fe model on two simulated runs and register it; its version."""
    import mlflow

    from specflow.learn.classifier import PhaseClassifier
    from specflow.registry.classifier import log_classifier
    from specflow.simulator.simulate import simulate_family

    runs = [r.drop_vars("label") for r in simulate_family("Fe", 2, n_curves=60, seed=seed)]
    with mlflow.start_run():
        info = log_classifier(PhaseClassifier(seed=seed).fit(runs), registered_model_name=MODEL)
    return str(info.registered_model_version)


def main() -> None:  # noqa: C901 - one scenario, read top to bottom
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--curves", type=int, default=40)
    ap.add_argument("--tiled-kills", type=int, default=5)
    ap.add_argument("--mlflow-down", type=float, default=15.0, help="seconds")
    ap.add_argument("--settle", type=float, default=300.0,
                    help="seconds the watcher gets to catch up after the last fault")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    for var in [v for v in os.environ if v.startswith("MLFLOW_")]:  # its own servers only
        del os.environ[var]
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    import mlflow
    from mlflow.tracking import MlflowClient
    from tiled.client import from_uri

    from specflow.annotate import load_model
    from specflow.annotate.writer import COMPLETE, CONTAINER, node_base, read_labels
    from specflow.ingest.files import write_runs
    from specflow.ingest.reader import run_to_dataset
    from specflow.servers.ports import free_port
    from specflow.servers.postgres import postgres_server
    from specflow.servers.processes import popen_interruptible
    from specflow.simulator.simulate import simulate_run

    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp, postgres_server() as pg:
        tmp = Path(tmp)
        key, tiled_port, mlflow_port = secrets.token_hex(8), free_port(), free_port()
        uri = f"http://127.0.0.1:{tiled_port}/api/v1"
        tiled = Server([py, "-c", SERVE_TILED, str(tmp / "tiled"), key, str(tiled_port),
                        pg.create_database("tiled"), pg.create_database("tiled_tables")],
                       f"http://127.0.0.1:{tiled_port}/api/v1/", tmp / "tiled.log")
        mlflow_url = f"http://127.0.0.1:{mlflow_port}"
        mlf = Server([py, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port",
                      str(mlflow_port), "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
                      "--artifacts-destination", str(tmp / "artifacts"), "--workers", "1"],
                     f"{mlflow_url}/health", tmp / "mlflow.log")
        t0 = time.monotonic()
        tiled.start()
        mlf.start()
        mlflow.set_tracking_uri(mlflow_url)
        mlflow.set_registry_uri(mlflow_url)
        registry = MlflowClient()
        v1 = register_version(3)
        registry.set_registered_model_alias(MODEL, "champion", v1)
        env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_url, "TILED_URI": uri,
               "TILED_API_KEY": key, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
        watch = popen_interruptible(
            [py, "-m", "specflow.cli", "watch", "--poll", "--interval", "1",
             "--registry-interval", "3", "--model", f"models:/{MODEL}@champion"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        watched = Output(watch)
        print(f"servers and model ready in {time.monotonic() - t0:.0f} s", flush=True)

        finished: list[str] = []
        ingest_errors = [0]
        done = threading.Event()

        def ingest() -> None:
            for i in range(args.runs):
                ds = simulate_run("Fe", args.curves, seed=10_000 + i)
                for attempt in range(1000):  # a new name per try: a cut try stays unfinished
                    try:
                        finished.extend(s.uid for s in write_runs(
                            from_uri(uri, api_key=key),
                            {f"soak{i:04d}-{attempt}": ds.drop_vars("label")}))
                        break
                    except Exception:  # the server is down
                        ingest_errors[0] += 1
                        time.sleep(1.0)
            done.set()

        feeder = threading.Thread(target=ingest, daemon=True)
        feeder.start()
        restarts: list[float] = []
        faults: list[str] = []

        def tiled_outage(down: float) -> None:
            tiled.kill()
            time.sleep(down)
            tiled.start()
            restarts.append(time.monotonic())
            faults.append(f"Tiled killed, back after {down:.0f} s")

        def progress(fraction: float) -> None:  # wait until this share of runs is stored
            while len(finished) < fraction * args.runs and not done.is_set():
                time.sleep(0.5)

        rng = np.random.default_rng(0)
        shares = np.linspace(0.1, 0.9, args.tiled_kills + 2)[1:-1]
        bulk = worker_killed = None
        for k, share in enumerate(shares):
            progress(share)
            time.sleep(float(rng.uniform(0, 2)))
            tiled_outage(float(rng.uniform(2, 6)))
            if k == 0:  # MLflow away while the watcher checks its alias
                mlf.kill()
                time.sleep(args.mlflow_down)
                mlf.start()
                faults.append(f"MLflow stopped for {args.mlflow_down:.0f} s")
            if bulk is None and share >= 0.5:
                v2 = register_version(4)
                registry.set_registered_model_alias(MODEL, "champion", v2)
                faults.append(f"version {v2} promoted to champion")
                bulk = popen_interruptible(
                    [py, "-m", "specflow.cli", "annotate", "--all", "--workers", "2",
                     "--model", f"models:/{MODEL}@champion"], env=env,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                    start_new_session=True)
                bulked = Output(bulk)
                worker_killed = kill_a_worker(bulk)
                if worker_killed:
                    faults.append("a Dask worker of the bulk re-annotation killed")
        done.wait()
        if bulk is None:
            raise SystemExit("no promotion happened: use more runs or fewer kills")
        bulk_exit = bulk.wait(timeout=3600)
        champion = load_model(f"models:/{MODEL}@champion")
        client = from_uri(uri, api_key=key)
        base = node_base(MODEL, champion.version)
        deadline = time.monotonic() + args.settle
        while time.monotonic() < deadline:  # the watcher catches up with the last runs
            behind = [u for u in finished if ((client[u].metadata.get("specflow") or {})
                                                .get("latest") or "").split("-r")[0] != base]
            if not behind:
                break
            time.sleep(2)
        watch.send_signal(signal.SIGINT)
        try:
            watch.wait(timeout=60)
            watcher_stopped = "yes"
        except subprocess.TimeoutExpired:  # a finding of the soak, not a crash of it
            watch.send_signal(signal.SIGUSR1)  # where it hangs: every thread's stack
            time.sleep(2)
            os.killpg(watch.pid, signal.SIGKILL)
            watch.wait()
            watcher_stopped = "no: killed after 60 s (stacks below)"
        lost, duplicates, partial, differ, miscounted = [], [], [], [], []
        for uid in finished:
            run = client[uid]
            nodes = {k: dict(v.metadata) for k, v in run.base[CONTAINER].items()} \
                if CONTAINER in run.base else {}
            complete = [k for k, md in nodes.items() if md.get("status") == COMPLETE]
            partial += [uid] * sum(md.get("status") != COMPLETE for md in nodes.values())
            versions = [k.split("-r")[0] for k in complete]
            if len(versions) != len(set(versions)):
                duplicates.append(uid)
            latest = (run.metadata.get("specflow") or {}).get("latest") or ""
            if latest.split("-r")[0] != base or latest not in complete:
                lost.append(uid)
                continue
            data = run_to_dataset(run)
            if data.sizes["curve"] != args.curves:  # rows lost or written twice on a retry
                miscounted.append(uid)
            clean = champion.label_run(data)[0]["label"].to_numpy()
            if not np.array_equal(read_labels(run)["label"].values, clean):
                differ.append(uid)
        tracebacks = sum(o.text().count("Traceback") for o in (watched, bulked))
        recovery = []
        for at in restarts:
            after = [t for t, line in watched.lines if t > at and " written " in line]
            recovery.append(f"{after[0] - at:.1f}" if after else "—")
        tiled.kill()
        mlf.kill()
        print(f"\n# python benchmarks/soak.py --runs {args.runs} --tiled-kills "
              f"{args.tiled_kills} --mlflow-down {args.mlflow_down:g}")
        print("| what | value |\n|---|---|")
        rows = [("runs finished (stored with their stop document)", len(finished)),
                ("store attempts cut by an outage (retried as new runs)", ingest_errors[0]),
                ("faults injected", "; ".join(faults)),
                ("worker killed", "yes" if worker_killed else "no (none found)"),
                ("bulk re-annotation exit code", bulk_exit),
                ("runs lost (no published node of the champion)", len(lost)),
                ("runs with duplicate complete nodes", len(duplicates)),
                ("partial nodes left", len(partial)),
                ("runs whose labels differ from a clean run", len(differ)),
                ("runs stored with a wrong number of curves", len(miscounted)),
                ("tracebacks shown to a user", tracebacks),
                ("watcher stopped within 60 s of Ctrl-C", watcher_stopped),
                ("recovery after each Tiled restart (s to the next node)", ", ".join(recovery)),
                ("wall time (s)", f"{time.monotonic() - t0:.0f}")]
        for what, value in rows:
            print(f"| {what} | {value} |")
        if watcher_stopped != "yes":
            text = watched.text()
            print("\nwatcher's threads when it did not stop:")
            at = text.find("(most recent call first)")
            print(text[max(0, at - 200):at + 8000] if at >= 0 else text[-4000:])
        for name, out in (("watcher", watched), ("bulk", bulked)):
            text = out.text()
            if "Traceback" in text:  # what the user saw, to find where it came from
                at = text.index("Traceback")
                print(f"\n{name} output around its first traceback:")
                print(text[max(0, at - 500):at + 4000])
        if lost or duplicates or partial or differ or miscounted or tracebacks:
            print("lost:", lost[:5], "duplicates:", duplicates[:5], "differ:", differ[:5])
            raise SystemExit(1)


if __name__ == "__main__":
    main()
