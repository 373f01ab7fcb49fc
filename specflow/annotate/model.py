"""A registered phase model loaded together with its registry provenance."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch

from specflow.learn.data import wavelength_of
from specflow.learn.decode import Decoded, DecoderConfig, decode
from specflow.registry.tracking import DEFAULT_MODEL_URI
from specflow.registry.uris import parse_model_uri, resolve_version

__all__ = ["LoadedModel", "load_model", "parse_model_uri", "resolve_version"]

_PREDICT_LOCK = threading.Lock()


@dataclass
class LoadedModel:
    """A loaded pyfunc plus where it came from (the version the alias held at load time).

    ``threads`` caps torch's intra-op threads while predicting (restored afterwards): on a
    shared 2-core machine, torch's default 2 threads were up to 50x slower than 1.
    """

    pyfunc: Any
    name: str
    version: str
    alias: str | None
    run_id: str | None
    threads: int | None = 1

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def provenance(self) -> dict[str, Any]:
        return {"name": self.name, "version": int(self.version), "alias": self.alias,
                "run_id": self.run_id, "uri": self.uri}

    def _decoder_settings(self) -> dict[str, Any] | None:
        meta = getattr(getattr(self.pyfunc, "metadata", None), "metadata", None) or {}
        return (meta.get("specflow") or {}).get("decoder")

    @property
    def decoder(self) -> Any:
        """The model's sequence decoder settings (a DecoderConfig), from its metadata."""
        settings = self._decoder_settings()
        return DecoderConfig(**settings) if settings else DecoderConfig()

    def label_run(self, ds: Any) -> tuple[pd.DataFrame, Decoded | None]:
        """The model's output for one run (a canonical Dataset), decoded once along it:
        the per-curve frame of :meth:`predict` with ``label`` decoded by the model's own
        decoder, and that :class:`~specflow.learn.decode.Decoded` run (None for a model
        without decoder: ``label`` is then the per-curve argmax, as the pyfunc gives it)."""
        prediction = self.predict(ds["intensity"].values, ds["two_theta"].values, None,
                                  wavelength_of(ds))
        if not self._decoder_settings():
            return prediction, None
        probabilities = prediction[["p0", "p1", "p2"]].to_numpy(dtype=np.float32)
        decoded = decode(probabilities, ds["pressure"].values.astype(float), self.decoder)
        prediction["label"] = decoded.labels
        return prediction, decoded

    def predict(self, curves: np.ndarray, two_theta: np.ndarray,
                pressure: np.ndarray | None = None,
                wavelength: float | None = None) -> pd.DataFrame:
        """label (decoded along the run when ``pressure`` is given), label_raw, p0..p2,
        ood_score per curve (float32 input, any 2θ grid; Q-grid models need ``wavelength``)."""
        params: dict[str, Any] = {"two_theta": np.asarray(two_theta, dtype=float).tolist()}
        if pressure is not None:
            params["pressure"] = np.asarray(pressure, dtype=float).tolist()
        if wavelength is not None:
            params["wavelength"] = float(wavelength)
        x = np.ascontiguousarray(curves, dtype=np.float32)
        if self.threads is None:
            return self.pyfunc.predict(x, params=params)
        with _PREDICT_LOCK:
            before = torch.get_num_threads()
            torch.set_num_threads(self.threads)
            try:
                return self.pyfunc.predict(x, params=params)
            finally:
                torch.set_num_threads(before)


def load_model(uri: str = DEFAULT_MODEL_URI, backend: str | None = None) -> LoadedModel:
    """Load a registered phase model, pinned to the version its alias points at now.

    Parameters
    ----------
    uri : str
        ``models:/<name>@<alias>`` or ``models:/<name>/<version>`` in the MLflow registry
        of ``MLFLOW_TRACKING_URI``.
    backend : str, optional
        ``"onnx"``: run the encoder with ONNX Runtime (``specflow[onnx]``; CPU); default
        PyTorch. benchmarks/speed.py measured no whole-path gain from it on a 2-core CPU.

    Returns
    -------
    LoadedModel
        The pyfunc with its name, version, alias and run id (the provenance written to
        Tiled); ``predict(curves, two_theta, pressure, wavelength)`` returns a DataFrame.

    Examples
    --------
    >>> model = load_model("models:/specflow-phase@champion")  # doctest: +SKIP
    """
    name, version, alias, run_id = resolve_version(uri)
    config = {"backend": backend} if backend else None
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/{version}", model_config=config)
    predictor = getattr(pyfunc.unwrap_python_model(), "predictor", None)
    if backend and getattr(predictor, "backend", "torch") != backend:
        raise ValueError(f"{name} version {version} was logged before inference backends "
                         f"could be chosen; it runs with PyTorch only (log it again for "
                         f"backend {backend!r})")
    return LoadedModel(pyfunc, name, version, alias, run_id)
