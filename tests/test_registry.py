"""MLflow registry workflow against a real SQLite store: log, load fresh, register, gate."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from specflow.data.io import write_netcdf
from specflow.learn.data import wavelength_of
from specflow.learn.decode import decode
from specflow.registry.phase_model import PhasePredictor
from specflow.registry.promotion import (
    PromotionRefused,
    alias_history,
    evaluate_model,
    log_phase_model,
    promote,
    register,
)
from specflow.registry.tracking import configure_tracking, ensure_experiment
from specflow.simulator.simulate import simulate_run

pytestmark = [pytest.mark.slow]

NAME = "specflow-phase-test"


@pytest.fixture(scope="module")
def runs(small_phase_model):
    return small_phase_model[1]


@pytest.fixture(scope="module")
def trained(small_phase_model):
    return small_phase_model[0]


@pytest.fixture
def store(tmp_path, monkeypatch):
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    uri = configure_tracking(tmp_path / "work")
    ensure_experiment("specflow-test")
    yield uri
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID"):
        os.environ.pop(var, None)  # configure_tracking/MLflow exported them
    mlflow.set_tracking_uri(None)


def constant(bundle, phase):
    """A copy whose head always predicts ``phase``: a deliberately poor model."""
    out = copy.deepcopy(bundle)
    classes = out["classes"].tolist()
    out["head_weight"] = torch.zeros_like(out["head_weight"])
    out["head_bias"] = torch.zeros(len(classes))
    out["head_bias"][classes.index(phase)] = 10.0
    return out


def log_version(bundle, tags=None):
    with mlflow.start_run():
        info = log_phase_model(bundle)
    return str(register(info.model_uri, NAME, tags or {}).version)


def test_predictor_regrids_scores_ood_and_rejects_bad_input(trained, runs):
    predictor = PhasePredictor(trained)
    ds = runs[0]
    x, tth, lam = ds["intensity"].values, ds["two_theta"].values, wavelength_of(ds)
    out = predictor.predict(x, tth, lam, ds["pressure"].values)
    assert out["probabilities"].shape == (160, 3)
    assert np.allclose(out["probabilities"].sum(1), 1, atol=1e-5)
    truth = ds["label"].values
    assert (out["label"] == truth).mean() > 0.7
    assert out["decoded"] is not None and np.all(np.diff(out["label"]) >= 0)  # one up-sweep
    # the Tiled summary re-decodes the reported probabilities with the bundle's decoder
    again = decode(out["probabilities"], ds["pressure"].values, predictor.decoder).labels
    assert np.array_equal(again, out["label"])
    assert np.array_equal(out["label_raw"], out["probabilities"].argmax(1))
    noise = np.random.default_rng(0).random((20, x.shape[1])).astype(np.float32)
    ood = predictor.predict(noise, tth, lam)["ood_score"]
    assert np.median(ood) > 3 * np.median(out["ood_score"])
    with pytest.raises(ValueError, match="pass their 2θ grid"):
        predictor.predict(x)
    with pytest.raises(ValueError, match="wavelength"):
        predictor.predict(x, tth)
    gaps = x.copy()
    gaps[:, 100:140] = np.nan  # a detector module gap: filled, the labels barely move
    assert (predictor.predict(gaps, tth, lam)["label_raw"] == out["label_raw"]).mean() > 0.9
    bad = x.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="inf"):
        predictor.predict(bad, tth, lam)


def test_no_stray_mlruns_and_store_under_workdir(store, tmp_path, trained):
    assert store.startswith("sqlite:///") and str(tmp_path / "work") in store
    log_version(trained)
    assert not (tmp_path / "mlruns").exists()
    assert any((tmp_path / "work" / "mlflow" / "artifacts").rglob("bundle.pt"))


def test_champion_loads_in_fresh_process(store, trained, runs, tmp_path):
    version = log_version(trained)
    promote(NAME, version, "champion", runs)
    runs[0].to_netcdf(tmp_path / "fe.nc", engine="h5netcdf")
    script = textwrap.dedent(f"""
        import json, time, mlflow, numpy as np, xarray as xr
        mlflow.set_tracking_uri({store!r})
        model = mlflow.pyfunc.load_model("models:/{NAME}@champion")
        ds = xr.open_dataset({str(tmp_path / "fe.nc")!r}, engine="h5netcdf")
        x = ds["intensity"].values.astype(np.float32)
        out = model.predict(x, params={{"two_theta": ds["two_theta"].values.tolist(),
                                        "pressure": ds["pressure"].values.tolist(),
                                        "wavelength": float(ds.attrs["wavelength"])}})
        print(json.dumps({{"columns": list(out.columns), "labels": out["label"].tolist()}}))
        try:
            model.predict(x.astype(np.float64))
        except Exception as err:
            print("REJECTED", type(err).__name__)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-2])
    assert result["columns"] == ["label", "label_raw", "p0", "p1", "p2", "ood_score",
                                 "pressure"]
    truth = runs[0]["label"].values
    assert (np.array(result["labels"]) == truth).mean() > 0.7
    assert lines[-1].startswith("REJECTED")  # the float32 signature is enforced


