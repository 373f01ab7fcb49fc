"""Where MLflow writes: the user's tracking server, or an embedded SQLite store in a work dir."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

DEFAULT_EXPERIMENT = "specflow"
DEFAULT_MODEL_NAME = "specflow-phase"


def configure_tracking(workdir: str | Path = "work", must_exist: bool = False) -> str:
    """Use ``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<workdir>/mlflow/mlflow.db``.

    Returns the URI in force. The embedded store never writes a stray ``./mlruns``: its
    experiments get an explicit artifact location beside the database. ``must_exist``
    (commands that read models: register, promote, annotate, ...) refuses to create an
    empty embedded store, so a mistyped ``--workdir`` is an error, not a new store.
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        registry = os.environ.get("MLFLOW_REGISTRY_URI") or uri
    else:
        store = Path(workdir).resolve() / "mlflow"
        if must_exist and not (store / "mlflow.db").is_file():
            raise FileNotFoundError(
                2, f"no MLflow store in --workdir {Path(workdir)} (looked for "
                f"{store / 'mlflow.db'}); check --workdir or set MLFLOW_TRACKING_URI",
                str(store / "mlflow.db"))
        store.mkdir(parents=True, exist_ok=True)
        uri = registry = f"sqlite:///{store / 'mlflow.db'}"
        os.environ["MLFLOW_TRACKING_URI"] = uri  # child processes (mlflow run) agree
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(registry)  # (MLflow exports it as MLFLOW_REGISTRY_URI)
    return uri


def artifact_root(tracking_uri: str) -> str | None:
    """Artifact location for new experiments of a local SQLite store (None: server decides)."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        return (db.parent / "artifacts").as_uri()
    return None


def ensure_experiment(name: str = DEFAULT_EXPERIMENT) -> str:
    """Get or create ``name`` (with an explicit artifact location) and make it active."""
    client = MlflowClient()
    exp = client.get_experiment_by_name(name)
    if exp is None:
        location = artifact_root(mlflow.get_tracking_uri())
        exp_id = client.create_experiment(name, artifact_location=location)
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id
