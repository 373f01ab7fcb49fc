"""The ceiling of an accuracy table: the ideal observer (:mod:`specflow.simulator.observer`) on
simulated runs, whose noise-free truth is rebuilt from the simulation they record."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from specflow.simulator.observer import ideal_observer
from specflow.simulator.simulate import SimulatedRun, resimulate


def observer_probabilities(runs: Sequence[xr.Dataset | SimulatedRun]) -> np.ndarray | None:
    """The ideal observer's class probabilities of every curve of ``runs`` (in order), or
    None when a run's truth cannot be rebuilt (not simulated by specflow, or changed since)."""
    parts = []
    for run in runs:
        sim = run if isinstance(run, SimulatedRun) else resimulate(run)
        if sim is None:
            return None
        parts.append(ideal_observer(sim).probabilities)
    return np.concatenate(parts) if parts else None
