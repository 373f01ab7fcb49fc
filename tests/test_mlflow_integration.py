"""Against real MLflow processes: an `mlflow server` on loopback and an MLproject entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from conftest import serve_mlflow
from mlflow.tracking import MlflowClient

from specflow.data.io import write_netcdf
from specflow.learn.probe import LinearProbe
from specflow.models.convsc import ConvSCEncoder
from specflow.models.heads import LinearClassifier
from specflow.registry.phase_model import build_bundle
from specflow.registry.promotion import log_phase_model, promote, register
from specflow.registry.tracking import ensure_experiment
from specflow.simulator.simulate import simulate_run

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def small_bundle(grid: np.ndarray):
    """An untrained but complete bundle: enough to exercise the server round trip."""
    torch.manual_seed(0)
    encoder = ConvSCEncoder(init="pytorch").eval()
    features = np.random.default_rng(0).normal(size=(64, 128))
    probe = LinearProbe(LinearClassifier(128, 3), np.zeros(128), np.ones(128), np.arange(3))
    return build_bundle(encoder, probe, grid, features)


@pytest.fixture
def mlflow_server(tmp_path):
    with serve_mlflow(tmp_path, f"sqlite:///{tmp_path / 'server.db'}") as url:
        yield url


def register_promote_and_load(url: str, tmp_path: Path) -> str:
    """Log, register and promote a model through the server at ``url``; load it back by
    alias and check its predictions; return the promoted version."""
    mlflow.set_tracking_uri(url)
    mlflow.set_registry_uri(url)
    ensure_experiment("server-test")
    ds = simulate_run("Fe", 40, seed=1, two_theta=np.linspace(5, 25, 800))
    with mlflow.start_run():
        info = log_phase_model(small_bundle(ds["two_theta"].values))
    version = str(register(info.model_uri, "server-model").version)
    promote("server-model", version, "champion", [ds])
    mv = MlflowClient().get_model_version_by_alias("server-model", "champion")
    assert str(mv.version) == version
    model = mlflow.pyfunc.load_model("models:/server-model@champion")
    out = model.predict(ds["intensity"].values.astype(np.float32))
    assert len(out) == 40 and set(out["label"]) <= {0, 1, 2}
    assert any((tmp_path / "artifacts").rglob("bundle.pt"))  # stored by the server
    assert not (tmp_path / "mlruns").exists()
    return version


def test_register_promote_and_load_through_mlflow_server(mlflow_server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    register_promote_and_load(mlflow_server, tmp_path)


def test_mlproject_pretrain_entry_point_runs_for_real(tmp_path, monkeypatch):
    data = write_netcdf(simulate_run("Fe", 64, seed=2, two_theta=np.linspace(5, 25, 1000)),
                        tmp_path / "fe.nc")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(uri)
    ensure_experiment("project-test")  # explicit artifact location, no ./mlruns
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("MLFLOW_EXPERIMENT_ID", None)  # set_experiment exports it; --experiment-name rules
    proc = subprocess.run(
        [sys.executable, "-m", "mlflow", "run", str(REPO / "mlflow_projects"), "-e", "pretrain",
         "-P", f"data={data}", "-P", "epochs=1", "-P", "device=cpu",
         "--env-manager", "local", "--experiment-name", "project-test"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = mlflow.search_runs(experiment_names=["project-test"], output_format="list")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.project.entryPoint"] == "pretrain"
    assert run.data.tags["data.fe.nc"]  # dataset fingerprint
    assert "pretrain.loss" in run.data.metrics
    assert run.data.params["pretrain.method"] == "rrmoco"
    names = {a.path for a in MlflowClient().list_artifacts(run.info.run_id, "checkpoint")}
    assert names == {"checkpoint/pretrain.pt"}
    assert not (tmp_path / "mlruns").exists()
    mlflow.set_tracking_uri(None)


def test_postgres_backed_mlflow_server_registers_promotes_and_serves(postgres, tmp_path,
                                                                     monkeypatch):
    """The facility deployment: tracking and registry in PostgreSQL (deploy/mlflow)."""
    monkeypatch.chdir(tmp_path)
    backend = postgres.create_database("mlflow")
    with serve_mlflow(tmp_path, backend) as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        version = register_promote_and_load(url, tmp_path)
    # the registry lives in PostgreSQL: the alias row is there, not in a local file
    rows = postgres.sql("mlflow", "SELECT name, alias, version FROM registered_model_aliases")
    assert rows.strip() == f"server-model|champion|{version}"
    assert not list(tmp_path.glob("*.db"))
