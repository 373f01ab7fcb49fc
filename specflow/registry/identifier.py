"""The phase identifier in the MLflow registry: its own registered model name and alias."""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import asdict
from pathlib import Path

import mlflow
import numpy as np
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

from specflow.learn.identify import PhaseIdentifier
from specflow.registry.promotion import PACKAGE_DIR, pip_requirements
from specflow.registry.tracking import DEFAULT_ALIAS, ensure_experiment
from specflow.registry.uris import resolve_version

DEFAULT_IDENTIFIER_NAME = "specflow-identify"
IDENTIFIER_CODE = Path(__file__).with_name("identifier_code.py")
EXPERIMENT = "specflow-identify"


def identifier_signature() -> ModelSignature:
    """float32 curves (n, L); params two_theta, wavelength, top, pressure, elements; a
    ranked long table."""
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1))]),
        outputs=Schema([ColSpec("long", "curve"), ColSpec("long", "rank"),
                        ColSpec("string", "name"), ColSpec("string", "formula"),
                        ColSpec("string", "space_group"), ColSpec("double", "score")]),
        params=ParamSchema([ParamSpec("two_theta", "double", [], (-1,)),
                            ParamSpec("wavelength", "double", 0.0),
                            ParamSpec("top", "long", 5),
                            ParamSpec("pressure", "double", [], (-1,)),
                            ParamSpec("elements", "string", "")]),
    )


def log_identifier(ident: PhaseIdentifier, name: str = "identifier"):
    """Log a trained identifier as a pyfunc in the active run; returns MLflow's ModelInfo."""
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(type hints|input example).*")
        path = ident.save(Path(tmp) / "identifier.pt")
        return mlflow.pyfunc.log_model(
            name=name, python_model=str(IDENTIFIER_CODE), artifacts={"identifier": str(path)},
            code_paths=[str(PACKAGE_DIR)], signature=identifier_signature(),
            pip_requirements=pip_requirements(),
            metadata={"specflow": {"kind": "identifier", "method": ident.method,
                                   "library_version": ident.library_.version,
                                   "library_size": len(ident.library_)}})


def register_identifier(ident: PhaseIdentifier, metrics: dict[str, float] | None = None,
                        name: str = DEFAULT_IDENTIFIER_NAME, alias: str | None = DEFAULT_ALIAS
                        ) -> str:
    """Track a trained identifier (settings, metrics, library version), register it as a
    new version of ``name`` and point ``alias`` at it; returns the version."""
    ensure_experiment(EXPERIMENT)
    cfg = asdict(ident.config)
    with mlflow.start_run(run_name="identifier"):
        mlflow.log_params({f"identify.{k}": v for k, v in cfg.items() if k != "augmentation"})
        mlflow.log_params({"library.version": ident.library_.version,
                           "library.size": len(ident.library_),
                           "train.entries": len(ident.train_entries_)})
        mlflow.log_metrics({**(metrics or {}), "train_seconds": ident.train_seconds_})
        info = log_identifier(ident)
    tags = {"kind": "identifier", "library_version": ident.library_.version,
            **{k: f"{v:.4f}" for k, v in (metrics or {}).items()}}
    version = str(mlflow.register_model(info.model_uri, name, tags=tags).version)
    if alias:
        MlflowClient().set_registered_model_alias(name, alias, version)
    return version


def load_registered_identifier(uri: str) -> PhaseIdentifier:
    """The identifier behind ``models:/<name>@<alias>`` (or ``/<version>``), loaded with
    ``weights_only`` (no artifact code runs)."""
    name, version, _, _ = resolve_version(uri)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version}",
                                                         dst_path=tmp))
        return PhaseIdentifier.load(local / "artifacts" / "identifier.pt")
