"""Model registry workflow: log the pyfunc, register versions, promote by alias behind a gate.

Promotion moves an alias (``champion``, ``challenger``) to a version only when that version's
weighted precision and recall on a fixed labelled evaluation set are not worse than those of
the version holding the alias now. Gate numbers and alias history are kept as registry tags.
Aliases only; the deprecated stages are never used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
import xarray as xr
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec
from sklearn import metrics as skm

from specflow.data.fingerprint import TrainingRunInTest, run_fingerprint
from specflow.data.schema import (
    INTENSITY,
    LABEL,
    PRESSURE,
    TWO_THETA,
    energy_kev,
    energy_to_wavelength,
)
from specflow.learn.predictor import context_window
from specflow.registry.requirements import pinned_requirements
from specflow.simulator.simulate import simulate_run

PACKAGE_DIR = Path(__file__).resolve().parents[1]
MODEL_CODE = Path(__file__).with_name("model_code.py")


class PromotionRefused(RuntimeError):
    """The candidate scored worse than the alias holder on the evaluation set."""


def signature() -> ModelSignature:
    """float32 curves (n, L); params: their 2θ grid and pressures; per-curve outputs."""
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1))]),
        outputs=Schema([
            ColSpec("long", "label"),
            ColSpec("long", "label_raw"),
            ColSpec("float", "p0"),
            ColSpec("float", "p1"),
            ColSpec("float", "p2"),
            ColSpec("float", "ood_score"),
            ColSpec("double", "pressure", required=False),
        ]),
        params=ParamSchema([
            ParamSpec("two_theta", "double", [], (-1,)),
            ParamSpec("pressure", "double", [], (-1,)),
            ParamSpec("wavelength", "double", 0.0),
        ]),
    )


def pip_requirements(module: str = "specflow.registry.model_code") -> list[str]:
    """Pinned inference requirements of a model whose code is ``module``: every distribution
    the specflow code it can reach imports (:mod:`specflow.registry.requirements`)."""
    return list(pinned_requirements(module))


def log_phase_model(bundle: dict[str, Any], name: str = "model", method: str | None = None,
                    **kwargs: Any):
    """Log a bundle as a pyfunc model in the active run; returns MLflow's ModelInfo.

    ``method`` (how the bundle was made, e.g. ``untrained``) goes into the model's metadata.

    The specflow package is bundled as code, so the model loads in any process with the
    pinned requirements installed, specflow or not.
    """
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # the signature is explicit; MLflow's hints about type hints/examples do not apply
        warnings.filterwarnings("ignore", message=".*(type hints|input example).*")
        path = Path(tmp) / "bundle.pt"
        torch.save(bundle, path)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(MODEL_CODE),
            artifacts={"bundle": str(path)},
            code_paths=[str(PACKAGE_DIR)],
            signature=signature(),
            # overridable at load: mlflow.pyfunc.load_model(..., model_config={"backend":
            # "onnx"}) or the MLFLOW_PYFUNC_INFERENCE_CONFIG environment variable
            model_config={"backend": "torch"},
            pip_requirements=pip_requirements(),
            metadata={"specflow": {"format": bundle["format"], "method": method,
                                   "preprocessing": bundle.get("preprocessing"),
                                   "decoder": bundle.get("decoder"),
                                   "network": (bundle["network"]["arch"]
                                               if bundle.get("network") else None),
                                   "context_window": context_window(bundle)}},
            **kwargs,
        )


def dataset_fingerprint(datasets: Sequence[xr.Dataset]) -> str:
    """Short sha256 over curves, grids and labels: names an evaluation set exactly."""
    digest = hashlib.sha256()
    for ds in datasets:
        digest.update(np.ascontiguousarray(ds[INTENSITY].values).tobytes())
        digest.update(np.ascontiguousarray(ds[TWO_THETA].values).tobytes())
        if LABEL in ds:
            digest.update(np.ascontiguousarray(ds[LABEL].values).tobytes())
    return digest.hexdigest()[:16]


def default_evaluation_set() -> list[xr.Dataset]:
    """The fixed labelled gate set: one simulated Fe and one FeO run, seeds never trained on."""

    return [
        simulate_run("Fe", 240, seed=90_210, peak_counts=3000, run_uid="gate-Fe"),
        simulate_run("FeO", 240, seed=90_211, peak_counts=3000, run_uid="gate-FeO"),
    ]


def predict_dataset(model, ds: xr.Dataset):
    """Run a loaded pyfunc on a spectra Dataset as deployed: its grid, wavelength and
    pressures passed, so any grid and energy works and the labels are decoded along the run."""
    return model.predict(ds[INTENSITY].values.astype(np.float32), params=dataset_params(ds))


def dataset_params(ds: xr.Dataset) -> dict[str, Any]:
    """The pyfunc params of a spectra Dataset: 2θ grid, pressures, wavelength (when known)."""
    params: dict[str, Any] = {"two_theta": ds[TWO_THETA].values.astype(float).tolist(),
                              "pressure": ds[PRESSURE].values.astype(float).tolist()}
    with contextlib.suppress(KeyError):
        params["wavelength"] = energy_to_wavelength(energy_kev(ds))
    return params


def evaluate_model(model_uri: str, datasets: Sequence[xr.Dataset]) -> dict[str, float]:
    """Weighted precision/recall/accuracy of a registered model on labelled datasets."""

    model = mlflow.pyfunc.load_model(model_uri)
    truth, pred = [], []
    for ds in datasets:
        known = ds[LABEL].values >= 0
        truth.append(ds[LABEL].values[known])
        pred.append(predict_dataset(model, ds)["label"].to_numpy()[known])
    y, p = np.concatenate(truth), np.concatenate(pred)
    return {
        "precision": float(skm.precision_score(y, p, average="weighted", zero_division=0)),
        "recall": float(skm.recall_score(y, p, average="weighted", zero_division=0)),
        "accuracy": float(skm.accuracy_score(y, p)),
        "n": int(len(y)),
    }


def registration_tags(run_id: str) -> dict[str, str]:
    """Tags of a new model version, from the run that logged it (the same for `register`
    and `pipeline`): its data fingerprints and specflow version tags (``data.*``,
    ``specflow.*``), probe metrics, method and run id."""
    run = MlflowClient().get_run(run_id)
    tags = {k: v for k, v in run.data.tags.items() if k.startswith(("data.", "specflow."))}
    tags.update({k: f"{v:.6g}" for k, v in run.data.metrics.items() if k.startswith("probe_")})
    tags["method"] = (run.data.params.get("pretrain.method")
                      or run.data.params.get("probe.features", ""))
    tags["run_id"] = run_id
    return tags


def register(model_uri: str, name: str, tags: dict[str, Any] | None = None):
    """Create a new version of registered model ``name`` from ``model_uri`` with tags."""
    clean = {k: str(v) for k, v in (tags or {}).items()}
    version = mlflow.register_model(model_uri, name, tags=clean)
    return version


def alias_holder(name: str, alias: str):
    """The ModelVersion holding ``alias``, or None."""
    try:
        return MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def promote(
    name: str,
    version: str | int,
    alias: str = "champion",
    eval_datasets: Sequence[xr.Dataset] | None = None,
    tolerance: float = 0.0,
    force: bool = False,
) -> dict[str, Any]:
    """Move ``alias`` to ``version`` if it is not worse than the holder on the gate set.

    Records ``gate.<alias>.*`` tags on the candidate (its metrics, the holder's, the set's
    fingerprint, the verdict) and appends to the model's ``alias_history.<alias>`` tag.
    Raises :class:`PromotionRefused` (after recording the refusal) when the gate fails.
    """
    client = MlflowClient()
    version = str(version)
    datasets = list(eval_datasets) if eval_datasets is not None else default_evaluation_set()
    refuse_training_gate_runs(client.get_model_version(name, version).tags, datasets,
                              f"{name} version {version}")
    fingerprint = dataset_fingerprint(datasets)
    candidate = evaluate_model(f"models:/{name}/{version}", datasets)
    holder = alias_holder(name, alias)
    held = str(holder.version) if holder is not None else None
    incumbent = None
    if held is not None and held != version:
        incumbent = evaluate_model(f"models:/{name}/{held}", datasets)
    passed = force or incumbent is None or (
        candidate["precision"] >= incumbent["precision"] - tolerance
        and candidate["recall"] >= incumbent["recall"] - tolerance
    )
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    tags = {
        f"gate.{alias}.result": "passed" if passed else "refused",
        f"gate.{alias}.precision": f"{candidate['precision']:.6f}",
        f"gate.{alias}.recall": f"{candidate['recall']:.6f}",
        f"gate.{alias}.eval_set": fingerprint,
        f"gate.{alias}.eval_curves": str(candidate["n"]),
        f"gate.{alias}.time": now,
    }
    if incumbent is not None:
        tags.update({
            f"gate.{alias}.vs_version": held,
            f"gate.{alias}.vs_precision": f"{incumbent['precision']:.6f}",
            f"gate.{alias}.vs_recall": f"{incumbent['recall']:.6f}",
        })
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    result = {"name": name, "version": version, "alias": alias, "passed": passed,
              "candidate": candidate, "incumbent": incumbent,
              "incumbent_version": held, "eval_set": fingerprint}
    if not passed:
        raise PromotionRefused(
            f"{name} version {version} not promoted to '{alias}': on evaluation set "
            f"{fingerprint} it scores precision {candidate['precision']:.4f} / recall "
            f"{candidate['recall']:.4f}, below version {held}'s "
            f"{incumbent['precision']:.4f} / {incumbent['recall']:.4f}"
        )
    if held != version:
        client.set_registered_model_alias(name, alias, version)
        if held is not None:
            client.set_model_version_tag(name, held, f"{alias}.until", now)
            client.set_model_version_tag(name, held, f"{alias}.replaced_by", version)
        client.set_model_version_tag(name, version, f"{alias}.since", now)
        history = alias_history(name, alias)
        history.append({"version": version, "since": now})
        client.set_registered_model_tag(name, f"alias_history.{alias}", json.dumps(history))
    return result


def refuse_training_gate_runs(tags: dict[str, str], datasets: Sequence[xr.Dataset],
                              model: str) -> None:
    """Raise :class:`~specflow.data.fingerprint.TrainingRunInTest` when a gate run is one
    the model was trained on: its curves or ``run_uid`` are among the ``data.content.*`` /
    ``data.uid.*`` tags its training recorded."""
    content = {v: k for k, v in tags.items() if k.startswith("data.content.")}
    uids = {v: k for k, v in tags.items() if k.startswith("data.uid.")}
    for i, ds in enumerate(datasets):
        label = ds.attrs.get("run_uid") or ds.attrs.get("sample") or f"#{i}"
        hit = content.get(run_fingerprint(ds)[:32]) or uids.get(str(ds.attrs.get("run_uid")))
        if hit:
            raise TrainingRunInTest(
                f"gate run {label} is training run {hit.split('.', 2)[-1]} of {model}: a "
                "model cannot be gated on runs it was trained on; choose other gate runs")


def alias_history(name: str, alias: str) -> list[dict[str, str]]:
    """Which versions held ``alias`` and since when, oldest first."""
    tags = MlflowClient().get_registered_model(name).tags
    return json.loads(tags.get(f"alias_history.{alias}", "[]"))
