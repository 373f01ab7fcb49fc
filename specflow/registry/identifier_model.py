"""The MLflow pyfunc serving a trained phase identifier (:mod:`specflow.learn.identify`).

Input: float32 curves (n, L) on the 2θ grid given as param ``two_theta`` (deg), with the beam
``wavelength`` (Å). Output: a long table, ``top`` rows per curve: ``curve``, ``rank``,
``name``, ``formula``, ``space_group``, ``score``.
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd

from specflow.data.preprocess import prepare_curves
from specflow.learn.identify import PhaseIdentifier


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
        x = prepare_curves(np.asarray(model_input, dtype=np.float32), two_theta,
                           self.identifier.preprocessing(), float(wavelength)).x
        top = int(params.get("top") or 5)
        rows = []
        for i, scores in enumerate(self.identifier.scores(x)):
            for rank, c in enumerate(self.identifier.rank(scores, top), 1):
                rows.append({"curve": i, "rank": rank, **c.as_dict()})
        return pd.DataFrame(rows)
