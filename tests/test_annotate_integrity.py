"""Labels in Tiled are never overwritten or lost: other model names, concurrent
annotators, abandoned and leased partial nodes, forced revisions, a server that dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from conftest import PHASE_MODEL, record_ramp

from specflow.annotate import TiledUnreachable, annotate, annotate_run, load_model
from specflow.annotate.publication import LOG, PublicationLog
from specflow.annotate.retry import RetryPolicy
from specflow.annotate.writer import node_key

K1 = node_key(PHASE_MODEL, 1)
K1_R2 = node_key(PHASE_MODEL, 1, revision=2)
pytestmark = [pytest.mark.slow, pytest.mark.integration]

OTHER = "other-phase-model"


@pytest.fixture(scope="module")
def other_model(phase_registry):
    """The champion's weights registered again under another model name."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(phase_registry.uri)
    mlflow.set_registry_uri(phase_registry.uri)
    source = MlflowClient().get_model_version(PHASE_MODEL, phase_registry.versions[0])
    version = mlflow.register_model(source.source, OTHER).version
    return f"models:/{OTHER}/{version}"


def ramps(client, n: int, seed: int) -> list[str]:
    md = {"sample": f"integrity-{uuid.uuid4().hex[:8]}"}
    return [record_ramp(client, stop=25.0, num=20, seed=seed + i, md=md) for i in range(n)]


def complete_nodes(client, uid: str) -> dict[str, dict]:
    container = client[uid].base["specflow"]
    return {k: dict(v.metadata) for k, v in container.items()}


def test_another_model_name_gets_its_own_node(tiled_client, mlflow_store, other_model):
    (uid,) = ramps(tiled_client, 1, seed=40)
    champion = load_model(mlflow_store.champion)
    assert annotate_run(tiled_client, uid, champion).status == "written"
    before = complete_nodes(tiled_client, uid)[K1]
    other = load_model(other_model)
    quiet = annotate_run(tiled_client, uid, other, publish=False)
    assert quiet.status == "written" and quiet.node == f"{OTHER}-v1"
    assert "not published" in quiet.reason
    block = tiled_client[uid].metadata["specflow"]
    assert block["model"]["name"] == PHASE_MODEL and block["latest"] == K1
    assert set(block["nodes"]) == {K1, f"{OTHER}-v1"}
    result = annotate_run(tiled_client, uid, other)  # publishing moves to the other name
    assert result.status == "written" and "restored" in result.reason
    assert tiled_client[uid].metadata["specflow"]["model"]["name"] == OTHER
    nodes = complete_nodes(tiled_client, uid)
    assert nodes[K1] == before  # the first model's node untouched
    assert nodes[f"{OTHER}-v1"]["model_name"] == OTHER
    assert {n["status"] for n in nodes.values()} == {"complete"}
    # the watcher's poll query finds runs by listed node (keys with '-' in the JSON path)
    from tiled.queries import KeyPresent

    from specflow.annotate.query import search

    assert uid in set(search(tiled_client, KeyPresent(f"specflow.nodes.{K1}")))
    assert uid not in set(search(tiled_client, KeyPresent(f"specflow.nodes.{K1}",
                                                          exists=False)))
    assert uid in set(search(tiled_client, KeyPresent("specflow.nodes.never-v9",
                                                      exists=False)))


def test_force_writes_a_revision_and_deletes_nothing(tiled_client, mlflow_store):
    (uid,) = ramps(tiled_client, 1, seed=45)
    model = load_model(mlflow_store.champion)
    annotate_run(tiled_client, uid, model)
    first = tiled_client[uid].base["specflow"][K1]["label"].read()
    forced = annotate_run(tiled_client, uid, model, force=True)
    assert forced.status == "written" and forced.node == f"{K1}-r2"
    assert set(tiled_client[uid].base["specflow"]) == {K1, f"{K1}-r2"}
    assert np.array_equal(tiled_client[uid].base["specflow"][K1]["label"].read(), first)
    assert tiled_client[uid].metadata["specflow"]["latest"] == f"{K1}-r2"
    assert annotate_run(tiled_client, uid, model).status == "skipped"


