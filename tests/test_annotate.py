"""Annotate stored runs end to end: RunEngine → TiledWriter → registered model → Tiled."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
from conftest import PHASE_MODEL, record_ramp

from specflow.annotate import (
    AnnotationError,
    annotate,
    annotate_run,
    find_phases,
    load_model,
    read_labels,
)
from specflow.annotate.summary import transition_summary
from specflow.annotate.writer import node_key
from specflow.ingest import run_to_dataset
from specflow.learn.data import wavelength_of

K1, K2 = node_key(PHASE_MODEL, 1), node_key(PHASE_MODEL, 2)


pytestmark = [pytest.mark.slow, pytest.mark.integration]

@pytest.fixture(scope="module")
def sample() -> str:
    return f"annot-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def runs(tiled_client, sample) -> dict[str, str]:
    """Fe compression, FeO up-and-down, and a ramp that stays below the transition."""
    md = {"sample": sample}
    return {
        "fe": record_ramp(tiled_client, stop=30.0, num=60, seed=1, md=md),
        "feo": record_ramp(tiled_client, material="FeO", stop=35.0, num=50, seed=2,
                           decompress_to=0.0, md=md),
        "flat": record_ramp(tiled_client, stop=8.0, num=30, seed=3, md=md),
    }


@pytest.fixture(scope="module")
def annotated(tiled_client, runs, phase_registry):
    import mlflow

    mlflow.set_tracking_uri(phase_registry.uri)
    mlflow.set_registry_uri(phase_registry.uri)
    results = annotate(tiled_client, list(runs.values()), model_uri=phase_registry.champion)
    return {r.uid: r for r in results}


def test_summary_finds_onset_end_and_reverse():
    p = np.concatenate([np.linspace(0, 30, 31), np.linspace(29, 0, 30)])
    truth = np.where(p < 13, 0, np.where(p < 16, 1, 2))
    truth[31:] = np.where(p[31:] > 10, 2, np.where(p[31:] > 7, 1, 0))
    probs = np.eye(3)[truth]
    s = transition_summary(p, probs)
    tr = s["transition"]
    assert s["direction"] == "compression+decompression" and s["phases"] == [0, 1, 2]
    assert tr["onset_pressure"] == pytest.approx(12.5) and tr["end_pressure"] == 15.5
    assert tr["onset_uncertainty"] == pytest.approx(0.5, abs=0.05)
    assert tr["reverse"]["onset_pressure"] == pytest.approx(10.5)
    assert tr["reverse"]["end_pressure"] == pytest.approx(7.5)
    flat = transition_summary(np.linspace(0, 8, 20), np.eye(3)[np.zeros(20, int)])
    assert not flat["transition"]["detected"] and flat["transition"]["onset_pressure"] is None
    blip = np.zeros(20, int)
    blip[5] = 2  # one curve called "after" far below the transition: decoded away
    ramp = np.linspace(0, 8, 20)
    assert not transition_summary(ramp, np.eye(3)[blip] * 0.9 + 0.1 / 3)["transition"][
        "detected"]
    down = np.linspace(30, 0, 31)
    back = transition_summary(down, np.eye(3)[np.where(down > 10, 2, np.where(down > 7, 1, 0))])
    assert back["direction"] == "decompression" and back["transition"]["reverse"] is None
    assert back["transition"]["onset_pressure"] == pytest.approx(10.5)
    assert back["transition"]["end_pressure"] == pytest.approx(7.5)


def test_a_summary_handed_to_another_name_never_returns_to_an_older_version():
    """A v2 published, then B took the summary over: pinning A v1 must not take it (it did:
    the rule compared with the name published last only); A's alias may, A v3 may."""
    from types import SimpleNamespace

    from specflow.annotate import publish_rule
    from specflow.annotate.writer import COMPLETE

    def model(name, version, alias=None):
        return SimpleNamespace(name=name, version=str(version), alias=alias)

    block = {"status": COMPLETE, "latest": "specflow-phaseB-annotate-v1",
             "model": {"name": "phaseB", "version": 1, "alias": "champion"},
             "nodes": {"specflow-phaseA-annotate-v2": {"model_name": "phaseA",
                                                       "model_version": 2},
                       "specflow-phaseB-annotate-v1": {"model_name": "phaseB",
                                                       "model_version": 1}}}
    assert "version 2 of phaseA was written" in publish_rule(block, model("phaseA", 1))
    assert publish_rule(block, model("phaseA", 1, alias="champion")) is None  # rolled back
    assert publish_rule(block, model("phaseA", 2)) is None
    assert publish_rule(block, model("phaseA", 3)) is None
    assert publish_rule(block, model("phaseC", 1)) is None


