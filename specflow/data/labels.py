"""Phase labels: 0 before, 1 during, 2 after the transition.

Of simulated curves from the high-pressure phase fraction (see also
:func:`specflow.simulator.observer.visible_labels`); of measured runs from what a scientist gives
(:class:`LabelSpec`): a labels table, or pressures below / above which the phase is known.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from specflow.data.schema import (
    CURVE,
    LABEL,
    PHASE_NAMES,
    PRESSURE,
    SOURCE,
    UNKNOWN_LABEL,
    SpectraValidationError,
)

LABEL_THRESHOLD = 0.05  # phase fraction below it: before (0); above 1 - it: after (2)


def labels_from_fraction(fraction: np.ndarray, threshold: float = LABEL_THRESHOLD) -> np.ndarray:
    """0 (before: fraction < threshold), 2 (after: > 1 - threshold), otherwise 1 (during)."""
    fraction = np.asarray(fraction)
    labels = np.ones(fraction.shape, dtype=np.int8)
    labels[fraction < threshold] = 0
    labels[fraction > 1 - threshold] = 2
    return labels


#: GPa below the highest pressure so far that still counts as compression (gauge noise)
COMPRESSION_TOLERANCE = 0.3
#: Label words a table may use beside the numbers
LABEL_WORDS = {**{name: k for k, name in PHASE_NAMES.items()}, "unknown": UNKNOWN_LABEL,
               "": UNKNOWN_LABEL}


@dataclass(frozen=True)
class LabelSpec:
    """Labels the way a scientist gives them.

    ``table``: a CSV with a ``label`` column (0/1/2/-1 or before/during/after/unknown) and,
    to say which curve, ``file`` (the curve's text file name) or ``curve`` (its index in the
    run; with a ``run`` column when several runs are read). ``before_below`` /
    ``after_above`` (GPa): compression curves below / above the pressure are before / after;
    curves in between and on decompression stay unlabelled, since the transition's
    hysteresis moves it on the way down.
    """

    table: Path | None = None
    before_below: float | None = None
    after_above: float | None = None

    def __post_init__(self) -> None:
        lo, hi = self.before_below, self.after_above
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"before below {lo:g} GPa and after above {hi:g} GPa overlap: "
                             "the 'before' pressure must not exceed the 'after' one")

    @property
    def given(self) -> bool:
        return self.table is not None or self.before_below is not None \
            or self.after_above is not None


def _label_values(column: pd.Series, table: Path) -> np.ndarray:
    out = []
    for row, value in enumerate(column.astype(str).str.strip().str.casefold()):
        if value in LABEL_WORDS:
            out.append(LABEL_WORDS[value])
            continue
        try:
            number = float(value)
            number = int(number) if number.is_integer() else None
        except ValueError:
            number = None
        if number not in (-1, 0, 1, 2):
            raise SpectraValidationError(
                [f"{table}: line {row + 2}: label {value!r} is not 0/1/2/-1 or "
                 "before/during/after/unknown"])
        out.append(number)
    return np.asarray(out, dtype=np.int8)


def _file_name(name: object) -> str:
    """A file's name from a path written on any system (``/`` or ``\\``)."""
    return Path(str(name).strip().replace("\\", "/")).name


def table_labels(ds: xr.Dataset, table: Path, run: str | None = None) -> np.ndarray:
    """Per-curve labels of ``ds`` from a labels CSV (-1 where the table says nothing)."""
    try:
        rows = pd.read_csv(table, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise SpectraValidationError([f"{table}: not a readable labels CSV ({exc})"]) from exc
    if "label" not in rows or not {"file", "curve"} & set(rows.columns):
        raise SpectraValidationError(
            [f"{table}: needs a 'label' column and a 'file' or 'curve' column (found "
             f"{list(rows.columns)})"])
    if "run" in rows and run is not None:
        rows = rows[rows["run"].str.strip() == run]
    values = _label_values(rows["label"], table)
    out = np.full(ds.sizes[CURVE], UNKNOWN_LABEL, dtype=np.int8)
    if "file" in rows:
        if SOURCE not in ds:
            raise SpectraValidationError(
                [f"{table}: labels by 'file' need a run read from text files; use 'curve' "
                 "(the index in the run) for this run"])
        index = {_file_name(name): i for i, name in enumerate(ds[SOURCE].values)}
        for name, value in zip(rows["file"], values, strict=True):
            if _file_name(name) in index:
                out[index[_file_name(name)]] = value
    else:
        try:
            curves = rows["curve"].astype(int).to_numpy()
        except ValueError:
            raise SpectraValidationError([f"{table}: 'curve' must be curve indices"]) from None
        bad = curves[(curves < 0) | (curves >= out.size)]
        if bad.size:
            raise SpectraValidationError(
                [f"{table}: curve {int(bad[0])} is not in run {run or ''} of {out.size} curves"])
        out[curves] = values
    return out


def pressure_labels(pressure: np.ndarray, before_below: float | None,
                    after_above: float | None) -> np.ndarray:
    """Before below / after above the given pressures on compression: curves within
    :data:`COMPRESSION_TOLERANCE` of the highest pressure so far (a cycled run's later
    compression counts, its decompressions do not); -1 elsewhere."""
    pressure = np.asarray(pressure, dtype=float)
    out = np.full(pressure.shape, UNKNOWN_LABEL, dtype=np.int8)
    rising = pressure >= np.maximum.accumulate(pressure) - COMPRESSION_TOLERANCE \
        if pressure.size else out > 0
    if before_below is not None:
        out[rising & (pressure < before_below)] = 0
    if after_above is not None:
        out[rising & (pressure > after_above)] = 2
    return out


def apply_labels(ds: xr.Dataset, spec: LabelSpec, run: str | None = None) -> xr.Dataset:
    """``ds`` with a ``label`` variable from ``spec``: the table's labels, then pressure ranges
    for curves the table leaves unlabelled; labels the file already had stay where ``spec``
    gives none."""
    if not spec.given:
        return ds
    given = np.full(ds.sizes[CURVE], UNKNOWN_LABEL, dtype=np.int8)
    if spec.table is not None:
        given = table_labels(ds, Path(spec.table), run)
    by_pressure = pressure_labels(ds[PRESSURE].values, spec.before_below, spec.after_above)
    given = np.where(given >= 0, given, by_pressure)
    old = ds[LABEL].values.astype(np.int8) if LABEL in ds else given
    label = np.where(given >= 0, given, old).astype(np.int8)
    return ds.assign({LABEL: (CURVE, label, {"flag_values": "-1 0 1 2",
                                             "flag_meanings": "unknown before during after"})})


def write_labels_table(runs: Mapping[str, xr.Dataset], path: str | Path) -> Path:
    """The ``label`` of every run as a labels table (``run,curve,label``), the form
    :class:`LabelSpec` reads back; unknown labels (-1) are left out."""
    rows = [pd.DataFrame({"run": name, "curve": np.flatnonzero(ds[LABEL].values >= 0),
                          "label": ds[LABEL].values[ds[LABEL].values >= 0]})
            for name, ds in runs.items() if LABEL in ds]
    path = Path(path)
    (pd.concat(rows) if rows else pd.DataFrame(columns=["run", "curve", "label"])).to_csv(
        path, index=False)
    return path
