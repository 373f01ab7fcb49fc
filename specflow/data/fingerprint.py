"""Is a test run also a training run? Fingerprints that catch a leak before it is scored.

Three things make two runs the same run: the same file, the same ``run_uid``, or the same
curves (a sha256 of intensities and pressures). A run cropped to some of its curves or put on
another grid keeps its recorded pressures: when most of a test run's pressures appear, in
order, in a training run, the two are near-duplicates (warned about, not refused).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from specflow.data.schema import INTENSITY, PRESSURE

NEAR_DUPLICATE_SHARE = 0.5  # share of a test run's pressures found in one training run


class TrainingRunInTest(ValueError):
    """A run to be scored as unseen is one the model was trained on."""


def run_fingerprint(ds: xr.Dataset) -> str:
    """sha256 of a run's intensities and pressures (dtype and shape included)."""
    digest = hashlib.sha256()
    for name in (INTENSITY, PRESSURE):
        if name in ds.variables:
            values = np.ascontiguousarray(ds[name].values)
            digest.update(f"{name}{values.dtype}{values.shape}".encode())
            digest.update(values.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Overlap:
    """A test run that is (``exact``) or looks like (near-duplicate) a training run."""

    train: str
    test: str
    reason: str
    exact: bool

    def message(self, role: str = "test", option: str = "--test") -> str:
        if self.exact:
            return (f"{role} run {self.test} is training run {self.train} ({self.reason}): a "
                    "run the model was trained on cannot be scored as unseen; drop it from "
                    f"{option} (or from --data)")
        return (f"{role} run {self.test} looks like a copy of training run {self.train} "
                f"({self.reason}); its score may be optimistic")


def overlaps(train: Mapping[str, xr.Dataset], test: Mapping[str, xr.Dataset],
             paths: Mapping[str, Path] | None = None) -> list[Overlap]:
    """Every (training, test) pair that is the same run or a near-duplicate: the same file
    (``paths``: name -> path), the same ``run_uid``, the same curves, or most of the test
    run's recorded pressures found in order in the training run."""
    paths = paths or {}
    prints = {name: run_fingerprint(ds) for name, ds in train.items()}
    found = []
    for t_name, t_ds in test.items():
        t_print = run_fingerprint(t_ds)
        for name, ds in train.items():
            reason, exact = None, True
            a, b = paths.get(name), paths.get(t_name)
            if a is not None and b is not None and Path(a).resolve() == Path(b).resolve():
                reason = "the same file"
            elif ds.attrs.get("run_uid") and ds.attrs.get("run_uid") == t_ds.attrs.get(
                    "run_uid"):
                reason = f"the same run_uid {ds.attrs['run_uid']!r}"
            elif prints[name] == t_print:
                reason = "the same curves and pressures"
            else:
                share = shared_pressures(ds, t_ds)
                if share >= NEAR_DUPLICATE_SHARE:
                    reason, exact = f"{share:.0%} of its pressures, in order", False
            if reason:
                found.append(Overlap(name, t_name, reason, exact))
    return found


def shared_pressures(train: xr.Dataset, test: xr.Dataset) -> float:
    """Share of ``test``'s recorded pressures that appear, in the same order, among
    ``train``'s (exact floats: a crop or a regrid keeps them, another loading does not)."""
    if PRESSURE not in train.variables or PRESSURE not in test.variables:
        return 0.0
    a = np.asarray(train[PRESSURE].values, dtype=float)
    b = np.asarray(test[PRESSURE].values, dtype=float)
    if b.size == 0:
        return 0.0
    where = {v: i for i, v in enumerate(a.tolist())}
    hits = [where[v] for v in b.tolist() if v in where]
    if len(hits) < 2:
        return len(hits) / b.size if b.size < 2 else 0.0
    ordered = int((np.diff(hits) > 0).sum()) + 1
    return ordered / b.size


def refuse_training_runs(train: Mapping[str, xr.Dataset], test: Mapping[str, xr.Dataset],
                         paths: Mapping[str, Path] | None = None, role: str = "test",
                         option: str = "--test") -> list[str]:
    """Raise :class:`TrainingRunInTest` (naming both runs) when a ``role`` run (test, gate)
    is a training run; return the near-duplicate warnings."""
    found = overlaps(train, test, paths)
    exact = [o for o in found if o.exact]
    if exact:
        raise TrainingRunInTest(exact[0].message(role, option))
    return [o.message(role, option) for o in found]