def test_promotion_gate_refuses_worse_and_accepts_better(store, trained, runs):
    client = MlflowClient()
    v1 = log_version(constant(trained, 0), {"method": "rrmoco"})  # majority class: mediocre
    v2 = log_version(constant(trained, 1))  # the thin "during" class: worse

    v3 = log_version(trained)
    scores = {v: evaluate_model(f"models:/{NAME}/{v}", runs) for v in (v1, v2, v3)}
    assert scores[v2]["precision"] < scores[v1]["precision"] < scores[v3]["precision"]

    first = promote(NAME, v1, "champion", runs)
    assert first["passed"] and first["incumbent"] is None
    with pytest.raises(PromotionRefused, match=f"version {v2} not promoted to 'champion'"):
        promote(NAME, v2, "champion", runs)
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == v1
    refused = client.get_model_version(NAME, v2).tags
    assert refused["gate.champion.result"] == "refused"
    assert refused["gate.champion.vs_version"] == v1

    promote(NAME, v3, "champion", runs)
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == v3
    tags = client.get_model_version(NAME, v3).tags
    assert tags["gate.champion.result"] == "passed"
    assert float(tags["gate.champion.precision"]) >= float(tags["gate.champion.vs_precision"])
    assert client.get_model_version(NAME, v1).tags["champion.replaced_by"] == v3
    assert [h["version"] for h in alias_history(NAME, "champion")] == [v1, v3]
    assert client.get_model_version(NAME, v1).tags["method"] == "rrmoco"

    # a second alias is independent of the first
    promote(NAME, v2, "challenger", runs)
    assert str(client.get_model_version_by_alias(NAME, "challenger").version) == v2


def test_classifier_round_trips_through_the_registry(store, runs):
    """The pyfunc serves exactly the notebook object: log a PhaseClassifier, register it,
    and both the pyfunc and load_classifier give the classifier's own predictions."""
    import specflow
    from specflow.registry.classifier import load_classifier, log_classifier

    fe = runs[0]
    lab = fe["label"].where(np.arange(fe.sizes["curve"]) % 10 == 0)
    clf = specflow.PhaseClassifier(method="raw").fit(fe, labels=lab)
    with mlflow.start_run():
        info = log_classifier(clf)
    version = str(register(info.model_uri, "notebook-model").version)
    promote("notebook-model", version, "champion", [fe], force=True)
    other = runs[1]
    expected = clf.predict(other)
    again = load_classifier("models:/notebook-model@champion")
    got = again.predict(other)
    assert again.method == "raw" and isinstance(again, specflow.PhaseClassifier)
    assert np.array_equal(got["label"].values, expected["label"].values)
    np.testing.assert_allclose(got["probabilities"].values, expected["probabilities"].values,
                               atol=1e-6)
    served = mlflow.pyfunc.load_model("models:/notebook-model@champion").predict(
        other["intensity"].values.astype(np.float32),
        params={"two_theta": other["two_theta"].values.tolist(),
                "wavelength": wavelength_of(other),
                "pressure": other["pressure"].values.tolist()})
    assert np.array_equal(served["label"].to_numpy(), expected["label"].values)
    np.testing.assert_allclose(served[["p0", "p1", "p2"]].to_numpy(),
                               expected["probabilities"].values, atol=1e-5)


def test_pipeline_command_tracks_registers_and_promotes(store, runs, tmp_path, cli):
    files = [str(write_netcdf(ds.isel(two_theta=slice(None, None, 4)), tmp_path / f"{i}.nc"))
             for i, ds in enumerate(runs)]
    # every given label trains the deployed probe, except an explicit hold-out
    data = [a for f in files for a in ("--data", f)]
    gate = write_netcdf(simulate_run("Fe", 120, seed=77), tmp_path / "gate.nc")
    cli(["pipeline", *data, "--method", "rrmoco", "--epochs", "1", "--device", "cpu",
               "--holdout", "0.25", "--name", "pipeline-model",
               "--eval-data", gate, "--workdir", str(tmp_path)])
    client = MlflowClient()
    mv = client.get_model_version_by_alias("pipeline-model", "champion")
    run = client.get_run(mv.run_id)
    assert run.data.tags["specflow.step"] == "pipeline"
    inputs = {k for k in run.data.tags if k.startswith("data.")}
    assert {k for k in inputs if not k.startswith(("data.content.", "data.uid."))} == {
        "data.0.nc", "data.1.nc"}
    assert {"data.content.0", "data.content.1"} <= inputs  # what the gate refuses
    assert "pretrain.loss" in run.data.metrics and run.data.metrics["probe_precision"] > 0.5
    labelled = sum(int((ds["label"].values >= 0).sum()) for ds in runs)
    held_out = sum(round(0.25 * int((ds["label"].values >= 0).sum())) for ds in runs)
    assert run.data.metrics["probe_n_labels"] == labelled - held_out
    assert run.data.params["probe.label_fraction"] == "all"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
    assert {"figures/pretrain_losses.png", "figures/embedding.png"} <= artifacts
    assert any(p.startswith("figures/contour_") for p in artifacts)
    assert mv.tags["gate.champion.result"] == "passed"
    assert {"data.0.nc", "data.1.nc", "specflow.version"} <= set(mv.tags)  # as `register`
    # the same run registered again through the CLI step becomes version 2
    out = cli(["register", "--probe-run", run.info.run_id, "--name", "pipeline-model",
                     "--workdir", str(tmp_path)])
    assert "registered pipeline-model version 2" in out


