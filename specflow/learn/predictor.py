"""The deployable phase model as plain tensors (a *bundle*) and the predictor that runs it.

One ``torch.save``-able dict of tensors and plain values (loaded with ``weights_only=True``)
holds everything inference needs: the preprocessing (:class:`~specflow.data.preprocess.
Preprocessing`) and grid, the frozen encoder (none: the probe reads the curves themselves),
the linear probe, the sequence decoder's settings and the out-of-distribution reference.
:class:`PhasePredictor` runs it: prepare → encode → probe → softmax → decode along the run.
The MLflow pyfunc (:mod:`specflow.registry.phase_model`) serves exactly this.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.covariance import LedoitWolf

from specflow.data.preprocess import Preprocessing, prepare_curves
from specflow.learn.decode import Decoded, DecoderConfig, decode
from specflow.learn.supervised import network_outputs
from specflow.models.convsc import ConvSCEncoder, FusedConvSC, inference_batch_size
from specflow.models.export import onnx_encoder
from specflow.models.supervised import ARCHITECTURES, build_network, fold_batch_norms

BUNDLE_FORMAT = "specflow-phase-bundle/2"
LEGACY_FORMAT = "specflow-phase-bundle/1"  # 2θ grid, min–max only, no decoder
N_CLASSES = 3
OOD_THRESHOLD = 1.0  # a run is out of distribution when its median curve score exceeds this
OOD_MARGIN = 1.5  # score 1 = this × the largest held-out training run's median distance
#: How the encoder runs: PyTorch (eager, BatchNorm folded) or ONNX Runtime (``specflow[onnx]``)
BACKENDS = ("torch", "onnx")
ONNX_BATCH_SIZE = 64  # curves per ONNX Runtime call: 8–64 within noise (benchmarks/speed.py)


def encoder_kwargs(encoder: torch.nn.Module) -> dict[str, int]:
    """Constructor arguments that rebuild a :class:`ConvSCEncoder` of the same shape."""
    return {
        "pool_len": encoder.embed[0].in_features,
        "channels": encoder.conv2[0].out_channels,
        "dim": encoder.dim,
        "heads": encoder.spatial_attn.num_heads,
    }


def build_bundle(
    encoder: torch.nn.Module | None,
    probe: Any,
    grid: np.ndarray,
    train_features: np.ndarray,
    preprocessing: Preprocessing | None = None,
    decoder: DecoderConfig | None = None,
    groups: np.ndarray | None = None,
) -> dict[str, Any]:
    """Everything inference needs, as tensors and plain values.

    ``probe`` is a :class:`specflow.learn.probe.LinearProbe`; ``grid`` the model grid (Q or
    2θ points, as ``preprocessing`` says; default: the legacy 2θ min–max); ``decoder`` the
    sequence decoder (None: per-curve argmax). ``train_features`` (N, D) fix the
    out-of-distribution reference: Mahalanobis distance with Ledoit–Wolf shrinkage, scaled by
    :func:`ood_scale` so that a new run like the training runs scores below 1.
    ``groups`` (N,) names each curve's run for that calibration.
    """
    temperature = float(getattr(probe, "temperature", 1.0))
    bundle: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "preprocessing": (preprocessing or Preprocessing.legacy()).to_dict(),
        "decoder": (asdict(decoder.undoing(temperature)) if decoder is not None else None),
        "encoder_kwargs": encoder_kwargs(encoder) if encoder is not None else None,
        "encoder_state": ({k: v.detach().cpu() for k, v in encoder.state_dict().items()}
                          if encoder is not None else None),
        **head_tensors(probe),
        "grid": torch.tensor(np.array(grid, dtype=np.float64)),
        **ood_reference(train_features, groups),
    }
    return bundle


def build_network_bundle(
    trained: Any,
    grid: np.ndarray,
    train_features: np.ndarray,
    preprocessing: Preprocessing,
    decoder: DecoderConfig | None = None,
    groups: np.ndarray | None = None,
) -> dict[str, Any]:
    """The bundle of an end-to-end supervised network
    (:class:`specflow.learn.supervised.TrainedNetwork`): architecture name, constructor
    arguments and weights instead of encoder + probe; ``train_features`` are the network's
    own features of the training curves (out-of-distribution reference). Optional entries
    ``logit_scale`` / ``logit_bias`` (3,) recalibrate its log-probabilities (a corpus
    network adapted to hand labels)."""
    net = trained.network
    return {
        "format": BUNDLE_FORMAT,
        "preprocessing": preprocessing.to_dict(),
        "decoder": asdict(decoder) if decoder is not None else None,
        "network": {"arch": trained.arch, "kwargs": dict(trained.arch_kwargs),
                    "state": {k: v.detach().cpu() for k, v in net.state_dict().items()}},
        "temperature": 1.0,
        "classes": torch.arange(N_CLASSES),
        "grid": torch.tensor(np.array(grid, dtype=np.float64)),
        **ood_reference(train_features, groups),
    }


def head_tensors(probe: Any) -> dict[str, Any]:
    """A :class:`~specflow.learn.probe.LinearProbe` as bundle entries."""
    return {
        "head_weight": probe.classifier.linear.weight.detach().cpu(),
        "head_bias": probe.classifier.linear.bias.detach().cpu(),
        "temperature": float(getattr(probe, "temperature", 1.0)),
        "feature_mean": torch.as_tensor(probe.mean, dtype=torch.float32),
        "feature_std": torch.as_tensor(probe.std, dtype=torch.float32),
        "classes": torch.as_tensor(np.asarray(probe.classes, dtype=np.int64)),
    }


def context_window(bundle: dict[str, Any]) -> int:
    """How many consecutive curves the bundle's model reads together (0: curve by curve)."""
    spec = bundle.get("network")
    if not spec or ARCHITECTURES[spec["arch"]].context == "curve":
        return 0
    return int(spec["kwargs"].get("window", 1))


