"""What a scientist takes away: per-curve phases, the run's transition pressures and the
curves themselves, as files a spreadsheet, GSAS-II, Dioptas or any NeXus reader opens.

:func:`export_labels` labels runs read from files with a registered model;
:func:`export_annotations` takes the labels already written beside Tiled runs (no model
needed). Both write, for every run ``NAME`` in ``OUT``:

* ``NAME/labels.csv`` — curve, source file, pressure (GPa), time, label (0/1/2), phase,
  p_before, p_during, p_after, ood_score;
* ``NAME/summary.json`` — the block :func:`~specflow.annotate.analyzer.annotate` writes
  beside a Tiled run: model and version, onset and end pressures with 1σ uncertainty, the
  phases present, the out-of-distribution verdict;
* ``NAME/NAME.nxs`` — NeXus NXazint1d: the curves on 2θ with their pressures, the per-curve
  results in ``entry/phases`` and the summary as its ``note``
  (:func:`specflow.data.nexus.write_nxazint1d`; ``specflow.read_spectra`` reads it back);
* ``NAME/curves/*.xy`` (``curves="xy"``: 2θ in degrees with a pyFAI-style ``# Wavelength:``
  line) or ``*.fxye`` (``curves="fxye"``: GSAS-II, 2θ in centidegrees, esd √I);

and ``OUT/summary.csv``, one row per run. ``NAME`` is the run's name among the files; for
a Tiled run, its ``run_name`` and the first 8 characters of its uid (or the uid alone).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

import specflow
from specflow.data.nexus import write_nxazint1d
from specflow.data.schema import PHASE_NAMES, SOURCE
from specflow.data.textformats import write_fxye_curve, write_xy_curve
from specflow.ingest.reader import run_to_dataset
from specflow.learn.data import wavelength_of
from specflow.learn.evaluate import json_default

from .analyzer import build_summary
from .model import LoadedModel
from .writer import CONTAINER, read_labels

CurveFormat = Literal["xy", "fxye"]


class NoLabels(ValueError):
    """A Tiled run asked for has no (complete) annotation to export."""
TILED_ONLY = ("status", "latest", "stream")


def label_table(ds: xr.Dataset, prediction: pd.DataFrame) -> pd.DataFrame:
    """Per-curve phases of ``ds`` as a table (one row per curve)."""
    label = prediction["label"].to_numpy().astype(int)
    return pd.DataFrame({
        "curve": np.arange(ds.sizes["curve"]),
        "file": ds[SOURCE].values if SOURCE in ds else "",
        "pressure_gpa": ds["pressure"].values,
        "time_s": ds["time"].values,
        "label": label,
        "phase": [PHASE_NAMES.get(v, "unknown") for v in label],
        "p_before": prediction["p0"].to_numpy(),
        "p_during": prediction["p1"].to_numpy(),
        "p_after": prediction["p2"].to_numpy(),
        "ood_score": prediction["ood_score"].to_numpy(),
    })


def write_curves(ds: xr.Dataset, table: pd.DataFrame, folder: Path, fmt: CurveFormat
                 ) -> list[Path]:
    """One file per curve in ``fmt``, its pressure and phase in the header."""
    folder.mkdir(parents=True, exist_ok=True)
    tth = ds["two_theta"].values
    wavelength = wavelength_of(ds)
    out = []
    for row, y in zip(table.itertuples(), ds["intensity"].values, strict=True):
        path = folder / f"curve_{row.curve:05d}.{fmt}"
        note = f"pressure_GPa={row.pressure_gpa:.6g} phase={row.phase} label={row.label}"
        if fmt == "xy":
            out.append(write_xy_curve(path, tth, y, wavelength, (note,)))
        else:
            out.append(write_fxye_curve(path, tth, y, f"{ds.attrs.get('sample', '')} {note}"))
    return out


def write_run(out: Path, name: str, ds: xr.Dataset, prediction: pd.DataFrame,
              summary: dict[str, Any], curves: CurveFormat | None = None) -> dict[str, Any]:
    """Write one run's files (above) into ``out/name``; return its row of ``summary.csv``."""
    if Path(name).name != name or name in ("", ".", ".."):
        raise ValueError(f"run name {name!r} is not a plain folder name")
    summary = {k: v for k, v in summary.items() if k not in TILED_ONLY} | {"run": name}
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    table = label_table(ds, prediction)
    table.to_csv(folder / "labels.csv", index=False)
    note = json.dumps(summary, indent=2, default=json_default)
    (folder / "summary.json").write_text(note)
    write_nxazint1d(ds, folder / f"{name}.nxs",
                    table.drop(columns=["curve", "pressure_gpa", "time_s"]),
                    {"program": "specflow", "version": specflow.__version__,
                     "model": summary["model"].get("uri", ""), "note": note})
    if curves:
        write_curves(ds, table, folder / "curves", curves)
    t = summary["transition"]
    return {"run": name, "curves": ds.sizes["curve"],
            "onset_gpa": t["onset_pressure"], "onset_err_gpa": t["onset_uncertainty"],
            "end_gpa": t["end_pressure"], "end_err_gpa": t["end_uncertainty"],
            "unlike_training": summary["ood"]["flag"], "model": summary["model"].get("uri")}


