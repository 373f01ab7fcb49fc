"""Label runs read from files with a registered model and write what a scientist takes away:
a spreadsheet of per-curve phases, the run's transition pressures, and (optionally) the
curves as files GSAS-II and Dioptas open, each with its pressure and phase in the header.

For every run ``NAME`` in ``OUT``:

* ``NAME/labels.csv`` — curve, source file, pressure (GPa), time, label (0/1/2), phase,
  p_before, p_during, p_after, ood_score;
* ``NAME/summary.json`` — the same block :func:`~specflow.annotate.analyzer.annotate` writes
  beside a Tiled run: model and version, onset and end pressures with 1σ uncertainty, the
  phases present, the out-of-distribution verdict;
* ``NAME/curves/*.xy`` (``curves="xy"``: 2θ in degrees with a pyFAI-style ``# Wavelength:``
  line) or ``*.fxye`` (``curves="fxye"``: GSAS-II, 2θ in centidegrees, esd √I);

and ``OUT/summary.csv``, one row per run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from specflow.data.schema import PHASE_NAMES, SOURCE
from specflow.learn.data import wavelength_of
from specflow.learn.evaluate import json_default

from .analyzer import build_summary
from .model import LoadedModel

CurveFormat = Literal["xy", "fxye"]
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
        keep = np.isfinite(y)  # detector gaps are left out, not written as zeros
        x, y = tth[keep], y[keep].astype(float)
        path = folder / f"curve_{row.curve:05d}.{fmt}"
        note = f"pressure_GPa={row.pressure_gpa:.6g} phase={row.phase} label={row.label}"
        if fmt == "xy":
            header = [note] + ([f"Wavelength: {wavelength * 1e-10:.6e} m"] if wavelength
                               else []) + ["2th_deg I"]
            np.savetxt(path, np.column_stack([x, y]), header="\n".join(header),
                       fmt="%.6f %.8g")
        else:
            step = float(np.median(np.diff(x))) * 100
            lines = [f"{ds.attrs.get('sample', '')} {note}",
                     f"BANK 1 {x.size} {x.size} CONS {x[0] * 100:.4f} {step:.4f} 0 0 FXYE"]
            lines += [f"{100 * a:.4f} {b:.6g} {np.sqrt(max(b, 1.0)):.4g}"
                      for a, b in zip(x, y, strict=True)]
            path.write_text("\n".join(lines) + "\n")
        out.append(path)
    return out


def export_labels(model: LoadedModel, runs: Mapping[str, xr.Dataset], out: str | Path,
                  curves: CurveFormat | None = None) -> pd.DataFrame:
    """Label every run with ``model`` and write the files above into ``out``; returns the
    per-run summary table (also ``out/summary.csv``)."""
    out = Path(out)
    rows: list[dict[str, Any]] = []
    for name, ds in runs.items():
        if Path(name).name != name or name in ("", ".", ".."):
            raise ValueError(f"run name {name!r} is not a plain folder name")
        prediction, decoded = model.label_run(ds)
        summary = {k: v for k, v in build_summary(ds, prediction, model, "file",
                                                  decoded=decoded).items()
                   if k not in TILED_ONLY}
        summary["run"] = name
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        table = label_table(ds, prediction)
        table.to_csv(folder / "labels.csv", index=False)
        (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=json_default))
        if curves:
            write_curves(ds, table, folder / "curves", curves)
        t = summary["transition"]
        rows.append({"run": name, "curves": ds.sizes["curve"],
                     "onset_gpa": t["onset_pressure"], "onset_err_gpa": t["onset_uncertainty"],
                     "end_gpa": t["end_pressure"], "end_err_gpa": t["end_uncertainty"],
                     "unlike_training": summary["ood"]["flag"], "model": model.uri})
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "summary.csv", index=False)
    return frame

