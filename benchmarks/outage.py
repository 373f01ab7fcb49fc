"""How long a batch takes to stop when its Tiled server dies: ``specflow annotate --all`` on
runs in a Tiled server running in its own process; the server is killed (SIGKILL) as soon
as the first run's node appears; the table gives the seconds from the kill to the command's
exit, its exit code and its last line.

    python benchmarks/outage.py --runs 10 --tries 2
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tiled.client import from_uri

SERVER = """
import json, sys, time
from specflow.servers.tiled import tiled_server
with tiled_server(sys.argv[1]) as info:
    print(json.dumps({"uri": info.api_uri, "key": info.api_key}), flush=True)
    while True:
        time.sleep(1)
"""

RUNS = """
import json, sys
from tiled.client import from_uri
from specflow.simulator.runs import record_compressions
client = from_uri(sys.argv[1], api_key=sys.argv[2])
print(json.dumps(record_compressions(client, runs=int(sys.argv[3]), curves=40)))
"""

MODEL = """
import sys
from specflow.simulator.simulate import simulate_family
from specflow.learn.classifier import PhaseClassifier
from specflow.registry.classifier import log_classifier
import mlflow
mlflow.set_tracking_uri(sys.argv[1])
runs = [r.drop_vars("label") for r in simulate_family("Fe", 1, n_curves=60, seed=3)]
with mlflow.start_run():
    info = log_classifier(PhaseClassifier().fit(runs), registered_model_name="outage")
print(info.registered_model_version)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--tries", type=int, default=2)
    args = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        store = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        version = subprocess.run([py, "-c", MODEL, store], capture_output=True, text=True,
                                 check=True).stdout.split()[-1]
        env = {**os.environ, "MLFLOW_TRACKING_URI": store}
        print(f"{'try':>3} | {'kill → exit (s)':>15} | exit | last line")
        for k in range(args.tries):
            server = subprocess.Popen([py, "-c", SERVER, str(Path(tmp) / f"tiled{k}")],
                                      stdout=subprocess.PIPE, text=True)
            info = json.loads(server.stdout.readline())
            uids = json.loads(subprocess.run(
                [py, "-c", RUNS, info["uri"], info["key"], str(args.runs)],
                capture_output=True, text=True, check=True).stdout.splitlines()[-1])
            cli = subprocess.Popen(
                [py, "-m", "specflow.cli", "annotate", "--tiled-uri", info["uri"], "--all",
                 "--model", f"models:/outage/{version}", "--workdir", tmp],
                env={**env, "TILED_API_KEY": info["key"], "COLUMNS": "200"},
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            client = from_uri(info["uri"], api_key=info["key"])
            while not any("specflow" in client[uid].base for uid in uids):
                time.sleep(0.05)
            server.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            out, _ = cli.communicate(timeout=600)
            took = time.monotonic() - killed
            last = [line for line in out.splitlines() if line.strip()][-1][:110]
            print(f"{k:>3} | {took:>15.1f} | {cli.returncode:>4} | {last}", flush=True)


if __name__ == "__main__":
    main()