def ood_reference(train_features: np.ndarray, groups: np.ndarray | None = None
                  ) -> dict[str, Any]:
    """Out-of-distribution reference of a bundle: Ledoit–Wolf location and precision of the
    training features, and the distance that maps to score 1 (:func:`ood_scale`)."""

    train_features = np.asarray(train_features, dtype=np.float64)
    lw = LedoitWolf().fit(train_features)
    return {"ood_location": torch.as_tensor(lw.location_, dtype=torch.float32),
            "ood_precision": torch.as_tensor(lw.precision_, dtype=torch.float32),
            "ood_scale": ood_scale(train_features, groups)}


def _mahalanobis(lw: Any, x: np.ndarray) -> np.ndarray:
    centred = x - lw.location_
    return np.sqrt(np.clip(np.einsum("nd,de,ne->n", centred, lw.precision_, centred), 0, None))


def ood_scale(features: np.ndarray, groups: np.ndarray | None = None,
              margin: float = OOD_MARGIN) -> float:
    """Distance that maps to OOD score 1.

    With two or more runs (``groups``), leave one run out: fit the reference on the others,
    take the held-out run's median curve distance, and scale the largest such median by
    ``margin`` — a new in-distribution run then scores ≈ 1/margin, while the in-sample
    distances of the final reference (fitted on every run) are smaller still. With one run,
    the in-sample 99th percentile times ``margin`` (optimistic: flags more new runs).
    """

    features = np.asarray(features, dtype=np.float64)
    runs = np.unique(groups) if groups is not None else np.array([0])
    if len(runs) >= 2:
        held_out = []
        for r in runs:
            inside = groups != r
            lw = LedoitWolf().fit(features[inside])
            held_out.append(float(np.median(_mahalanobis(lw, features[~inside]))))
        value = margin * max(held_out)
    else:
        value = margin * float(np.quantile(_mahalanobis(LedoitWolf().fit(features), features),
                                           0.99))
    return value if value > 0 else 1.0


#: Curves per forward pass of a corpus/supervised network on a CPU
NETWORK_CPU_BATCH = 16


