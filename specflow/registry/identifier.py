"""The phase identifier in the MLflow registry: its own registered model name and alias."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import xarray as xr
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

from specflow.identify.matching import PhaseIdentifier, segment_hits
from specflow.registry.names import DEFAULT_IDENTIFIER_NAME
from specflow.registry.promotion import (
    PACKAGE_DIR,
    PromotionRefused,
    alias_holder,
    dataset_fingerprint,
    pip_requirements,
)
from specflow.registry.tracking import DEFAULT_ALIAS, ensure_experiment
from specflow.registry.uris import downloaded_model
from specflow.simulator.simulate import simulate_family
from specflow.simulator.transitions import TRANSITIONS

IDENTIFIER_CODE = Path(__file__).with_name("identifier_code.py")
EXPERIMENT = "specflow-identify"
GATE_SEED = 90_300


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
            pip_requirements=pip_requirements("specflow.registry.identifier_code"),
            metadata={"specflow": {"kind": "identifier", "method": ident.method,
                                   "library_version": ident.library_.version,
                                   "library_size": len(ident.library_)}})


def register_identifier(ident: PhaseIdentifier, metrics: dict[str, float] | None = None,
                        name: str = DEFAULT_IDENTIFIER_NAME, alias: str | None = DEFAULT_ALIAS,
                        gate_runs: Sequence[xr.Dataset] | None = None, force: bool = False
                        ) -> str:
    """Track a trained identifier (settings, metrics, library version), register it as a
    new version of ``name`` and move ``alias`` to it behind the gate
    (:func:`promote_identifier`: raises :class:`PromotionRefused`, the version stays
    registered); returns the version."""
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
        promote_identifier(ident, name, version, alias, gate_runs, force=force)
    return version


def identifier_gate_set(curves: int = 120) -> list[xr.Dataset]:
    """The fixed gate set: one realistic simulated run of every built-in transition, with
    seeds used nowhere else (an identifier trains on library renders, never on runs)."""
    return [simulate_family(name, 1, n_curves=curves, seed=GATE_SEED + i)[0]
            for i, name in enumerate(sorted(TRANSITIONS))]


def score_on_runs(identifier: Any, runs: Sequence[xr.Dataset], elements: str | None = "auto"
                  ) -> dict[str, float]:
    """Over the true before/after segments of simulated ``runs`` (their ``material`` names
    the transition): the fraction whose true phase ``identifier`` ranks first (``top1``) and
    in the first five (``top5``), ranking only the sample's elements by default."""
    hits = [found for ds in runs for segment, found in segment_hits(
        identifier, ds, elements).items() if segment != "during"]
    if not hits:
        raise ValueError("the gate runs have no before/after segment to score")
    return {"top1": float(np.mean([h["top1"] for h in hits])),
            "top5": float(np.mean([h["top5"] for h in hits])), "segments": float(len(hits))}


def promote_identifier(ident: PhaseIdentifier, name: str, version: str, alias: str,
                       runs: Sequence[xr.Dataset] | None = None, tolerance: float = 0.0,
                       force: bool = False) -> dict[str, Any]:
    """Move ``alias`` to ``version`` (the registered ``ident``) if it names the gate runs'
    phases (:func:`score_on_runs`, top-1 then top-5) no worse than the alias holder; records
    ``gate.<alias>.*`` tags either way and raises :class:`PromotionRefused` when it fails."""
    client = MlflowClient()
    runs = list(runs) if runs is not None else identifier_gate_set()
    candidate = score_on_runs(ident, runs)
    holder = alias_holder(name, alias)
    held = str(holder.version) if holder is not None else None
    incumbent = None
    if held is not None and held != version:
        incumbent = score_on_runs(load_registered_identifier(f"models:/{name}/{held}"), runs)
    passed = force or incumbent is None or (
        candidate["top1"] >= incumbent["top1"] - tolerance
        and candidate["top5"] >= incumbent["top5"] - tolerance)
    tags = {f"gate.{alias}.result": "passed" if passed else "refused",
            f"gate.{alias}.top1": f"{candidate['top1']:.4f}",
            f"gate.{alias}.top5": f"{candidate['top5']:.4f}",
            f"gate.{alias}.eval_set": dataset_fingerprint(runs)}
    if incumbent is not None:
        tags |= {f"gate.{alias}.vs_version": held,
                 f"gate.{alias}.vs_top1": f"{incumbent['top1']:.4f}",
                 f"gate.{alias}.vs_top5": f"{incumbent['top5']:.4f}"}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    if not passed:
        raise PromotionRefused(
            f"{name} version {version} not promoted to '{alias}': on the gate runs it names "
            f"{candidate['top1']:.1%} of the segments first ({candidate['top5']:.1%} in the "
            f"top 5), below version {held}'s {incumbent['top1']:.1%} "
            f"({incumbent['top5']:.1%})")
    client.set_registered_model_alias(name, alias, version)
    return {"version": version, "passed": passed, "candidate": candidate,
            "incumbent": incumbent, "incumbent_version": held}


def load_registered_identifier(uri: str) -> PhaseIdentifier:
    """The identifier behind ``models:/<name>@<alias>`` (or ``/<version>``), loaded with
    ``weights_only`` (no artifact code runs)."""
    with downloaded_model(uri) as local:
        return PhaseIdentifier.load(local / "artifacts" / "identifier.pt")
