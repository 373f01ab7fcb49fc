"""Which curves to label next: where the registered model is least sure of the phase."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import xarray as xr

from specflow.annotate.model import LoadedModel
from specflow.learn.data import wavelength_of
from specflow.learn.probe import margins, smallest_margin


@dataclass(frozen=True)
class Suggestion:
    """One curve worth labelling: where it is, what the model says and how unsure it is."""

    run: str
    curve: int
    pressure: float
    predicted: int
    margin: float  # top-1 minus top-2 probability: small = unsure
    probabilities: tuple[float, float, float]

    def as_dict(self) -> dict:
        return asdict(self)


def suggest_labels(
    model: LoadedModel,
    runs: Mapping[str, xr.Dataset],
    count: int = 10,
    include_labelled: bool = False,
) -> list[Suggestion]:
    """The ``count`` curves of ``runs`` with the smallest probability margin.

    Parameters
    ----------
    model : LoadedModel
        A registered phase model (:func:`specflow.annotate.load_model`).
    runs : mapping of str to xarray.Dataset
        Canonical spectra Datasets by name (file name or run uid).
    count : int
        How many curves to suggest.
    include_labelled : bool
        Also suggest curves whose ``label`` is already known (≥ 0).

    Returns
    -------
    list of Suggestion
        Most uncertain first.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    where: list[tuple[str, int, float, int]] = []
    probs, known = [], []
    for name, ds in runs.items():
        out = model.predict(ds["intensity"].values, ds["two_theta"].values,
                            ds["pressure"].values, wavelength_of(ds))
        probs.append(out[["p0", "p1", "p2"]].to_numpy())
        label = ds["label"].values if "label" in ds else np.full(ds.sizes["curve"], -1)
        known.append(label >= 0)
        pressure = ds["pressure"].values
        where += [(name, i, float(pressure[i]), int(out["label"].iloc[i]))
                  for i in range(ds.sizes["curve"])]
    if not where:
        return []
    p = np.concatenate(probs)
    skip = None if include_labelled else np.flatnonzero(np.concatenate(known))
    margin = margins(p)
    return [Suggestion(*where[i], float(margin[i]), tuple(round(float(v), 4) for v in p[i]))
            for i in smallest_margin(p, skip, count)]