def test_a_leased_partial_node_is_left_alone_until_its_lease_expires(tiled_client,
                                                                      mlflow_store):
    (uid,) = ramps(tiled_client, 1, seed=47)
    model = load_model(mlflow_store.champion)
    container = tiled_client[uid].base.create_container("specflow")
    now = datetime.now(UTC)
    lease = {"id": "someone-else", "host": "beamline-ws", "pid": 4242,
             "since": now.isoformat(), "expires": (now + timedelta(minutes=5)).isoformat()}
    busy = container.create_container(K1, metadata={"status": "partial", "writer": lease,
                                                    "model_name": PHASE_MODEL})
    busy.write_array(np.zeros(2, dtype=np.int8), key="label")
    result = annotate_run(tiled_client, uid, model)
    assert result.status == "skipped" and "beamline-ws pid 4242" in result.reason
    assert len(tiled_client[uid].base["specflow"][K1]["label"].read()) == 2  # untouched
    busy.update_metadata({"writer": {**lease, "expires": (now - timedelta(seconds=1))
                                     .isoformat()}})
    result = annotate_run(tiled_client, uid, model)  # its writer died: replaced
    assert result.status == "written" and "abandoned" in result.reason
    assert set(tiled_client[uid].base["specflow"]) == {K1_R2}
    assert len(tiled_client[uid].base["specflow"][K1_R2].read()) == 20
    from specflow.annotate.query import search
    from specflow.annotate.watch import unannotated

    assert tiled_client[uid].metadata["specflow"]["annotated"] == {K1: K1_R2}
    assert uid not in search(tiled_client, *unannotated(PHASE_MODEL, 1))  # the watcher rests


def test_two_concurrent_annotators_never_destroy_each_others_nodes(tiled_server,
                                                                    mlflow_store):
    client = tiled_server.client()
    uids = ramps(client, 4, seed=50)
    model = load_model(mlflow_store.champion)
    deleted: list[str] = []
    outcomes: dict[str, list] = {}

    def worker(name: str) -> None:
        own = tiled_server.client()  # its own connection, as a second process would have
        outcomes[name] = annotate(own, uids, model=model)

    from specflow.annotate import writer

    real_drop = writer.drop_node
    writer.drop_node = lambda container, key: (deleted.append(key), real_drop(container, key))
    try:
        threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        writer.drop_node = real_drop
    assert deleted == []
    for i, uid in enumerate(uids):
        statuses = sorted(outcomes[w][i].status for w in ("a", "b"))
        assert statuses in (["skipped", "written"], ["written", "written"]), statuses
        nodes = complete_nodes(client, uid)
        assert set(nodes) == {K1}, nodes  # exactly one node, complete, never rewritten
        assert nodes[K1]["status"] == "complete"
        assert len(client[uid].base["specflow"][K1]["label"].read()) == 20
        assert client[uid].metadata["specflow"]["latest"] == K1