def _summary_table(rows: list[dict[str, Any]], out: Path) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "summary.csv", index=False)
    return frame


def export_labels(model: LoadedModel, runs: Mapping[str, xr.Dataset], out: str | Path,
                  curves: CurveFormat | None = None) -> pd.DataFrame:
    """Label every run with ``model`` and write the files above into ``out``; returns the
    per-run summary table (also ``out/summary.csv``)."""
    out = Path(out)
    rows = []
    for name, ds in runs.items():
        prediction, decoded = model.label_run(ds)
        summary = build_summary(ds, prediction, model, "file", decoded=decoded)
        rows.append(write_run(out, name, ds, prediction, summary, curves))
    return _summary_table(rows, out)


def export_annotations(client: Any, uids: list[str], out: str | Path,
                       curves: CurveFormat | None = None, key: str | None = None,
                       skip_unlabelled: bool = False) -> pd.DataFrame:
    """Write the files above for Tiled runs from the labels already written beside them.

    ``key`` names the annotation node (default: each run's published one). A run without
    that annotation raises :class:`NoLabels` (a ``ValueError``) naming it and what to run
    first (or is left out with ``skip_unlabelled``); a run whose stream has grown since it was
    labelled, ``ValueError``.
    """
    out = Path(out)
    rows = []
    for uid in uids:
        run = client[uid]
        try:
            labels = read_labels(run, key)
        except KeyError as exc:
            if skip_unlabelled:
                continue
            raise NoLabels(f"run {uid}: {exc.args[0]}; label it first with 'specflow "
                           "annotate'") from None
        summary = dict(run.base[CONTAINER][labels.attrs["node"]].metadata["summary"])
        ds = run_to_dataset(run, summary["stream"])
        if ds.sizes["curve"] != labels.sizes["curve"]:
            raise ValueError(f"run {uid}: {ds.sizes['curve']} curves, labels for "
                             f"{labels.sizes['curve']}; annotate it again with --force")
        prediction = pd.DataFrame(labels["probabilities"].values, columns=["p0", "p1", "p2"])
        prediction["label"] = labels["label"].values
        prediction["ood_score"] = labels["ood_score"].values
        start = run.metadata.get("start", {})
        files = start.get("files")
        if isinstance(files, list) and len(files) == ds.sizes["curve"]:
            ds = ds.assign({SOURCE: ("curve", [str(f) for f in files])})
        run_uid = str(start.get("uid", uid))
        run_name = Path(str(start.get("run_name", ""))).name
        name = f"{run_name}-{run_uid[:8]}" if run_name not in ("", ".", "..") else run_uid
        rows.append(write_run(out, name, ds, prediction, summary, curves))
    return _summary_table(rows, out)