def test_pipeline_without_pretraining_registers_a_servable_model(store, runs, tmp_path, cli):
    files = [str(write_netcdf(ds, tmp_path / f"{i}.nc")) for i, ds in enumerate(runs)]
    gate = write_netcdf(simulate_run("FeO", 120, seed=78), tmp_path / "gate.nc")
    cli(["pipeline", "--data", files[0], "--data", files[1], "--method", "untrained",
               "--label-fraction", "0.2", "--name", "untrained-model",
               "--eval-data", gate, "--workdir", str(tmp_path)])
    mv = MlflowClient().get_model_version_by_alias("untrained-model", "champion")
    assert mv.tags["method"] == "untrained"
    model = mlflow.pyfunc.load_model("models:/untrained-model@champion")
    ds = runs[0]
    out = model.predict(ds["intensity"].values.astype(np.float32),
                        params={"two_theta": ds["two_theta"].values.tolist(),
                                "wavelength": wavelength_of(ds),
                                "pressure": ds["pressure"].values.tolist()})
    assert (out["label"].to_numpy() == ds["label"].values).mean() > 0.8


def test_the_gate_refuses_runs_the_model_was_trained_on(store, runs, tmp_path, cli):
    """A model gated on its own training runs would pass any gate: refused before training
    (pipeline, exit 2, one line) and at promotion (recorded training fingerprints)."""
    files = [write_netcdf(ds, tmp_path / f"{i}.nc") for i, ds in enumerate(runs)]
    out = cli(["pipeline", "--data", files[0], "--data", files[1], "--method", "raw",
               "--label-fraction", "0.2", "--name", "leaky", "--eval-data", files[1],
               "--workdir", str(tmp_path)], exit_code=2)
    assert "refused" in out and "is training run 1" in out
    assert len([line for line in out.splitlines() if line.strip()]) <= 3
    with pytest.raises(mlflow.exceptions.MlflowException):
        MlflowClient().get_registered_model("leaky")  # nothing was trained or registered
    gate = write_netcdf(simulate_run("Fe", 120, seed=79), tmp_path / "gate.nc")
    cli(["pipeline", "--data", files[0], "--data", files[1], "--method", "raw",
         "--label-fraction", "0.2", "--name", "leaky", "--eval-data", gate,
         "--workdir", str(tmp_path)])
    out = cli(["promote", "--version", "1", "--name", "leaky", "--eval-data", files[0],
               "--workdir", str(tmp_path)], exit_code=2)
    assert "is training run 0 of leaky version 1" in out


def test_onnx_backend_labels_like_torch(trained, runs):
    from specflow.models.export import OnnxEncoder

    eager, onnx = PhasePredictor(trained), PhasePredictor(trained, backend="onnx")
    assert isinstance(onnx.encoder, OnnxEncoder)
    for ds in runs:
        args = (ds["intensity"].values, ds["two_theta"].values, wavelength_of(ds),
                ds["pressure"].values)
        a, b = eager.predict(*args), onnx.predict(*args)
        assert np.array_equal(a["label"], b["label"])
        assert np.array_equal(a["label_raw"], b["label_raw"])
        np.testing.assert_allclose(b["probabilities"], a["probabilities"], atol=1e-5)
        np.testing.assert_allclose(b["ood_score"], a["ood_score"], rtol=1e-4)
    with pytest.raises(ValueError, match="unknown inference backend"):
        PhasePredictor(trained, backend="tensorrt")


def test_registered_model_loads_with_onnx_backend(store, trained, runs):
    from specflow.annotate.model import load_model

    version = log_version(trained)
    ds = runs[1]
    args = (ds["intensity"].values, ds["two_theta"].values, ds["pressure"].values,
            wavelength_of(ds))
    eager = load_model(f"models:/{NAME}/{version}")
    onnx = load_model(f"models:/{NAME}/{version}", backend="onnx")
    assert onnx.pyfunc.unwrap_python_model().predictor.backend == "onnx"
    assert eager.pyfunc.unwrap_python_model().predictor.backend == "torch"
    a, b = eager.predict(*args), onnx.predict(*args)
    assert a["label"].tolist() == b["label"].tolist()
    np.testing.assert_allclose(b[["p0", "p1", "p2"]], a[["p0", "p1", "p2"]], atol=1e-5)
    # a deployment-wide switch (watcher, Dask workers) through MLflow's own variable
    os.environ["MLFLOW_PYFUNC_INFERENCE_CONFIG"] = json.dumps({"backend": "onnx"})
    try:
        by_env = load_model(f"models:/{NAME}/{version}")
    finally:
        del os.environ["MLFLOW_PYFUNC_INFERENCE_CONFIG"]
    assert by_env.pyfunc.unwrap_python_model().predictor.backend == "onnx"