def test_two_writers_replacing_one_abandoned_node_never_delete_each_others(tiled_client,
                                                                         mlflow_store):
    """The race a lease cannot prevent (Tiled has no conditional delete): writers A and B
    both find the same abandoned partial node; A deletes it and writes its own node before
    B's delete lands. B's delete must not hit A's node: a replacement never reuses the key."""
    from specflow.annotate import writer

    (uid,) = ramps(tiled_client, 1, seed=58)
    model = load_model(mlflow_store.champion)
    container = tiled_client[uid].base.create_container("specflow")
    container.create_container(K1, metadata={"status": "partial", "model_name": PHASE_MODEL})
    a, b = writer.Writer(), writer.Writer()
    real_drop = writer.drop_node
    outcome = {}

    def b_drops_late(target, key):  # B checked the node, then A ran to the end
        if "a" not in outcome:
            writer.drop_node = real_drop
            outcome["a"] = annotate_run(tiled_client, uid, model, me=a)
        real_drop(target, key)

    writer.drop_node = b_drops_late
    try:
        outcome["b"] = annotate_run(tiled_client, uid, model, me=b)
    finally:
        writer.drop_node = real_drop
    nodes = complete_nodes(tiled_client, uid)
    assert outcome["a"].status == "written"
    assert nodes[outcome["a"].node]["writer"]["id"] == a.id  # A's node is still A's
    assert outcome["b"].status == "skipped"  # Tiled's 409 on the same new key
    assert set(nodes) == {K1_R2} and nodes[K1_R2]["status"] == "complete"
    assert len(tiled_client[uid].base["specflow"][K1_R2].read()) == 20
    assert tiled_client[uid].metadata["specflow"]["latest"] == K1_R2


def test_two_publishers_deciding_at_once_never_publish_the_older_version(tiled_client,
                                                                         mlflow_store):
    """The race a read-then-write publish cannot prevent: A (version 1) and B (version 2)
    both find nothing published and decide to publish; B publishes first, then A's write
    lands. The run must publish version 2: A loses the publication log's compare-and-swap
    and decides again against B's entry."""
    from specflow.annotate import analyzer

    (uid,) = ramps(tiled_client, 1, seed=61)
    v1 = load_model(mlflow_store.champion)
    v2 = load_model(f"models:/{mlflow_store.name}/{mlflow_store.versions[1]}")
    real_rule = analyzer.publish_rule
    outcome = {}

    def a_decides_then_b_runs(block, model):
        decision = real_rule(block, model)
        if model.version == v1.version and "b" not in outcome:
            outcome["b"] = annotate_run(tiled_client, uid, v2)  # B: start to end, now
        return decision

    analyzer.publish_rule = a_decides_then_b_runs
    try:
        outcome["a"] = annotate_run(tiled_client, uid, v1)
    finally:
        analyzer.publish_rule = real_rule
    assert outcome["b"].status == "written" and outcome["a"].status == "written"
    assert "newer version 2" in outcome["a"].reason  # A decided again and stood back
    block = tiled_client[uid].metadata["specflow"]
    assert block["latest"] == node_key(PHASE_MODEL, 2) and block["model"]["version"] == 2
    assert set(block["nodes"]) == {K1, node_key(PHASE_MODEL, 2)}  # both listed


def test_a_publication_log_fetches_its_container_once_and_its_entries_every_time(
        tiled_client):
    (uid,) = ramps(tiled_client, 1, seed=62)
    base = tiled_client[uid].base
    looks = []

    class Counted:  # the run's container, counting the fetches of the log's container
        def __getitem__(self, key):
            looks.append(key)
            return base[key]

        def create_container(self, *args, **kwargs):
            return base.create_container(*args, **kwargs)

    log = PublicationLog(Counted())
    assert log.last() == (0, None)  # one look: no log yet
    assert log.append(1, {"latest": "a"})  # creates it without looking again
    other = PublicationLog(base)
    assert other.last() == (1, {"latest": "a"})
    assert not other.append(1, {"latest": "b"})  # the compare-and-swap still holds
    assert other.append(2, {"latest": "b"})
    assert log.last() == (2, {"latest": "b"})  # entries listed afresh
    assert log.last() == (2, {"latest": "b"}) and looks == [LOG]