def test_end_to_end_labels_and_summary_beside_the_run(tiled_server, runs, annotated):
    from tiled.client import from_uri
    from tiled.client.container import Container
    from tiled.queries import Key

    assert {r.status for r in annotated.values()} == {"written"}
    client = from_uri(tiled_server.api_uri, api_key=tiled_server.api_key)  # a fresh client
    for name, uid in runs.items():
        run = client[uid]
        node = run.base["specflow"][K1]
        assert [(s.name, s.version) for s in node.specs] == [("SpecflowPhases", "3")]
        assert node.metadata["status"] == "complete"
        table = node.read()  # one table node: a plain Tiled client reads it
        assert list(table.columns) == ["seq_num", "time", "pressure", "label", "p0", "p1",
                                       "p2", "ood_score"]
        assert set(node.metadata["columns"]) == set(table.columns)
        labels = read_labels(run)  # the library's xarray view of the published node
        truth = run_to_dataset(run)["label"].values  # simulation ground truth from Tiled
        assert labels["label"].dtype == np.int8 and labels["label"].shape == truth.shape
        assert (labels["label"].values == truth).mean() > 0.75, name
        assert labels["probabilities"].dims == ("curve", "phase")
        np.testing.assert_allclose(labels["probabilities"].sum("phase"), 1, atol=1e-5)
        np.testing.assert_array_equal(labels["label"].values, table["label"].to_numpy())
        block = run.metadata["specflow"]
        assert block["latest"] == K1 and block["model"]["version"] == 1
        assert block["model"]["alias"] == "champion" and block["model"]["run_id"]
        assert block["specflow_version"] and block["timestamp"]
        assert run.metadata["stop"]["exit_status"] == "success"  # deep merge kept TiledWriter's
    fe = client[runs["fe"]].metadata["specflow"]["transition"]
    assert fe["detected"] and 11.0 < fe["onset_pressure"] < 16.0
    assert 0 < fe["onset_uncertainty"] < 2.0 and fe["onset_pressure"] < fe["end_pressure"]
    assert fe["onset_pressure_err"] == fe["onset_uncertainty"]
    ood = client[runs["fe"]].metadata["specflow"]["ood"]
    # a run like the training runs is in distribution, stored as a JSON boolean
    assert ood["flag"] is False and 0 <= ood["score"] < ood["threshold"] == 1.0
    not_flagged = Container.search(client, Key("specflow.ood.flag") == False)  # noqa: E712
    assert (runs["fe"] in set(not_flagged)) == (not ood["flag"])  # queryable verdict
    feo = client[runs["feo"]].metadata["specflow"]
    assert feo["direction"] == "compression+decompression" and feo["transition"]["reverse"]
    assert not client[runs["flat"]].metadata["specflow"]["transition"]["detected"]
    # the plain Tiled client finds the runs by onset pressure (generic search, see docs)
    hits = Container.search(client, Key("specflow.transition.onset_pressure") >= 10)
    hits = Container.search(hits, Key("start.sample") == run_sample(client, runs))
    assert set(hits) == {runs["fe"], runs["feo"]}


def run_sample(client, runs) -> str:
    return client[runs["fe"]].metadata["start"]["sample"]


def test_find_phases(tiled_client, runs, annotated, sample):
    # FeO's B1 -> rB1 distortion is subtle: the small test model places its onset 15-21 GPa
    both = find_phases(tiled_client, onset_between=(10, 22), sample=sample)
    assert [r.uid for r in both] == sorted([runs["fe"], runs["feo"]],
                                           key=lambda u: annotated_onset(tiled_client, u))
    assert {r.uid for r in find_phases(tiled_client, phase=2, sample=sample)} == {
        runs["fe"], runs["feo"]}
    assert find_phases(tiled_client, onset_between=(40, 50), sample=sample) == []
    flat = [r for r in find_phases(tiled_client, sample=sample) if r.uid == runs["flat"]]
    assert flat and flat[0].onset_pressure is None and 2 not in flat[0].phases


