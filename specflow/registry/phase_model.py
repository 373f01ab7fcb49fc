"""The deployable phase model: preprocessing + frozen encoder + linear head + OOD score.

A *bundle* is one ``torch.save``-d dict of tensors and plain values (loaded with
``weights_only=True``); :class:`PhaseModel` is the MLflow pyfunc that serves it. The pyfunc
takes float32 curves (n, L) and optional params ``two_theta`` (the curves' 2θ grid; curves are
regridded onto the training grid) and ``pressure`` (echoed into the output), and returns a
DataFrame with ``label``, ``p0``..``p2`` and ``ood_score`` per curve.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch

BUNDLE_FORMAT = "specflow-phase-bundle/1"
N_CLASSES = 3


def encoder_kwargs(encoder: torch.nn.Module) -> dict[str, int]:
    """Constructor arguments that rebuild a :class:`ConvSCEncoder` of the same shape."""
    return {
        "pool_len": encoder.embed[0].in_features,
        "channels": encoder.conv2[0].out_channels,
        "dim": encoder.dim,
        "heads": encoder.spatial_attn.num_heads,
    }


def build_bundle(
    encoder: torch.nn.Module,
    probe: Any,
    grid: np.ndarray,
    train_features: np.ndarray,
) -> dict[str, Any]:
    """Everything inference needs, as tensors and plain values.

    ``probe`` is a :class:`specflow.learn.probe.LinearProbe`; its classes are spread onto the
    three phase columns (a probe that saw only some phases gives 0 probability to the rest).
    ``train_features`` (N, D) fix the out-of-distribution reference (Mahalanobis distance with
    Ledoit–Wolf shrinkage, scaled so the training set's 99th percentile is 1).
    """
    from sklearn.covariance import LedoitWolf

    lw = LedoitWolf().fit(train_features)
    centred = train_features - lw.location_
    dist = np.sqrt(np.einsum("nd,de,ne->n", centred, lw.precision_, centred))
    return {
        "format": BUNDLE_FORMAT,
        "encoder_kwargs": encoder_kwargs(encoder),
        "encoder_state": {k: v.detach().cpu() for k, v in encoder.state_dict().items()},
        "head_weight": probe.classifier.linear.weight.detach().cpu(),
        "head_bias": probe.classifier.linear.bias.detach().cpu(),
        "feature_mean": torch.as_tensor(probe.mean, dtype=torch.float32),
        "feature_std": torch.as_tensor(probe.std, dtype=torch.float32),
        "classes": torch.as_tensor(np.asarray(probe.classes, dtype=np.int64)),
        "grid": torch.tensor(np.array(grid, dtype=np.float64)),
        "ood_location": torch.as_tensor(lw.location_, dtype=torch.float32),
        "ood_precision": torch.as_tensor(lw.precision_, dtype=torch.float32),
        "ood_scale": float(np.quantile(dist, 0.99)) or 1.0,
    }


class PhasePredictor:
    """Runs a bundle: regrid → min–max → encoder → standardise → linear → softmax; plus OOD."""

    def __init__(self, bundle: dict[str, Any], device: str = "cpu"):
        from specflow.models.convsc import ConvSCEncoder, FusedConvSC, inference_batch_size

        if bundle.get("format") != BUNDLE_FORMAT:
            raise ValueError(f"not a specflow phase bundle (format {bundle.get('format')!r})")
        self.device = torch.device(device)
        self.batch_size = inference_batch_size(self.device)
        encoder = ConvSCEncoder(**bundle["encoder_kwargs"], init="pytorch")
        encoder.load_state_dict(bundle["encoder_state"])
        # BatchNorm folded into the convolutions: same outputs, fewer memory passes
        self.encoder = FusedConvSC(encoder.eval()).eval().to(self.device)
        self.grid = bundle["grid"].numpy()
        b = {k: v.to(self.device) for k, v in bundle.items() if isinstance(v, torch.Tensor)}
        self.weight, self.bias = b["head_weight"], b["head_bias"]
        self.mean, self.std = b["feature_mean"], b["feature_std"]
        self.classes = bundle["classes"].numpy()
        self.ood_location, self.ood_precision = b["ood_location"], b["ood_precision"]
        self.ood_scale = float(bundle["ood_scale"])

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> PhasePredictor:
        return cls(torch.load(Path(path), map_location="cpu", weights_only=True), device)

    def to_training_grid(self, curves: np.ndarray, two_theta: np.ndarray | None) -> np.ndarray:
        """Curves on the training grid; without ``two_theta`` the lengths must match."""
        curves = np.asarray(curves, dtype=np.float32)
        if curves.ndim == 1:
            curves = curves[None]
        if two_theta is None or len(two_theta) == 0:
            if curves.shape[1] != len(self.grid):
                raise ValueError(
                    f"curves have {curves.shape[1]} points but the model was trained on "
                    f"{len(self.grid)}; pass their 2θ grid as the 'two_theta' param"
                )
            return curves
        from specflow.data.preprocess import interp_curves

        two_theta = np.asarray(two_theta, dtype=float)
        if len(two_theta) != curves.shape[1]:
            raise ValueError(f"two_theta has {len(two_theta)} values, curves {curves.shape[1]}")
        return interp_curves(curves, two_theta, self.grid)

    @torch.inference_mode()
    def predict(
        self, curves: np.ndarray, two_theta: np.ndarray | None = None,
        batch_size: int | None = None,
    ) -> dict[str, np.ndarray]:
        """``label`` (n,), ``probabilities`` (n, 3), ``ood_score`` (n,) for raw curves.

        ``batch_size`` defaults to :func:`~specflow.models.convsc.inference_batch_size`: small
        batches on CPU, where they are several times faster than one large batch.
        """
        batch_size = batch_size or self.batch_size
        x = torch.from_numpy(self.to_training_grid(curves, two_theta))
        if not torch.isfinite(x).all():
            raise ValueError("curves contain NaN/inf values")
        probs, ood = [], []
        for s in range(0, len(x), batch_size):
            xb = x[s : s + batch_size].to(self.device)
            lo = xb.amin(1, keepdim=True)
            xb = (xb - lo) / (xb.amax(1, keepdim=True) - lo).clamp_min(1e-12)
            h = self.encoder(xb)
            logits = ((h - self.mean) / self.std) @ self.weight.T + self.bias
            probs.append(torch.softmax(logits, 1).cpu())
            c = h - self.ood_location
            ood.append((torch.einsum("nd,de,ne->n", c, self.ood_precision, c).clamp_min(0)
                        .sqrt() / self.ood_scale).cpu())
        p_cls = torch.cat(probs).numpy() if probs else np.zeros((0, len(self.classes)))
        full = np.zeros((len(p_cls), N_CLASSES), dtype=np.float32)
        full[:, self.classes] = p_cls
        return {
            "label": full.argmax(1).astype(np.int64),
            "probabilities": full,
            "ood_score": (torch.cat(ood).numpy() if ood else np.zeros(0)).astype(np.float32),
        }


class PhaseModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc serving a bundle logged as artifact ``bundle``."""

    def load_context(self, context) -> None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.predictor = PhasePredictor.load(context.artifacts["bundle"], device)

    def predict(self, context, model_input, params: dict | None = None) -> pd.DataFrame:
        params = params or {}
        if isinstance(model_input, pd.DataFrame):
            model_input = model_input.to_numpy(dtype=np.float32)
        out = self.predictor.predict(np.asarray(model_input), params.get("two_theta"))
        frame = pd.DataFrame({"label": out["label"]})
        for k in range(N_CLASSES):
            frame[f"p{k}"] = out["probabilities"][:, k]
        frame["ood_score"] = out["ood_score"]
        pressure = params.get("pressure")
        if pressure is not None and len(pressure):
            if len(pressure) != len(frame):
                raise ValueError(f"pressure has {len(pressure)} values, {len(frame)} curves")
            frame["pressure"] = np.asarray(pressure, dtype=float)
        return frame