def test_dead_server_stops_the_batch_quickly_and_a_rerun_resumes(tmp_path, mlflow_store,
                                                                  monkeypatch):
    # the Tiled client's own retries off: the outage must reach specflow's (stamina) retries
    monkeypatch.setattr("tiled.client.utils.TILED_RETRY_ATTEMPTS", 1)
    from specflow.servers.tiled import tiled_server

    model = load_model(mlflow_store.champion)
    server = tiled_server(tmp_path / "tiled")
    info = server.__enter__()
    try:
        client = info.client()
        uids = ramps(client, 4, seed=60)
        port = int(info.base_url.rsplit(":", 1)[1])

        def kill_after_first(result) -> None:
            if result.uid == uids[0]:
                server.__exit__(None, None, None)

        t0 = time.monotonic()
        with pytest.raises(TiledUnreachable) as err:
            annotate(client, uids, model=model, on_result=kill_after_first,
                     retry=RetryPolicy(attempts=3, base_delay=0.2, deadline=2.0))
        elapsed = time.monotonic() - t0
    finally:
        server.__exit__(None, None, None)
    done = err.value.results
    assert [r.status for r in done] == ["written", "failed"] and done[1].unreachable
    assert "stopped after 2 of 4 runs" in str(err.value) and "run the same command" in str(
        err.value)
    assert elapsed < 30  # one run's retry budget, not one per remaining run
    with tiled_server(tmp_path / "tiled", api_key=info.api_key, port=port) as again:
        client = again.client()
        resumed = annotate(client, uids, model=model)
        assert [r.status for r in resumed] == ["skipped", "written", "written", "written"]
        for uid in uids:
            assert complete_nodes(client, uid)[K1]["status"] == "complete"


def test_our_own_crashed_writer_does_not_block_a_rerun(tiled_client, mlflow_store):
    import socket
    import subprocess
    import sys

    (uid,) = ramps(tiled_client, 1, seed=70)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs: the annotator that crashed mid-write
    now = datetime.now(UTC)
    container = tiled_client[uid].base.create_container("specflow")
    container.create_container(K1, metadata={
        "status": "partial", "model_name": PHASE_MODEL,
        "writer": {"id": "crashed", "host": socket.gethostname(), "pid": dead.pid,
                   "since": now.isoformat(), "expires": (now + timedelta(minutes=5))
                   .isoformat()}})
    result = annotate_run(tiled_client, uid, load_model(mlflow_store.champion))
    assert result.status == "written" and "abandoned" in result.reason


def test_a_run_already_annotated_loses_the_partial_node_a_dead_writer_left(tiled_client,
                                                                          mlflow_store):
    """A writer killed mid-write while another finished the run (a Dask worker killed in a
    bulk re-annotation the watcher raced): the next annotator that finds the run done clears
    the dead writer's partial node and keeps the complete one; a live writer's is kept."""
    import socket
    import subprocess
    import sys

    (uid,) = ramps(tiled_client, 1, seed=71)
    model = load_model(mlflow_store.champion)
    assert annotate_run(tiled_client, uid, model).status == "written"  # K1, complete
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    now = datetime.now(UTC)
    lease = {"since": now.isoformat(), "expires": (now + timedelta(minutes=5)).isoformat()}
    container = tiled_client[uid].base["specflow"]
    container.create_container(K1_R2, metadata={
        "status": "partial", "model_name": PHASE_MODEL,
        "writer": {"id": "killed", "host": socket.gethostname(), "pid": dead.pid, **lease}})
    live = node_key(PHASE_MODEL, 1, revision=3)
    container.create_container(live, metadata={
        "status": "partial", "model_name": PHASE_MODEL,
        "writer": {"id": "elsewhere", "host": "another-host", "pid": 1, **lease}})
    result = annotate_run(tiled_client, uid, model)
    assert result.status == "skipped", result
    left = complete_nodes(tiled_client, uid)
    assert K1_R2 not in left and left[K1]["status"] == "complete"
    assert left[live]["status"] == "partial"  # another host's writer, its lease running


