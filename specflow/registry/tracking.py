"""Where MLflow writes: the user's tracking server, or an embedded SQLite store in a work dir."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR
from mlflow.tracking import MlflowClient
from mlflow.utils.logging_utils import MLFLOW_LOGGING_STREAM

from specflow.registry.names import (  # noqa: F401  (re-exported)
    DEFAULT_ALIAS,
    DEFAULT_EXPERIMENT,
    DEFAULT_MODEL_NAME,
    DEFAULT_MODEL_URI,
)


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
    mlflow.set_tracking_uri(uri)  # (MLflow exports it as MLFLOW_TRACKING_URI for children)
    mlflow.set_registry_uri(registry)  # (MLflow exports it as MLFLOW_REGISTRY_URI)
    return uri


@contextmanager
def quiet_mlflow() -> Iterator[None]:
    """Silence MLflow's own console output inside the block (its INFO log lines, "Successfully
    registered model" notices and artifact download bars), for applications that report
    progress themselves (the demo); everything is restored on exit."""
    was_enabled = MLFLOW_LOGGING_STREAM.enabled
    bar = os.environ.get(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name)
    MLFLOW_LOGGING_STREAM.enabled = False
    os.environ[MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name] = "false"
    try:
        yield
    finally:
        MLFLOW_LOGGING_STREAM.enabled = was_enabled
        if bar is None:
            os.environ.pop(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name, None)
        else:
            os.environ[MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name] = bar


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
