"""Azimuthal integration with pyFAI: detector frames → 1-D curves in the canonical layout.

:class:`FrameIntegrator` holds one calibrated geometry (a ``.poni``), a mask and the
integration settings; pyFAI builds its CSR sparse matrix on the first frame and reuses it.
:func:`integrate_files` turns image files (TIFF, CBF, EDF, HDF5: anything fabio reads) and a
pressure table into the canonical spectra Dataset; ``specflow integrate`` is its command.
The Bluesky side (frames referenced in HDF5 → an ``integrated`` stream) is
:class:`specflow.ingest.frames.IntegratingRouter`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fabio
import numpy as np
import pandas as pd
import pyFAI
import xarray as xr
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

from specflow.data.schema import make_spectra, two_theta_to_q

METHOD = ("bbox", "csr", "cython")  # pixel splitting, sparse-matrix engine, CPU


#: Horizontal linear polarisation of a synchrotron beam (pyFAI's polarization factor)
POLARIZATION = 0.99

@dataclass(frozen=True)
class IntegrationSettings:
    """``npt`` output points in 2θ (deg) over ``radial_range`` (default: the detector's),
    polarisation correction ``polarization`` ((Iₕ−Iᵥ)/(Iₕ+Iᵥ); None: none), solid-angle
    correction, pyFAI ``method``."""

    npt: int = 2000
    radial_range: tuple[float, float] | None = None
    polarization: float | None = POLARIZATION
    solid_angle: bool = True
    method: tuple[str, str, str] = METHOD


class FrameIntegrator:
    """Integrates frames of one detector geometry into curves on one 2θ grid.

    ``integrator``: a pyFAI integrator or the path of a ``.poni`` file; ``mask``: an array
    (non-zero = masked) or an image file of one (e.g. ``mask.edf``).
    """

    def __init__(self, integrator: AzimuthalIntegrator | str | Path,
                 mask: np.ndarray | str | Path | None = None,
                 settings: IntegrationSettings | None = None) -> None:
        if isinstance(integrator, str | Path):
            integrator = load_poni(integrator)
        self.integrator = integrator
        if isinstance(mask, str | Path):
            mask = read_image(mask)
        self.mask = None if mask is None else (np.asarray(mask) != 0).astype(np.int8)
        self.settings = settings or IntegrationSettings()
        self.two_theta: np.ndarray | None = None

    @property
    def energy_kev(self) -> float:
        return float(self.integrator.energy)

    @property
    def wavelength(self) -> float:
        """Å."""
        return float(self.integrator.wavelength) * 1e10

    def integrate(self, frame: np.ndarray) -> np.ndarray:
        """One curve (float32, ``npt`` points) of one 2-D frame; sets :attr:`two_theta`."""
        frame = np.asarray(frame)
        if frame.ndim != 2:
            raise ValueError(f"a frame must be 2-D, got shape {frame.shape}")
        if self.mask is not None and self.mask.shape != frame.shape:
            raise ValueError(f"the mask is {self.mask.shape}, the frame {frame.shape}")
        s = self.settings
        result = self.integrator.integrate1d(
            frame, s.npt, unit="2th_deg", method=s.method, mask=self.mask,
            polarization_factor=s.polarization, correctSolidAngle=s.solid_angle,
            radial_range=s.radial_range)
        if self.two_theta is None:
            self.two_theta = np.asarray(result.radial, dtype=float)
        return np.asarray(result.intensity, dtype=np.float32)


def load_poni(path: str | Path) -> AzimuthalIntegrator:
    """A pyFAI geometry from a ``.poni`` file; ``ValueError`` when the file does not define
    one (pyFAI itself falls back to a default geometry without a wavelength)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no .poni file {path}")
    try:
        integrator = pyFAI.load(str(path))
    except Exception as err:  # noqa: BLE001 - pyFAI raises many kinds for broken files
        raise ValueError(f"{path}: not a pyFAI geometry file ({err})") from err
    detector = integrator.detector
    if (not integrator.wavelength or detector is None or not detector.pixel1
            or not detector.max_shape):
        raise ValueError(f"{path}: not a complete pyFAI geometry (it needs the wavelength "
                         "and a detector with pixel size and shape)")
    return integrator


def read_image(path: str | Path) -> np.ndarray:
    """The first frame of an image file fabio reads (TIFF, CBF, EDF, HDF5, ...)."""
    with fabio.open(str(path)) as image:
        return np.asarray(image.data)


def iter_frames(paths: Sequence[str | Path]) -> Iterator[tuple[str, np.ndarray]]:
    """(source, frame) for every frame of every file in order; a multi-frame file (EDF,
    TIFF, an HDF5 stack) gives all its frames."""
    for path in paths:
        if not Path(str(path).split("::")[0]).is_file():
            raise FileNotFoundError(f"no image file {path}")
        try:
            image = fabio.open(str(path))
        except Exception as err:  # noqa: BLE001 - fabio raises many kinds for unknown files
            raise ValueError(f"{path}: not an image fabio can read ({err})") from err
        with image:
            for i in range(image.nframes):
                frame = image.data if image.nframes == 1 else image.get_frame(i).data
                yield (f"{path}#{i}" if image.nframes > 1 else str(path)), np.asarray(frame)


def read_pressure_table(path: str | Path, n_frames: int | None = None) -> pd.DataFrame:
    """A CSV with a ``pressure`` column (GPa), one row per frame in order; optional ``time``
    (s). Raises ``ValueError`` naming the file and what is wrong."""
    table = pd.read_csv(path)
    if "pressure" not in table:
        raise ValueError(f"{path}: no 'pressure' column (columns {list(table.columns)})")
    for column in ("pressure", "time"):
        if column in table:
            values = pd.to_numeric(table[column], errors="coerce")
            bad = np.flatnonzero(values.isna().to_numpy())
            if bad.size:
                raise ValueError(f"{path}: missing or non-numeric {column} in rows "
                                 f"{(bad + 1)[:5].tolist()}")
            table[column] = values
    if n_frames is not None and len(table) != n_frames:
        raise ValueError(f"{path}: {len(table)} pressures for {n_frames} frames")
    return table


def integrate_files(poni: str | Path, frames: Sequence[str | Path], pressure: str | Path,
                    mask: str | Path | np.ndarray | None = None,
                    settings: IntegrationSettings | None = None,
                    attrs: dict[str, Any] | None = None) -> xr.Dataset:
    """The canonical spectra Dataset of image files: one curve per frame, in file order,
    with the pressures of ``pressure`` (CSV), the energy and wavelength from the geometry,
    the source of every curve (``source``) and its Q (``q``, Å⁻¹) beside 2θ."""
    integrator = FrameIntegrator(poni, mask, settings)
    read_pressure_table(pressure)  # a broken table fails before the frames are integrated
    sources, curves = [], []
    for source, frame in iter_frames(frames):
        sources.append(source)
        curves.append(integrator.integrate(frame))
    if not curves:
        raise ValueError("no frames given")
    table = read_pressure_table(pressure, len(curves))
    time = table["time"].to_numpy(dtype=float) if "time" in table else None
    ds = make_spectra(
        np.stack(curves), integrator.two_theta, table["pressure"].to_numpy(dtype=float),
        time=time, attrs={"energy": integrator.energy_kev, "wavelength": integrator.wavelength,
                          "poni": Path(poni).name, **(attrs or {})},
        extra={"source": np.asarray(sources)})
    return ds.assign_coords(q=("two_theta", two_theta_to_q(ds["two_theta"].values,
                                                           integrator.wavelength)))


__all__ = ["METHOD", "FrameIntegrator", "IntegrationSettings", "integrate_files",
           "iter_frames", "load_poni", "read_image", "read_pressure_table"]