def test_two_names_with_one_key_do_not_collide(tiled_client, phase_registry, mlflow_store):
    import mlflow
    from mlflow.tracking import MlflowClient

    source = MlflowClient().get_model_version(PHASE_MODEL, phase_registry.versions[0]).source
    dotted = mlflow.register_model(source, "twin.model").version
    under = mlflow.register_model(source, "twin_model").version
    (uid,) = ramps(tiled_client, 1, seed=72)
    first = annotate_run(tiled_client, uid, load_model(f"models:/twin.model/{dotted}"))
    second = annotate_run(tiled_client, uid, load_model(f"models:/twin_model/{under}"))
    assert first.node == "twin_model-v1" and first.status == "written"
    assert second.node == "twin_model-v1-r2" and second.status == "written", second
    nodes = complete_nodes(tiled_client, uid)
    assert nodes["twin_model-v1"]["model_name"] == "twin.model"
    assert nodes["twin_model-v1-r2"]["model_name"] == "twin_model"


def test_nodes_of_the_previous_layout_are_read_and_never_rewritten(tiled_client, mlflow_store):
    """Catalogs annotated before spec version 3 hold containers (three arrays + the table):
    they still count as done and read back the same way."""
    import pandas as pd

    from specflow.annotate import read_labels

    (uid,) = ramps(tiled_client, 1, seed=49)
    model = load_model(mlflow_store.champion)
    run = tiled_client[uid]
    old = run.base.create_container("specflow").create_container(
        K1, metadata={"status": "complete", "model_name": PHASE_MODEL,
                      "summary": {"n_curves": 20, "status": "complete",
                                  "timestamp": "2026-01-01T00:00:00+00:00"}})
    table = pd.DataFrame({"seq_num": np.arange(1, 21), "time": np.arange(20.0),
                          "pressure": np.linspace(0, 30, 20),
                          "label": np.repeat(np.array([0, 1, 2], np.int8), [8, 2, 10]),
                          "p0": np.ones(20, np.float32), "p1": np.zeros(20, np.float32),
                          "p2": np.zeros(20, np.float32), "ood_score": np.zeros(20, np.float32)})
    old.write_array(table["label"].to_numpy(), key="label")
    old.write_table(table, key="phases")
    result = annotate_run(tiled_client, uid, model)
    assert result.node == K1 and "restored from existing node" in result.reason  # not rewritten
    assert set(tiled_client[uid].base["specflow"]) == {K1}
    labels = read_labels(tiled_client[uid], K1)
    np.testing.assert_array_equal(labels["label"].values, table["label"].to_numpy())
    assert labels["probabilities"].shape == (20, 3)
    with pytest.raises(KeyError):
        read_labels(tiled_client[ramps(tiled_client, 1, seed=50)[0]])


def test_a_node_created_without_its_rows_is_replaced(tiled_client, mlflow_store):
    """A writer that died between creating its table node and writing the rows leaves a
    node with no data file; deleting it makes Tiled answer 500, then 404 to the retry."""
    import pandas as pd
    from tiled.structures.core import StructureFamily
    from tiled.structures.data_source import DataSource
    from tiled.structures.table import TableStructure

    (uid,) = ramps(tiled_client, 1, seed=51)
    model = load_model(mlflow_store.champion)
    container = tiled_client[uid].base.create_container("specflow")
    frame = pd.DataFrame({"label": np.zeros(3, np.int8)})
    container.new(StructureFamily.table,
                  [DataSource(structure=TableStructure.from_pandas(frame),
                              structure_family=StructureFamily.table)],
                  key=K1, metadata={"status": "partial", "model_name": PHASE_MODEL})
    result = annotate_run(tiled_client, uid, model)
    assert result.status == "written" and "abandoned" in result.reason, result
    node = tiled_client[uid].base["specflow"][K1_R2]
    assert node.metadata["status"] == "complete" and len(node.read()) == 20


def test_a_try_that_finds_no_server_is_not_repeated_when_a_quick_check_agrees():
    import socket

    import httpx

    from specflow.annotate.retry import with_retries
    from specflow.ingest.catalog import unreachable

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{s.getsockname()[1]}/api/v1/"
    calls = []

    def request() -> None:
        calls.append(1)
        httpx.get(uri, timeout=1.0)

    policy = RetryPolicy(attempts=3, base_delay=0.01, deadline=10.0, grace=0.0)
    with pytest.raises(httpx.ConnectError):
        with_retries(request, policy)
    assert len(calls) == 3  # without the check: every try spent on a server that is gone
    calls.clear()
    with pytest.raises(httpx.ConnectError):
        with_retries(request, policy, reachable=lambda: unreachable(uri, 1.0) is None)
    assert len(calls) == 1


