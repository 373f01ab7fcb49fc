"""``specflow integrate``: detector image files → integrated curves (pyFAI, fabio)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from specflow.cli.lazy import load

spectra_io = load("specflow.data.io")
integration = load("specflow.ingest.integrate")


def integrate_cmd(
    frames: Annotated[list[Path], typer.Argument(
        help="Image files, in acquisition order (TIFF, CBF, EDF, HDF5 — what fabio reads; "
        "a multi-frame file gives all its frames)")],
    poni: Annotated[Path, typer.Option("--poni", help="pyFAI geometry (.poni)")],
    pressure: Annotated[Path, typer.Option(
        "--pressure", help="CSV with a 'pressure' column (GPa), one row per frame; optional "
        "'time' (s)")],
    out: Annotated[Path, typer.Option("--out", help="Spectra file to write (.nc)")],
    mask: Annotated[Path | None, typer.Option(
        "--mask", help="Mask image (non-zero = masked), e.g. mask.edf")] = None,
    npt: Annotated[int, typer.Option("--npt", min=16, help="Points of each curve")] = 2000,
    polarization: Annotated[float, typer.Option(
        "--polarization", min=-1, max=1, help="Polarisation factor (Ih-Iv)/(Ih+Iv): 0.99 "
        "horizontal (synchrotron), 0 unpolarised (lab source)")] = 0.99,
    no_polarization: Annotated[bool, typer.Option(
        "--no-polarization", help="No polarisation correction at all")] = False,
    sample: Annotated[str, typer.Option("--sample", help="Sample name for the file")] = "",
) -> None:
    """Integrate detector images azimuthally (pyFAI) into a spectra file, one curve per frame.

    The energy comes from the geometry; each curve keeps its source file (and frame) and
    its Q beside 2θ."""
    console = Console()
    settings = integration.IntegrationSettings(
        npt=npt, polarization=None if no_polarization else polarization)
    ds = integration.integrate_files(poni, frames, pressure, mask, settings,
                                     attrs={"sample": sample} if sample else None)
    spectra_io.write_netcdf(ds, out)
    console.print(f"{ds.sizes['curve']} curves × {ds.sizes['two_theta']} points "
                  f"({ds['two_theta'].values[0]:.2f}–{ds['two_theta'].values[-1]:.2f}° 2θ, "
                  f"{ds.attrs['energy']:.2f} keV) → {out}")