class PhasePredictor:
    """Runs a bundle on raw curves of one run (or of a batch of curves).

    Curves are taken in the given order as one run: a sequence model (LSTM, Transformer,
    ConvSCT; :mod:`specflow.models.supervised`) reads them as one sequence, so its labels
    depend on the other curves passed with them. ``backend="onnx"`` runs a ConvSC encoder
    with ONNX Runtime (CPU; same labels, features equal to float rounding).
    """

    def __init__(self, bundle: dict[str, Any], device: str = "cpu", backend: str = "torch"):
        fmt = bundle.get("format")
        if fmt not in (BUNDLE_FORMAT, LEGACY_FORMAT):
            raise ValueError(f"not a specflow phase bundle (format {fmt!r})")
        if backend not in BACKENDS:
            raise ValueError(f"unknown inference backend {backend!r}; use one of {BACKENDS}")
        self.backend = backend
        self.device = torch.device(device)
        self.batch_size = inference_batch_size(self.device)
        self.encoder = self.network = None
        if bundle.get("network") is not None:
            spec = bundle["network"]
            self.network = build_network(spec["arch"], len(bundle["grid"]), **spec["kwargs"])
            self.network.load_state_dict(spec["state"])
            self.network = fold_batch_norms(self.network).to(self.device)
            # benchmarks/speed.py --sections default times other sizes
            self.batch_size = NETWORK_CPU_BATCH if self.device.type == "cpu" else 4096
            if backend != "torch":
                raise ValueError(f"backend {backend!r} runs ConvSC-encoder models; this one "
                                 f"is a supervised {spec['arch']} network: use 'torch'")
        elif bundle.get("encoder_state") is not None:
            encoder = ConvSCEncoder(**bundle["encoder_kwargs"], init="pytorch")
            encoder.load_state_dict(bundle["encoder_state"])
            # BatchNorm folded into the convolutions: same outputs, fewer memory passes
            self.encoder = FusedConvSC(encoder.eval()).eval().to(self.device)
            if backend == "onnx":  # the same encoder as an ONNX graph for the model's grid
                if self.device.type != "cpu":
                    raise ValueError("the ONNX backend runs on the CPU; use backend='torch' "
                                     f"on {self.device}")
                self.encoder = onnx_encoder(self.encoder, len(bundle["grid"]))
                self.batch_size = ONNX_BATCH_SIZE
        self.context_window = context_window(bundle)  # curves read together (0: one by one)
        self.grid = bundle["grid"].numpy()
        self.preprocessing = (Preprocessing.from_dict(bundle["preprocessing"])
                              if fmt == BUNDLE_FORMAT else Preprocessing.legacy())
        decoder = bundle.get("decoder")
        self.decoder = DecoderConfig(**decoder) if decoder else None
        b = {k: v.to(self.device) for k, v in bundle.items() if isinstance(v, torch.Tensor)}
        self.weight, self.bias = b.get("head_weight"), b.get("head_bias")
        self.logit_scale, self.logit_bias = b.get("logit_scale"), b.get("logit_bias")
        self.temperature = float(bundle.get("temperature", 1.0))
        self.mean, self.std = b.get("feature_mean"), b.get("feature_std")
        self.classes = bundle["classes"].numpy()
        self.ood_location, self.ood_precision = b["ood_location"], b["ood_precision"]
        self.ood_scale = float(bundle["ood_scale"])

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", backend: str = "torch"
             ) -> PhasePredictor:
        return cls(torch.load(Path(path), map_location="cpu", weights_only=True), device,
                   backend)

    def prepare(self, curves: np.ndarray, two_theta: np.ndarray | None,
                wavelength: float | None = None) -> np.ndarray:
        """Model input (n, G): the shared preprocessing onto the model's grid. Without
        ``two_theta`` the curves must already have the grid's length (legacy 2θ models)."""
        curves = np.asarray(curves, dtype=np.float32)
        if curves.ndim == 1:
            curves = curves[None]
        if two_theta is None or len(two_theta) == 0:
            if self.preprocessing.axis == "q" or curves.shape[1] != len(self.grid):
                raise ValueError(
                    f"curves have {curves.shape[1]} points but the model was trained on "
                    f"{len(self.grid)}; pass their 2θ grid as the 'two_theta' param"
                    + (" and the beam wavelength" if self.preprocessing.axis == "q" else "")
                )
            two_theta = self.grid
        two_theta = np.asarray(two_theta, dtype=float)
        if len(two_theta) != curves.shape[1]:
            raise ValueError(f"two_theta has {len(two_theta)} values, curves {curves.shape[1]}")
        return prepare_curves(curves, two_theta, self.preprocessing, wavelength, self.grid).x

    @torch.inference_mode()
    def features(self, x: np.ndarray, batch_size: int | None = None) -> torch.Tensor:
        """Encoder features of prepared curves (the curves themselves without an encoder;
        a supervised network's own features)."""
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if self.network is not None:
            _, h = network_outputs(self.network, x, batch_size=batch_size or self.batch_size,
                                   device=str(self.device))
            return torch.as_tensor(h, device=self.device)
        if self.encoder is None:
            return xt.to(self.device)
        bs = batch_size or self.batch_size
        parts = [self.encoder(xt[s : s + bs].to(self.device)) for s in range(0, len(xt), bs)]
        return torch.cat(parts) if parts else torch.zeros((0, len(self.mean)))

    @torch.inference_mode()
    def predict(
        self, curves: np.ndarray, two_theta: np.ndarray | None = None,
        wavelength: float | None = None, pressure: np.ndarray | None = None,
        batch_size: int | None = None,
    ) -> dict[str, Any]:
        """Per curve: ``label``, ``label_raw``, ``probabilities`` (n, 3), ``ood_score``.

        ``label_raw`` is the per-curve argmax; ``label`` is decoded along the run (in the
        given order) when the model has a decoder and ``pressure`` is given (``decoded``
        then holds the :class:`~specflow.learn.decode.Decoded` run), else equals
        ``label_raw``. ``batch_size`` defaults to
        :func:`~specflow.models.convsc.inference_batch_size`.
        """
        x = self.prepare(curves, two_theta, wavelength)
        if self.network is not None:
            p_cls, h_np = network_outputs(self.network, x, batch_size=batch_size or
                                          self.batch_size, device=str(self.device))
            h = torch.as_tensor(h_np, device=self.device)
            if self.logit_scale is not None:  # recalibrated to hand labels
                z = torch.log(torch.as_tensor(p_cls).clamp_min(1e-6))
                z = z * self.logit_scale.cpu() + self.logit_bias.cpu()
                p_cls = torch.softmax(z, 1).numpy()
        else:
            h = self.features(x, batch_size)
            logits = ((h - self.mean) / self.std) @ self.weight.T + self.bias
            p_cls = torch.softmax(logits / self.temperature, 1).cpu().numpy()  # calibrated
        c = h - self.ood_location
        ood = (torch.einsum("nd,de,ne->n", c, self.ood_precision, c).clamp_min(0).sqrt()
               / self.ood_scale).cpu().numpy().astype(np.float32)
        full = np.zeros((len(p_cls), N_CLASSES), dtype=np.float32)
        full[:, self.classes] = p_cls
        raw = full.argmax(1).astype(np.int64)
        decoded = self.decode(full, pressure)
        return {
            "label": decoded.labels if decoded is not None else raw,
            "label_raw": raw,
            "probabilities": full,
            "ood_score": ood,
            "decoded": decoded,
        }

    def decode(self, probabilities: np.ndarray, pressure: np.ndarray | None) -> Decoded | None:
        """The model's sequence decoding of one run (None without decoder or pressure)."""
        if self.decoder is None or pressure is None or len(pressure) == 0:
            return None
        pressure = np.asarray(pressure, dtype=float)
        if len(pressure) != len(probabilities):
            raise ValueError(f"pressure has {len(pressure)} values, {len(probabilities)} curves")
        return decode(probabilities, pressure, self.decoder)


def ood_verdict(scores: np.ndarray, threshold: float = OOD_THRESHOLD) -> dict[str, Any]:
    """Per-run out-of-distribution verdict from per-curve scores: the median against
    ``threshold`` (1 = :data:`OOD_MARGIN` × the largest median distance of a held-out
    training run, see :func:`ood_scale`)."""
    scores = np.asarray(scores, dtype=float)
    median = float(np.median(scores)) if scores.size else None
    return {"flag": bool(median is not None and median > threshold), "score": median,
            "threshold": threshold,
            "fraction_above_1": float((scores > 1).mean()) if scores.size else None}
