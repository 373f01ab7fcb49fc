"""A :class:`~specflow.learn.classifier.PhaseClassifier` in the MLflow registry: logged as the
phase pyfunc (its deployable bundle, served by the same predictor) and loaded back."""

from __future__ import annotations

from typing import Any

import torch
from mlflow.models import Model

from specflow.learn.classifier import PhaseClassifier
from specflow.learn.names import DEFAULT_METHOD
from specflow.registry.promotion import log_phase_model
from specflow.registry.tracking import DEFAULT_MODEL_URI
from specflow.registry.uris import downloaded_model


def log_classifier(clf: PhaseClassifier, name: str = "model", **kwargs: Any):
    """Log a fitted classifier as the phase pyfunc in the active MLflow run.

    Parameters
    ----------
    clf : PhaseClassifier
        A fitted classifier; its ``bundle_`` is what the pyfunc serves.
    name : str
        Artifact name of the model in the run.
    **kwargs
        Passed to :func:`mlflow.pyfunc.log_model` (e.g. ``registered_model_name``).

    Returns
    -------
    mlflow.models.model.ModelInfo
        With ``model_uri`` to register or load.
    """
    clf._fitted()
    return log_phase_model(clf.bundle_, name=name, method=clf.method, **kwargs)


def load_classifier(uri: str = DEFAULT_MODEL_URI) -> PhaseClassifier:
    """The registered model behind ``uri`` as a fitted :class:`PhaseClassifier`.

    Parameters
    ----------
    uri : str
        ``models:/<name>@<alias>`` or ``models:/<name>/<version>`` in the MLflow registry
        in use (``MLFLOW_TRACKING_URI``).

    Returns
    -------
    PhaseClassifier
        ``predict(ds)`` gives the labels the pyfunc (and ``specflow annotate``) gives.

    Examples
    --------
    >>> clf = load_classifier("models:/specflow-phase@champion")  # doctest: +SKIP
    >>> clf.predict(ds)["label"]  # doctest: +SKIP
    """
    with downloaded_model(uri) as local:
        bundle = torch.load(local / "artifacts" / "bundle.pt", map_location="cpu",
                            weights_only=True)
        meta = (Model.load(local).metadata or {}).get("specflow") or {}
    return PhaseClassifier.from_bundle(bundle, method=meta.get("method") or DEFAULT_METHOD)
