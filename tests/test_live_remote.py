"""`specflow live` out of process: a RunEngine publishes through a real bluesky 0MQ proxy,
and the command, in its own process, labels every curve as it arrives."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import free_port

from specflow.annotate.remote import RunCounter, kafka_topic

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_live_command_labels_curves_from_a_zmq_proxy(mlflow_store, tmp_path):
    from bluesky import RunEngine
    from bluesky.callbacks.zmq import Publisher

    from specflow.ingest import compression_ramp
    from specflow.simulator.devices import DiamondAnvilCell, IntegratedDetector
    from specflow.simulator.simulate import labels_from_fraction

    port_in, port_out = free_port(), free_port()
    proxy = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "bluesky-0MQ-proxy"),
                              "--in-address", str(port_in), "--out-address", str(port_out)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store.uri, "COLUMNS": "200"}
    live = subprocess.Popen(
        [sys.executable, "-m", "specflow.cli", "live", "--zmq", f"127.0.0.1:{port_out}",
         "--model", mlflow_store.champion, "--max-runs", "1", "--timeout", "120",
         "--workdir", str(tmp_path)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = live.stdout.readline()
        assert "labelling curves from 0MQ proxy" in first, first + live.stdout.read()
        truth: list[float] = []
        engine = RunEngine({}, call_returns_result=False)
        publisher = Publisher(f"127.0.0.1:{port_in}")
        engine.subscribe(publisher)
        time.sleep(2.0)  # both 0MQ links up before the run starts (the slow joiner)
        engine.subscribe(lambda name, doc: truth.append(doc["data"]["xrd_phase_fraction"]),
                         "event")
        cell = DiamondAnvilCell(seed=17)
        engine(compression_ramp(cell, IntegratedDetector(cell=cell, seed=17), 0, 30, 30))
        out, _ = live.communicate(timeout=120)
    finally:
        live.kill()
        proxy.kill()
        proxy.wait(10)
        if "publisher" in locals():
            publisher.close()  # else 0MQ's context waits for it at interpreter exit
    assert live.returncode == 0, out
    lines = [line for line in out.splitlines() if re.match(r"#\d+", line)]
    assert len(lines) == 30 and "1 run(s) ended; 30 curve(s) labelled" in out
    names = {"before": 0, "during": 1, "after": 2}
    labels = np.array([names[line.split()[3]] for line in lines])
    assert (labels == labels_from_fraction(np.array(truth))).mean() > 0.75


def test_kafka_topic_and_run_counting():
    assert kafka_topic("XPD") == "xpd.bluesky.runengine.documents"
    seen = []
    counter = RunCounter(lambda name, doc: seen.append(name), max_runs=2)
    for name in ["start", "event", "stop", "start", "stop"]:
        assert not counter.done
        counter(name, {})
    assert counter.done and counter.runs == 2 and len(seen) == 5
