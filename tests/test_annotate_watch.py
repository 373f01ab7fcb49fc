"""Watch mode (subscription and polling, alias moves), live per-curve predictions, retries."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest
from conftest import PHASE_MODEL, record_ramp

from specflow.annotate import annotate_run, load_model
from specflow.annotate.retry import RetryPolicy
from specflow.annotate.watch import Watcher
from specflow.annotate.writer import node_key

K1, K2 = node_key(PHASE_MODEL, 1), node_key(PHASE_MODEL, 2)


pytestmark = [pytest.mark.slow, pytest.mark.integration]

@pytest.fixture(scope="module")
def own_server(tmp_path_factory):
    """A Tiled server for this module alone, so alias moves only touch these runs."""
    from specflow.servers.tiled import tiled_server

    with tiled_server(tmp_path_factory.mktemp("tiled-watch")) as info:
        yield info


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def start(watcher: Watcher) -> threading.Thread:
    thread = threading.Thread(target=watcher.run, kwargs={"timeout": 60}, daemon=True)
    thread.start()
    wait_for(lambda: watcher.model is not None)
    return thread


def nodes_of(watcher: Watcher, uid: str) -> list[str]:
    return [r.node for r in watcher.results if r.uid == uid and r.status == "written"]


def test_watch_subscribes_then_follows_the_alias(own_server, mlflow_store):
    from mlflow.tracking import MlflowClient

    client = own_server.client()
    watcher = Watcher(client, mlflow_store.champion, mode="subscribe", registry_interval=0.3)
    thread = start(watcher)
    try:
        wait_for(lambda: watcher.subscribed)
        uid = record_ramp(client, stop=30.0, num=30, seed=5)
        wait_for(lambda: nodes_of(watcher, uid) == [K1])
        MlflowClient().set_registered_model_alias(mlflow_store.name, "champion",
                                                  mlflow_store.versions[1])
        wait_for(lambda: nodes_of(watcher, uid) == [K1, K2])
    finally:
        watcher.stop()
        thread.join(10)
        MlflowClient().set_registered_model_alias(mlflow_store.name, "champion",
                                                  mlflow_store.versions[0])
    run = client[uid]
    assert set(run.base["specflow"]) == {K1, K2}
    assert run.metadata["specflow"]["latest"] == K2
    assert len(nodes_of(watcher, uid)) == 2  # its own metadata updates did not re-trigger it


def test_watch_polls(own_server, mlflow_store):
    client = own_server.client()
    watcher = Watcher(client, mlflow_store.champion, mode="poll", poll_interval=0.2,
                      registry_interval=60)
    thread = start(watcher)
    try:
        uid = record_ramp(client, stop=20.0, num=20, seed=6)
        wait_for(lambda: nodes_of(watcher, uid) == [K1])
    finally:
        watcher.stop()
        thread.join(10)
    assert not watcher.subscribed and client[uid].metadata["specflow"]["latest"] == K1


def test_watch_command_annotates_finished_runs_and_stops_when_told(own_server, mlflow_store,
                                                                   tmp_path, cli):
    """`specflow watch --max-runs/--timeout`: the bounded mode cron jobs and tests use."""
    client = own_server.client()
    uid = record_ramp(client, stop=25.0, num=20, seed=8)
    env = {"TILED_API_KEY": own_server.api_key}
    out = cli(["watch", "--tiled-uri", own_server.api_uri, "--model", mlflow_store.champion,
               "--poll", "--interval", "0.2", "--max-runs", "1", "--timeout", "60",
               "--workdir", tmp_path], env=env)
    assert uid[:8] in out and "written" in out
    assert client[uid].metadata["specflow"]["latest"] == K1
    # nothing left to do: the timeout ends it, with nothing written
    out = cli(["watch", "--tiled-uri", own_server.api_uri, "--model", mlflow_store.champion,
               "--poll", "--timeout", "1", "--workdir", tmp_path], env=env)
    assert "written" not in out


def test_live_predictions_arrive_during_the_scan(mlflow_store):
    from bluesky import RunEngine

    from specflow.annotate.live import LivePhaseMonitor
    from specflow.ingest import compression_ramp
    from specflow.simulator.devices import DiamondAnvilCell, IntegratedDetector
    from specflow.simulator.simulate import labels_from_fraction

    truth: list[float] = []
    seen_at: list[int] = []  # events published when each prediction was made
    monitor = LivePhaseMonitor(load_model(mlflow_store.champion),
                               on_prediction=lambda p: seen_at.append(len(truth)))
    engine = RunEngine({}, call_returns_result=False)
    engine.subscribe(lambda name, doc: truth.append(doc["data"]["xrd_phase_fraction"]),
                     "event")
    engine.subscribe(monitor)
    cell = DiamondAnvilCell(seed=7)
    (uid,) = engine(compression_ramp(cell, IntegratedDetector(cell=cell, seed=7), 0, 30, 40))
    preds = monitor.predictions[uid]
    assert [p.index for p in preds] == list(range(40))
    assert seen_at == list(range(1, 41))  # each curve labelled before the next one arrived
    labels = monitor.labels(uid)
    assert (labels == labels_from_fraction(np.array(truth))).mean() > 0.75
    # confident where the answer is clear (the first, low-pressure curves are bcc Fe)
    assert np.mean([p.probability for p in preds[:8]]) > 0.9 and set(labels[:8]) == {0}


def test_transient_outage_is_retried_and_resumed(tmp_path, mlflow_store, caplog, monkeypatch):
    # the Tiled client's own retries off: the outage must reach specflow's (stamina) retries
    monkeypatch.setattr("tiled.client.utils.TILED_RETRY_ATTEMPTS", 1)
    from specflow.servers.tiled import tiled_server

    with tiled_server(tmp_path / "tiled") as info:
        client = info.client()
        uid = record_ramp(client, stop=30.0, num=30, seed=8)
        port = int(info.base_url.rsplit(":", 1)[1])
    model = load_model(mlflow_store.champion)  # the server is down now
    back = threading.Event()
    done = threading.Event()

    def restart() -> None:
        time.sleep(1.0)
        with tiled_server(tmp_path / "tiled", api_key=info.api_key, port=port):
            back.set()
            done.wait(30)

    thread = threading.Thread(target=restart, daemon=True)
    thread.start()
    try:
        with caplog.at_level(logging.WARNING):
            result = annotate_run(client, uid, model,
                                  retry=RetryPolicy(attempts=8, base_delay=0.2, max_delay=1.0))
        assert back.is_set() and result.status == "written", result
        assert "Tiled unavailable" in caplog.text
        assert list(client[uid].base["specflow"]) == [K1]
        assert annotate_run(client, uid, model).status == "skipped"  # nothing duplicated
    finally:
        done.set()
        thread.join(15)


def test_new_runs_go_before_the_reannotation_backlog(own_server, mlflow_store):
    """After an alias move the old version's runs are a backlog: a run that finishes
    meanwhile is annotated next, not after the whole backlog."""
    from mlflow.tracking import MlflowClient

    from specflow.annotate import annotate

    client = own_server.client()
    old = [record_ramp(client, stop=20.0, num=12, seed=70 + i) for i in range(5)]
    annotate(client, old, model_uri=mlflow_store.champion)  # version 1's runs
    order: list[str] = []
    new: list[str] = []
    started, recorded = threading.Event(), threading.Event()

    def on_result(result) -> None:  # in the watcher's thread
        order.append(result.uid)
        if result.uid in old and not started.is_set():  # the backlog has started ...
            started.set()
            recorded.wait(60)  # ... and a run finishes now (recorded by the test's thread)
            time.sleep(0.5)  # its stop document reaches the subscription

    watcher = Watcher(client, mlflow_store.champion, mode="subscribe", registry_interval=0.2,
                      on_result=on_result)
    thread = start(watcher)
    try:
        wait_for(lambda: watcher.subscribed)
        MlflowClient().set_registered_model_alias(mlflow_store.name, "champion",
                                                  mlflow_store.versions[1])
        wait_for(started.is_set, timeout=60)
        new.append(record_ramp(client, stop=20.0, num=12, seed=79))  # RunEngine: main thread
        recorded.set()
        wait_for(lambda: set(old) | set(new) <= {r.uid for r in watcher.results
                                                 if r.node == K2}, timeout=90)
    finally:
        recorded.set()
        watcher.stop()
        thread.join(10)
        MlflowClient().set_registered_model_alias(mlflow_store.name, "champion",
                                                  mlflow_store.versions[0])
    backlog = [uid for uid in order if uid in old]
    assert order.index(new[0]) < order.index(backlog[-1])  # not behind the whole backlog
    assert watcher.backlog == 0


def test_failed_runs_are_tried_again_with_backoff(own_server, mlflow_store, monkeypatch):
    """A run that failed for a passing reason is retried after the backoff, up to
    max_attempts; bad data are not retried."""
    import specflow.annotate.watch as watch
    from specflow.annotate.analyzer import AnnotationResult

    client = own_server.client()
    flaky = record_ramp(client, stop=20.0, num=12, seed=81)
    real = watch.annotate_run
    calls: list[tuple[str, float]] = []

    def sometimes_down(client, uid, model, **kw):
        calls.append((uid, time.monotonic()))
        if uid == flaky and len([c for c in calls if c[0] == flaky]) <= 2:
            return AnnotationResult(uid, "failed", "ConnectError: server restarting")
        return real(client, uid, model, **kw)

    monkeypatch.setattr(watch, "annotate_run", sometimes_down)
    watcher = Watcher(client, mlflow_store.champion, mode="poll", poll_interval=0.1,
                      registry_interval=60, backoff=0.5, max_attempts=5)
    thread = start(watcher)
    try:
        wait_for(lambda: nodes_of(watcher, flaky) == [K1], timeout=60)
    finally:
        watcher.stop()
        thread.join(10)
    tries = [t for uid, t in calls if uid == flaky]
    assert len(tries) == 3  # failed, failed, written: polling did not retry it early
    assert tries[1] - tries[0] >= 0.5 and tries[2] - tries[1] >= 1.0  # 0.5 s, then 1 s
    reasons = [r.reason for r in watcher.results if r.uid == flaky and r.status == "failed"]
    assert reasons[0].endswith("(try 1; again in 0.5 s)") and "(try 2; again in 1 s)" in reasons[1]
    assert watch.retryable(AnnotationResult("x", "failed", "validation: no pressure")) is False


def test_stopping_while_tiled_is_down_returns_at_once(tmp_path, mlflow_store):
    """Ctrl-C while the subscription is reconnecting to a server that went away: the
    watcher returns at once instead of waiting out the websocket's own retries (minutes)."""
    from specflow.servers.tiled import tiled_server

    with tiled_server(tmp_path / "tiled") as info:
        watcher = Watcher(info.client(), mlflow_store.champion, mode="subscribe",
                          registry_interval=60)
        thread = start(watcher)
        wait_for(lambda: watcher.subscribed)
        listening = [t for t in threading.enumerate() if t.name.startswith("tiled-subscr")]
    time.sleep(12.0)  # the subscription thread now waits seconds between reconnections
    t0 = time.monotonic()
    watcher.stop()
    thread.join(30)
    assert not thread.is_alive() and time.monotonic() - t0 < 2
    # Tiled's thread ends at its next try, raising; keep its traceback out of later tests
    hook = threading.excepthook
    threading.excepthook = lambda args: None
    try:
        for t in listening:
            t.join(60)
    finally:
        threading.excepthook = hook


def test_watch_process_prints_its_stacks_on_sigusr1_and_stops_on_ctrl_c(own_server,
                                                                         mlflow_store,
                                                                         tmp_path):
    """The way an operator finds where a watcher hangs, and the way it is stopped."""
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "TILED_API_KEY": own_server.api_key, "PYTHONUNBUFFERED": "1"}
    from specflow.servers.processes import popen_interruptible

    proc = popen_interruptible(
        [sys.executable, "-m", "specflow.cli", "watch", "--tiled-uri", own_server.api_uri,
         "--model", mlflow_store.champion, "--poll", "--timeout", "120",
         "--workdir", str(tmp_path)], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("watching" in line for line in lines), timeout=120)  # loaded
        proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: any("most recent call first" in line for line in lines))
        assert proc.poll() is None  # it printed and went on
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)  # where it hangs
            time.sleep(2)
            raise AssertionError("no exit 30 s after Ctrl-C:\n" + "".join(lines[-150:])) from None
        assert proc.returncode == 0, "".join(lines)
    finally:
        proc.kill()
    reader.join(5)
    assert "Traceback" not in "".join(lines)
