"""The MLflow pyfunc serving a phase bundle (:mod:`specflow.learn.predictor`).

The pyfunc takes float32 curves (n, L) and params ``two_theta`` (the curves' 2θ grid, deg),
``wavelength`` (Å; Q-grid models need it) and ``pressure`` (per curve, in acquisition order:
the run is decoded along it and it is echoed into the output). It returns a DataFrame with
``label`` (decoded along the run when pressure is given), ``label_raw`` (per-curve argmax),
``p0``..``p2`` (per-curve probabilities) and ``ood_score`` per curve.
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch

from specflow.learn.predictor import (
    BUNDLE_FORMAT,
    N_CLASSES,
    PhasePredictor,
    build_bundle,
    encoder_kwargs,
)

__all__ = ["BUNDLE_FORMAT", "PhaseModel", "PhasePredictor", "build_bundle", "encoder_kwargs"]


class PhaseModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc serving a bundle logged as artifact ``bundle``."""

    def load_context(self, context) -> None:
        """Load the bundle on CUDA when there is one; ``model_config={"backend": "onnx"}``
        (``mlflow.pyfunc.load_model``) runs the encoder with ONNX Runtime on the CPU."""
        backend = (getattr(context, "model_config", None) or {}).get("backend", "torch")
        device = "cuda" if torch.cuda.is_available() and backend == "torch" else "cpu"
        self.predictor = PhasePredictor.load(context.artifacts["bundle"], device, backend)

    def predict(self, context, model_input: np.ndarray, params: dict | None = None
                ) -> pd.DataFrame:
        """Curves (n, L) float32 (a DataFrame is converted) → per-curve labels etc.

        ``np.ndarray`` is a type hint MLflow infers no schema from: the explicit signature
        (:func:`specflow.registry.promotion.signature`) stays the contract.
        """
        params = params or {}
        if isinstance(model_input, pd.DataFrame):
            model_input = model_input.to_numpy(dtype=np.float32)
        pressure = params.get("pressure")
        pressure = np.asarray(pressure, dtype=float) if pressure is not None and len(
            pressure) else None
        if pressure is not None and len(pressure) != len(model_input):
            raise ValueError(f"pressure has {len(pressure)} values, {len(model_input)} curves")
        wavelength = params.get("wavelength") or None
        out = self.predictor.predict(np.asarray(model_input), params.get("two_theta"),
                                     wavelength, pressure)
        frame = pd.DataFrame({"label": out["label"], "label_raw": out["label_raw"]})
        for k in range(N_CLASSES):
            frame[f"p{k}"] = out["probabilities"][:, k]
        frame["ood_score"] = out["ood_score"]
        if pressure is not None:
            frame["pressure"] = pressure
        return frame