def test_find_phases_reads_every_page(tiled_client, runs, annotated, sample, monkeypatch):
    import specflow.annotate.query as query

    whole = find_phases(tiled_client, sample=sample)
    monkeypatch.setattr(query, "PAGE", 1)  # one run per request: three pages
    paged = find_phases(tiled_client, sample=sample)
    assert [r.uid for r in paged] == [r.uid for r in whole] and len(paged) == 3
    assert paged[0].sample == sample and paged[0].model_version == 1


def annotated_onset(client, uid) -> float:
    return client[uid].metadata["specflow"]["transition"]["onset_pressure"]


def test_idempotent_and_new_version_adds_node(tiled_client, runs, annotated, mlflow_store):
    from mlflow.tracking import MlflowClient

    uid = runs["fe"]
    v1 = load_model(mlflow_store.champion)
    again = annotate(tiled_client, [uid], model=v1)
    assert [r.status for r in again] == ["skipped"]
    v2 = load_model(f"models:/{mlflow_store.name}/{mlflow_store.versions[1]}")
    first = annotate_run(tiled_client, uid, v2)
    assert first.status == "written" and first.node == K2 == "specflow-phase-annotate-v2"
    run = tiled_client[uid]
    assert set(run.base["specflow"]) == {K1, K2}  # old node kept
    block = run.metadata["specflow"]
    assert block["latest"] == K2 and block["model"]["version"] == 2
    assert set(block["nodes"]) == {K1, K2}
    assert annotate_run(tiled_client, uid, v2).status == "skipped"
    # an older version never moves the published summary back ...
    back = annotate_run(tiled_client, uid, v1)
    assert back.status == "skipped" and "newer version 2" in back.reason
    assert tiled_client[uid].metadata["specflow"]["latest"] == K2
    # ... except through the alias it was published with, when that alias is rolled back
    registry = MlflowClient()
    registry.set_registered_model_alias(mlflow_store.name, "champion", mlflow_store.versions[1])
    try:
        assert annotate_run(tiled_client, uid, load_model(mlflow_store.champion)).status == \
            "written"
        assert tiled_client[uid].metadata["specflow"]["model"]["alias"] == "champion"
    finally:
        registry.set_registered_model_alias(mlflow_store.name, "champion",
                                            mlflow_store.versions[0])
    rolled_back = annotate_run(tiled_client, uid, load_model(mlflow_store.champion))
    assert rolled_back.status == "written" and "restored" in rolled_back.reason
    block = tiled_client[uid].metadata["specflow"]
    assert block["latest"] == K1 and block["model"]["version"] == 1
    assert set(tiled_client[uid].base["specflow"]) == {K1, K2}  # nothing deleted


def test_partial_node_is_repaired(tiled_client, runs, annotated, mlflow_store):
    uid = runs["flat"]
    model = load_model(f"models:/{mlflow_store.name}/{mlflow_store.versions[1]}")
    container = tiled_client[uid].base["specflow"]
    half = container.create_container(K2, metadata={"status": "partial"})  # no lease: dead
    half.write_array(np.zeros(3, dtype=np.int8), key="label")  # an interrupted write
    result = annotate_run(tiled_client, uid, model)
    assert result.status == "written" and "abandoned partial" in result.reason
    assert K2 not in tiled_client[uid].base["specflow"]  # dropped; its key is not reused
    node = tiled_client[uid].base["specflow"][f"{K2}-r2"]
    assert node.metadata["status"] == "complete" and len(node["label"].read()) == 30
    assert node.structure_family == "table"  # written in the current layout


def test_bad_run_is_reported_and_others_continue(tiled_client, runs, annotated, make_docs,
                                                  mlflow_store):
    from bluesky_tiled_plugins import TiledWriter

    docs, _, _ = make_docs(6, page_size=6, md={"sample": "broken"})
    for name, doc in docs:
        if name == "event_page":
            doc["data"]["pressure"] = [float("nan")] * 6
    writer = TiledWriter(tiled_client)
    for name, doc in docs:
        writer(name, doc)
    bad = docs[0][1]["uid"]
    results = annotate(tiled_client, [bad, runs["fe"]], model_uri=mlflow_store.champion)
    assert results[0].status == "failed" and "missing pressure" in results[0].reason
    assert results[1].status in {"skipped", "written"}
    assert "specflow" not in tiled_client[bad].metadata


