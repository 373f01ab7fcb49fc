"""The MLflow pyfunc serving a trained phase identifier (:mod:`specflow.identify.matching`).

Input: float32 curves (n, L) on the 2θ grid given as param ``two_theta`` (deg), with the beam
``wavelength`` (Å); optional params ``pressure`` (GPa per curve: matched within its
compression window) and ``elements`` (the sample's chemistry, e.g. ``"Fe,O"``). Output: a
long table, ``top`` rows per curve: ``curve``, ``rank``, ``name``, ``formula``,
``space_group``, ``score``.
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd

from specflow.data.preprocess import prepare_curves
from specflow.identify.matching import PhaseIdentifier


class IdentifierModel(mlflow.pyfunc.PythonModel):
    """Pyfunc around a saved :class:`PhaseIdentifier` (artifact ``identifier``)."""

    def load_context(self, context) -> None:
        self.identifier = PhaseIdentifier.load(context.artifacts["identifier"])

    def predict(self, context, model_input: np.ndarray, params: dict | None = None
                ) -> pd.DataFrame:
        """Curves (n, L) → the ``top`` library phases of each curve (see module docstring)."""
        params = params or {}
        if isinstance(model_input, pd.DataFrame):
            model_input = model_input.to_numpy(dtype=np.float32)
        two_theta, wavelength = params.get("two_theta"), params.get("wavelength") or None
        if not two_theta or wavelength is None:
            raise ValueError("the identifier needs params two_theta (deg) and wavelength (Å)")
        prepared = prepare_curves(np.asarray(model_input, dtype=np.float32), two_theta,
                                  self.identifier.preprocessing(), float(wavelength))
        pressure = params.get("pressure") or None
        if pressure is not None and len(pressure) != len(prepared.x):
            raise ValueError(f"param pressure has {len(pressure)} values for "
                             f"{len(prepared.x)} curves")
        top = int(params.get("top") or 5)
        scores = self.identifier.scores(prepared.x, prepared.covered, pressure)
        mask, _ = self.identifier.allowed(params.get("elements") or None)
        if mask is not None:
            scores[:, ~mask] = -np.inf
        rows = []
        for i, row in enumerate(scores):
            for rank, c in enumerate(self.identifier.rank(row, top), 1):
                rows.append({"curve": i, "rank": rank, **c.as_dict()})
        return pd.DataFrame(rows)
