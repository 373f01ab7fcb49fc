"""Pretrained encoders in the MLflow registry: a long self-supervised run is done once,
registered as a version of ``specflow-encoder`` with the corpus it saw, and every probe
starts from it (``probe --pretrain-run models:/specflow-encoder@champion``) instead of
pretraining again.

The registered version holds the checkpoint (weights, configuration, grid, per-epoch
history) as a pyfunc that maps curves to features, so it loads offline from any MLflow store
the registry's artifacts were copied to. No gate guards an encoder's alias: what an encoder
is worth shows only under a head, in ``benchmarks/accuracy.py --ssl-checkpoint``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import ParamSchema, ParamSpec, Schema, TensorSpec

from specflow.learn.pretrain import PretrainResult, load_checkpoint
from specflow.registry.names import DEFAULT_ENCODER_NAME
from specflow.registry.promotion import PACKAGE_DIR, pip_requirements
from specflow.registry.tracking import ensure_experiment
from specflow.registry.uris import downloaded_model

ENCODER_CODE = Path(__file__).with_name("encoder_code.py")
#: SpecRRMoco pretrained at the published budget on the ten built-in transitions' corpus
#: (benchmarks/ssl_budget.py), slimmed (:func:`~specflow.learn.pretrain.slim_checkpoint`);
#: its recipe and per-epoch losses are inside
SHIPPED_ENCODER = Path(__file__).resolve().parents[1] / "models" / "weights" / "ssl" / \
    "rrmoco-10-transitions.pt"
EXPERIMENT = "specflow-encoder"
ARTIFACT = "checkpoint"
ARTIFACT_FILE = "encoder.pt"


def encoder_signature() -> ModelSignature:
    """float32 curves (n, L); params two_theta, wavelength; float32 features (n, 128)."""
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 128))]),
        params=ParamSchema([ParamSpec("two_theta", "double", [], (-1,)),
                            ParamSpec("wavelength", "double", 0.0)]),
    )


def register_encoder(checkpoint: str | Path, corpus: dict[str, Any] | None = None,
                     name: str = DEFAULT_ENCODER_NAME, alias: str | None = None) -> str:
    """Track the checkpoint of a pretraining run (its configuration, per-epoch losses and the
    corpus recipe it saw: ``corpus``, else the one saved in it), register it as a new
    version of ``name`` and, if asked, move ``alias`` to it; returns the version."""
    result = load_checkpoint(checkpoint)  # refuses what is not a pretraining checkpoint
    corpus = corpus if corpus is not None else result.corpus
    cfg = result.config
    epochs = len(result.history)
    ensure_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=f"encoder-{cfg.method}"):
        mlflow.log_params({f"pretrain.{k}": v for k, v in asdict(cfg).items()
                           if k not in ("extra", "preprocessing")})
        mlflow.log_param("pretrain.epochs_trained", epochs)
        for epoch, metrics in enumerate(result.history):
            mlflow.log_metrics({f"pretrain.{k}": float(v) for k, v in metrics.items()},
                               step=epoch)
        if corpus is not None:
            mlflow.log_dict(corpus, "corpus_recipe.json")
        with warnings.catch_warnings(), tempfile.TemporaryDirectory() as tmp:
            warnings.filterwarnings("ignore", message=".*(type hints|input example).*")
            copy = Path(tmp) / ARTIFACT_FILE  # one name, whatever the checkpoint was called
            shutil.copyfile(checkpoint, copy)
            info = mlflow.pyfunc.log_model(
                name="encoder", python_model=str(ENCODER_CODE),
                artifacts={ARTIFACT: str(copy)}, code_paths=[str(PACKAGE_DIR)],
                signature=encoder_signature(),
                pip_requirements=pip_requirements("specflow.registry.encoder_code"),
                metadata={"specflow": {"kind": "encoder", "method": cfg.method,
                                       "epochs_trained": epochs,
                                       "epochs_planned": int(cfg.epochs)}})
    tags = {"kind": "encoder", "method": cfg.method, "epochs_trained": str(epochs),
            "epochs_planned": str(cfg.epochs), "grid_points": str(len(result.grid))}
    if corpus is not None:
        tags["corpus"] = json.dumps(corpus, sort_keys=True)[:5000]
    version = str(mlflow.register_model(info.model_uri, name, tags=tags).version)
    if alias:
        MlflowClient().set_registered_model_alias(name, alias, version)
    return version


def load_registered_encoder(uri: str) -> PretrainResult:
    """The checkpoint behind ``models:/<name>@<alias>`` (or ``/<version>``), loaded with
    ``weights_only`` (no artifact code runs)."""
    with downloaded_model(uri) as local:
        return load_checkpoint(local / "artifacts" / ARTIFACT_FILE)