def test_wrong_api_key_gives_clear_error(tiled_server, runs, mlflow_store, cli):
    client = tiled_server.client()
    client.context.api_key = "not-the-key"
    model = load_model(mlflow_store.champion)
    with pytest.raises(AnnotationError, match="401 unauthorized.*API key"):
        annotate(client, [runs["fe"]], model=model)
    out = cli(["annotate", "--tiled-uri", tiled_server.api_uri, "--api-key", "nope",
               "--run", runs["fe"], "--model", mlflow_store.champion], exit_code=2)
    text = " ".join(out.split())
    assert "401 unauthorized" in text and "Invalid API key" in text


def test_missing_api_key_is_one_line_naming_the_option(tiled_server, cli, monkeypatch):
    monkeypatch.delenv("TILED_API_KEY", raising=False)
    out = cli(["phases", "--tiled-uri", tiled_server.api_uri], exit_code=2)
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    assert "--api-key" in lines[0] and "TILED_API_KEY" in lines[0]
    assert "from_uri" not in out


def test_cli_annotate_by_query_and_phases_table(tiled_server, runs, annotated, sample,
                                                mlflow_store, tmp_path, cli):
    env = {"TILED_API_KEY": tiled_server.api_key}
    out = cli([
        "annotate", "--tiled-uri", tiled_server.api_uri, "--query", f"start.sample={sample}",
        "--model", f"models:/{mlflow_store.name}/1", "--workdir", tmp_path], env=env)
    assert out.count("skipped") + out.count("written") == 3
    out = cli(["phases", "--tiled-uri", tiled_server.api_uri,
               "--onset-between", "10", "22", "--sample", sample], env=env)
    assert runs["fe"] in out and runs["feo"] in out
    assert runs["flat"] not in out and "±" in out


def test_training_data_from_tiled_by_uid_and_query(tiled_server, runs, sample):
    from specflow.registry.steps import load_tiled

    by_query = load_tiled(tiled_server.api_uri, tiled_server.api_key,
                          query=[f"start.sample={sample}"])
    assert sorted(by_query.names) == sorted(runs.values())
    assert by_query.fingerprints[runs["fe"]] == f"tiled:{runs['fe']}"
    assert all("label" in ds for ds in by_query.datasets)  # simulation truth travels along
    by_uid = load_tiled(tiled_server.api_uri, tiled_server.api_key, runs=[runs["fe"]],
                        query=[f"start.sample={sample}"])
    assert by_uid.names[0] == runs["fe"] and len(by_uid.names) == 3  # no duplicates
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        load_tiled(tiled_server.api_uri, tiled_server.api_key, query=["start.sample"])


def test_cli_suggest_labels_picks_least_certain_unlabelled(small_phase_model, mlflow_store,
                                                           tmp_path, cli):
    _, runs = small_phase_model
    fe = runs[0].copy(deep=True)
    fe["label"][:80] = -1  # the scientist has labelled the second half only
    path = tmp_path / "fe.nc"
    fe.to_netcdf(path, engine="h5netcdf")
    cli(["suggest-labels", "--data", path, "-n", "5", "--model", mlflow_store.champion,
         "--workdir", tmp_path, "--json", tmp_path / "s.json"])
    got = json.loads((tmp_path / "s.json").read_text())["suggestions"]
    assert len(got) == 5 and all(s["curve"] < 80 for s in got)
    margins = [s["margin"] for s in got]
    assert margins == sorted(margins)
    probs = load_model(mlflow_store.champion).predict(
        fe["intensity"].values, fe["two_theta"].values, fe["pressure"].values,
        wavelength_of(fe))[["p0", "p1", "p2"]].to_numpy()[:80]
    top2 = np.sort(probs, axis=1)[:, -2:]
    all_margins = np.sort(top2[:, 1] - top2[:, 0])
    assert np.allclose(margins, all_margins[:5], atol=1e-5)  # the 5 least certain of the 80
    bad = cli(["suggest-labels", "--data", tmp_path / "nope.nc"], exit_code=2)
    assert "no such file" in bad


