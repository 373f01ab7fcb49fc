"""Bulk annotation on a real Dask LocalCluster of worker processes (annotate.distributed)."""

from __future__ import annotations

import os
import uuid

import pytest
from conftest import record_ramp

from specflow.annotate import load_model, read_labels
from specflow.annotate.distributed import annotate_on_dask, dask_client, worker_state
from specflow.annotate.writer import node_key

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def cluster():
    with dask_client(workers=2) as client:
        yield client


def test_dask_workers_annotate_each_run_once_and_load_the_model_once(
        cluster, tiled_server, tiled_client, mlflow_store, make_docs, cli):
    from bluesky_tiled_plugins import TiledWriter

    sample = f"dask-{uuid.uuid4().hex[:6]}"
    uids = [record_ramp(tiled_client, stop=30.0, num=24, seed=60 + i, md={"sample": sample})
            for i in range(6)]
    docs, _, _ = make_docs(5, n_points=500, md={"sample": sample})
    for name, doc in docs:  # a run whose descriptor has no pressure key: bad data
        if name == "descriptor":
            doc["data_keys"].pop("pressure")
            doc["data_keys"].pop("pressure_setpoint")
        if name == "event":
            doc["data"].pop("pressure"), doc["data"].pop("pressure_setpoint")
            doc["timestamps"].pop("pressure"), doc["timestamps"].pop("pressure_setpoint")
    writer = TiledWriter(tiled_client)
    for name, doc in docs:
        writer(name, doc)
    bad = docs[0][1]["uid"]
    model = load_model(mlflow_store.champion)
    seen = []
    results = annotate_on_dask(tiled_server.api_uri, tiled_server.api_key, [*uids, bad, "nope"],
                               model, client=cluster, batch_size=2, rounds=2, backoff=0.1,
                               on_result=seen.append)
    assert [r.uid for r in results] == [*uids, bad, "nope"]  # given order, one each
    assert [r.status for r in results[:6]] == ["written"] * 6, [r.reason for r in results]
    assert results[6].status == "failed" and results[6].reason.startswith("validation:")
    assert results[7].status == "failed"  # no such run: retried, then reported
    assert sorted(r.uid for r in seen) == sorted(r.uid for r in results)
    key = node_key(model.name, model.version)
    pids = set()
    for uid in uids:
        run = tiled_client[uid]
        assert run.metadata["specflow"]["latest"] == key
        node = run.base["specflow"][key]
        pids.add(node.metadata["writer"]["pid"])
        assert read_labels(run)["label"].shape == (24,)
    assert os.getpid() not in pids  # written by the worker processes, not here
    states = cluster.run(worker_state)
    assert len(states) == 2
    assert all(s["loads"] <= 1 for s in states.values())  # one load per worker
    assert sum(s["loads"] for s in states.values()) >= 1
    again = annotate_on_dask(tiled_server.api_uri, tiled_server.api_key, uids, model,
                             client=cluster)
    assert {r.status for r in again} == {"skipped"}  # idempotent across workers
    assert all(s["loads"] <= 1 for s in cluster.run(worker_state).values())
    out = cli(["annotate", "--tiled-uri", tiled_server.api_uri, "--api-key",
               tiled_server.api_key, "--query", f"start.sample={sample}", "--workers", "2",
               "--force", "--model", mlflow_store.champion], exit_code=1)  # the bad run fails
    assert out.count("written") == 6 and "validation" in out
