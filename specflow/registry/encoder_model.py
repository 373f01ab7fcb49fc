"""The MLflow pyfunc serving a self-supervised encoder (:mod:`specflow.learn.pretrain`).

Input: float32 curves (n, L) on the 2θ grid given as param ``two_theta`` (deg), with the beam
``wavelength`` (Å) when the encoder works on a Q grid. Output: float32 features (n, 128), the
frozen representation a probe or head is fitted on.
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd

from specflow.data.preprocess import prepare_curves
from specflow.learn.pretrain import encode, load_checkpoint


class EncoderModel(mlflow.pyfunc.PythonModel):
    """Pyfunc around a pretraining checkpoint (artifact ``checkpoint``)."""

    def load_context(self, context) -> None:
        self.result = load_checkpoint(context.artifacts["checkpoint"])

    def predict(self, context, model_input: np.ndarray, params: dict | None = None
                ) -> np.ndarray:
        """Curves (n, L) → features (n, 128) (see module docstring)."""
        params = params or {}
        if isinstance(model_input, pd.DataFrame):
            model_input = model_input.to_numpy(dtype=np.float32)
        two_theta = params.get("two_theta")
        if not two_theta:
            raise ValueError("the encoder needs param two_theta (deg) for the curves")
        prepared = prepare_curves(np.asarray(model_input, dtype=np.float32), two_theta,
                                  self.result.config.preprocessing,
                                  params.get("wavelength") or None, self.result.grid)
        return encode(self.result.encoder, prepared.x, device="cpu")