def test_cli_label_writes_what_a_scientist_takes_away(small_phase_model, mlflow_store,
                                                      tmp_path, cli):
    import pandas as pd

    from specflow.annotate.summary import transition_summary
    from specflow.data.io import read_spectra

    _, runs = small_phase_model
    fe = runs[0].drop_vars("label")
    fe.to_netcdf(tmp_path / "fe.nc", engine="h5netcdf")
    out = cli(["label", "--data", tmp_path / "fe.nc", "--model", mlflow_store.champion,
               "--workdir", tmp_path, "--out", tmp_path / "res", "--curves", "xy"])
    assert "fe" in out and "onset" in out
    table = pd.read_csv(tmp_path / "res" / "fe" / "labels.csv")
    model = load_model(mlflow_store.champion)
    expected = model.predict(fe["intensity"].values, fe["two_theta"].values,
                             fe["pressure"].values, wavelength_of(fe))
    assert np.array_equal(table["label"].to_numpy(), expected["label"].to_numpy())
    assert set(table["phase"]) <= {"before", "during", "after"}
    summary = json.loads((tmp_path / "res" / "fe" / "summary.json").read_text())
    want = transition_summary(fe["pressure"].values,
                              expected[["p0", "p1", "p2"]].to_numpy(), model.decoder)
    assert summary["transition"]["onset_pressure"] == pytest.approx(
        want["transition"]["onset_pressure"])
    assert summary["model"]["version"] == int(model.version)
    back = read_spectra(tmp_path / "res" / "fe" / "curves")  # the exported curves read back
    assert np.allclose(back["pressure"], fe["pressure"], atol=1e-4)
    assert np.allclose(back["two_theta"], fe["two_theta"], atol=1e-5)
    assert back.attrs["wavelength"] == pytest.approx(wavelength_of(fe), rel=1e-5)
    runs_table = pd.read_csv(tmp_path / "res" / "summary.csv")
    assert runs_table["run"].tolist() == ["fe"] and runs_table["curves"][0] == fe.sizes["curve"]
    bad = cli(["label", "--data", tmp_path / "fe.nc", "--out", tmp_path / "r2", "--curves",
               "tiff"], exit_code=2)
    assert "use xy or fxye" in bad


def test_a_run_is_decoded_once_and_as_the_served_model_decodes_it(small_phase_model,
                                                                 mlflow_store):
    from specflow.annotate.summary import transition_summary

    _, runs = small_phase_model
    model = load_model(mlflow_store.champion)
    for ds in runs:
        prediction, decoded = model.label_run(ds)
        served = model.predict(ds["intensity"].values, ds["two_theta"].values,
                               ds["pressure"].values, wavelength_of(ds))
        assert decoded is not None
        assert np.array_equal(prediction["label"].to_numpy(), served["label"].to_numpy())
        again = transition_summary(ds["pressure"].values,
                                   served[["p0", "p1", "p2"]].to_numpy(), model.decoder)
        once = transition_summary(ds["pressure"].values,
                                  prediction[["p0", "p1", "p2"]].to_numpy(), decoded=decoded)
        assert once["transition"] == again["transition"]


def test_the_published_copy_is_patched_by_path_not_by_a_stale_diff():
    """A copy computed against one state and applied to a newer one still sets exactly the
    published block and keeps every listing (a diff of the cached copy patches lists by
    index and can leave [0, 2, 2] where [0, 2] was published)."""
    import jsonpatch

    from specflow.annotate.analyzer import _absolute_patch

    seen = {"start": {"uid": "u"}, "specflow": {"latest": "m-v1", "phases": [0],
                                                 "nodes": {"m-v1": {"v": 1}}}}
    server = {"start": {"uid": "u"}, "specflow": {"latest": "m-v2", "phases": [0, 1, 2],
                                                   "nodes": {"m-v1": {"v": 1}, "m-v2": {"v": 2}}}}
    block = {"latest": "m-v3", "phases": [0, 2], "truth": None}
    ops = _absolute_patch(seen, block, {"nodes": {"m-v3": {"v": 3}}})
    result = jsonpatch.apply_patch(server, ops)["specflow"]
    assert result["phases"] == [0, 2] and result["latest"] == "m-v3" and result["truth"] is None
    assert set(result["nodes"]) == {"m-v1", "m-v2", "m-v3"}
    first = _absolute_patch({"start": {}}, block, {"nodes": {"m-v3": {"v": 3}}})
    assert jsonpatch.apply_patch({"start": {}}, first)["specflow"]["nodes"] == {"m-v3": {"v": 3}}
