"""Live phase labels while a ramp runs: a Bluesky callback predicting each new curve."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from specflow.data.schema import PHASE_NAMES
from specflow.ingest.callback import SpectraCollector
from specflow.learn.data import wavelength_of

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LivePrediction:
    """The model's call on one curve, as soon as it arrived."""

    run_uid: str
    index: int  # position of the curve in the stream (0-based)
    pressure: float
    label: int
    probability: float  # of ``label``
    ood_score: float

    def line(self) -> str:
        name = PHASE_NAMES.get(self.label, "?")
        flag = "  [red]out of distribution[/]" if self.ood_score > 1 else ""
        return (f"#{self.index:<4d} {self.pressure:7.2f} GPa  [bold]{name:<6s}[/] "
                f"p={self.probability:.2f}{flag}")


Predict = Callable[[np.ndarray, np.ndarray, "float | None"], tuple[np.ndarray, ...]]


def context_window(model: Any) -> int:
    """How many curves of a run a model reads together (0: one curve at a time): a
    PhasePredictor's own, else the registered model's metadata."""
    if hasattr(model, "context_window"):
        return int(model.context_window)
    pyfunc = getattr(model, "pyfunc", model)
    meta = getattr(getattr(pyfunc, "metadata", None), "metadata", None) or {}
    return int((meta.get("specflow") or {}).get("context_window") or 0)


def _predict_fn(model: Any) -> Predict:
    """(curves, two_theta, wavelength) → (label, probabilities (n, 3), ood) for a predictor,
    a LoadedModel or a pyfunc; per-curve labels (a live stream is not decoded)."""
    if hasattr(model, "predict") and hasattr(model, "prepare"):  # PhasePredictor
        def run(x: np.ndarray, grid: np.ndarray, wavelength: float | None) -> tuple:
            out = model.predict(x, grid, wavelength)
            return out["label"], out["probabilities"], out["ood_score"]
        return run
    if hasattr(model, "pyfunc"):  # LoadedModel (thread-capped predict)
        def run_loaded(x: np.ndarray, grid: np.ndarray, wavelength: float | None) -> tuple:
            frame = model.predict(x, grid, wavelength=wavelength)
            return (frame["label"].to_numpy(), frame[["p0", "p1", "p2"]].to_numpy(),
                    frame["ood_score"].to_numpy())
        return run_loaded
    pyfunc = model  # a loaded pyfunc

    def run_pyfunc(x: np.ndarray, grid: np.ndarray, wavelength: float | None) -> tuple:
        params = {"two_theta": np.asarray(grid, float).tolist()}
        if wavelength is not None:
            params["wavelength"] = float(wavelength)
        frame = pyfunc.predict(np.ascontiguousarray(x, dtype=np.float32), params=params)
        return (frame["label"].to_numpy(), frame[["p0", "p1", "p2"]].to_numpy(),
                frame["ood_score"].to_numpy())
    return run_pyfunc


class LivePhaseMonitor:
    """Subscribe to a RunEngine (``RE.subscribe(monitor)``); predicts per update batch.

    Built on :class:`specflow.ingest.SpectraCollector`: every accepted event or page is one
    batch through the model. A sequence model (:func:`context_window` > 0) reads each new
    curve with the curves received just before it — live, a transductive model's label is
    provisional: annotating the finished run also gives it the curves after. Each curve's
    :class:`LivePrediction` goes to ``on_prediction``
    and, with a ``console``, to one rich line. :attr:`predictions` keeps them per run.
    """

    def __init__(self, model: Any, *, stream: str = "primary", console: Any = None,
                 on_prediction: Callable[[LivePrediction], Any] | None = None) -> None:

        self.collector = SpectraCollector(stream)
        self.collector.on_update(self._on_update)
        self._predict = _predict_fn(model)
        self._context = context_window(model)
        self.console = console
        self.on_prediction = on_prediction
        self.predictions: dict[str, list[LivePrediction]] = {}
        self._grids: dict[str, tuple[np.ndarray, float | None]] = {}

    def __call__(self, name: str, doc: dict) -> None:
        self.collector(name, doc)

    def _grid(self, update: Any) -> tuple[np.ndarray, float | None]:
        if update.run_uid not in self._grids:  # first batch of the run: cheap copy
            ds = update.dataset
            self._grids[update.run_uid] = (ds["two_theta"].values, wavelength_of(ds))
        return self._grids[update.run_uid]

    def _on_update(self, update: Any) -> None:
        curves = np.asarray(update.intensity)
        n = len(curves)
        if self._context > 0:  # the new curves last, after their context
            label, probs, ood = (a[-n:] for a in self._predict(
                np.asarray(update.with_preceding(self._context - 1)), *self._grid(update)))
        else:
            label, probs, ood = self._predict(curves, *self._grid(update))
        out = self.predictions.setdefault(update.run_uid, [])
        for i in range(len(curves)):
            pred = LivePrediction(update.run_uid, update.start + i,
                                  float(update.pressure[i]), int(label[i]),
                                  float(probs[i, int(label[i])]), float(ood[i]))
            out.append(pred)
            if self.console is not None:
                self.console.print(pred.line())
            if self.on_prediction is not None:
                self.on_prediction(pred)

    def labels(self, run_uid: str) -> np.ndarray:
        """Labels predicted so far for ``run_uid``, in stream order."""
        return np.array([p.label for p in self.predictions.get(run_uid, [])], dtype=np.int8)