def test_a_forced_batch_resumed_by_name_does_not_force_its_finished_runs_again(
        tiled_client, mlflow_store):
    model = load_model(mlflow_store.champion)
    uids = ramps(tiled_client, 3, seed=74)
    annotate(tiled_client, uids, model=model)  # revision 1 of each
    first = annotate(tiled_client, uids[:2], model=model, force=True, batch="b-1")
    assert [r.status for r in first] == ["written", "written"]  # stopped after two runs
    resumed = annotate(tiled_client, uids, model=model, force=True, batch="b-1")
    assert [r.status for r in resumed] == ["written"] * 3
    revisions = [sorted(complete_nodes(tiled_client, uid)) for uid in uids]
    assert all(len(keys) == 2 for keys in revisions), revisions  # r1 and r2, never r3
    again = annotate(tiled_client, uids[:1], model=model, force=True)  # a new forced batch
    assert len(complete_nodes(tiled_client, uids[0])) == 3
    assert again[0].status == "written"


def test_ctrl_c_finishes_the_run_in_flight_and_says_how_to_resume(tiled_server, mlflow_store,
                                                                   tmp_path):
    """SIGINT used to exit 130 with no word, one run's summary left stale."""
    import os
    import signal
    import subprocess
    import sys

    from specflow.servers.processes import popen_interruptible

    client = tiled_server.client()
    uids = ramps(client, 12, seed=80)
    sample = client[uids[0]].metadata["start"]["sample"]
    env = {**os.environ, "TILED_API_KEY": tiled_server.api_key, "COLUMNS": "200"}
    proc = popen_interruptible(
        [sys.executable, "-m", "specflow.cli", "annotate", "--tiled-uri", tiled_server.api_uri,
         "--query", f"start.sample={sample}", "--model", mlflow_store.champion,
         "--workdir", str(tmp_path)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 180
    while not any("specflow" in client[uid].base for uid in uids):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "interrupted after" in out and "run the same command again to resume" in out
    touched = [uid for uid in uids if "specflow" in client[uid].base]
    assert 0 < len(touched) < len(uids), out
    for uid in touched:  # the run in flight was finished: complete, its summary published
        nodes = complete_nodes(client, uid)
        assert [m["status"] for m in nodes.values()] == ["complete"]
        assert client[uid].metadata["specflow"]["latest"] == K1


def test_retries_count_tries_and_report_each_retry_once():
    import httpx

    from specflow.annotate.retry import with_retries

    calls, retried = [], []

    def down() -> None:
        calls.append(1)
        raise httpx.ConnectError("refused")

    with pytest.raises(httpx.ConnectError):
        with_retries(down, RetryPolicy(attempts=3, base_delay=0.01, deadline=10.0),
                     on_retry=lambda n, exc: retried.append(n))
    assert len(calls) == 3 and retried == [1, 2]  # no "retry 3/2" after the last try
    calls.clear()
    with pytest.raises(ValueError):  # not transient: one try
        with_retries(lambda: calls.append(1) or (_ for _ in ()).throw(ValueError("bad")),
                     RetryPolicy(attempts=3, base_delay=0.01))
    assert len(calls) == 1


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_killed_writer_its_parent_has_not_reaped_counts_as_dead():
    from specflow.annotate.writer import _pid_alive

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert _pid_alive(child.pid)
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _pid_alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _pid_alive(child.pid)  # a zombie until the wait below: its lease is dead
        assert child.poll() is None or child.returncode == -signal.SIGKILL
    finally:
        child.kill()
        child.wait()
    assert not _pid_alive(child.pid)
