"""NeXus NXazint1d: the HDF5 layout pyFAI writes for a stack of 1-D integrations.

``/entry`` (``definition = NXazint1d``) holds ``data/I`` (curve × radial), ``data/radial_axis``
(``units`` degrees or 1/angstrom) and ``instrument/monochromator/wavelength`` (Å). Pressures
are not part of the definition: they come from a ``pressure`` dataset in the entry (e.g.
``sample/pressure``) or from the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import xarray as xr

from specflow.data.schema import (
    SpectraValidationError,
    beam_wavelength,
    chosen_wavelength,
    make_spectra,
    wavelength_to_energy,
)
from specflow.data.textformats import radial_unit_from, stack_to_two_theta

DEFINITION = "NXazint1d"


def _text(value: Any) -> str:
    value = value[()] if hasattr(value, "shape") else value
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry(h5: Any) -> Any | None:
    for node in h5.values():
        if "definition" in getattr(node, "keys", lambda: ())() and \
                _text(node["definition"]) == DEFINITION:
            return node
    return None


def is_nxazint1d(path: str | Path) -> bool:
    """Whether ``path`` is an HDF5 file with an NXazint1d entry."""
    try:
        with h5py.File(path, "r") as h5:
            return _entry(h5) is not None
    except OSError:
        return False


def read_nxazint1d(
    path: str | Path,
    pressure: Sequence[float] | str | Path | None = None,
    time: Sequence[float] | None = None,
    sample: str | None = None,
    energy_kev: float | None = None,
    wavelength: float | None = None,
) -> xr.Dataset:
    """The curves of an NXazint1d file as one run on the 2θ axis.

    ``pressure``: one value per curve, or a CSV with a ``pressure`` column (a row per curve,
    in order); default: the entry's ``pressure`` dataset. ``wavelength`` (Å) or
    ``energy_kev`` replace the file's monochromator wavelength.
    """
    path = Path(path)
    found: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as h5:
        entry = _entry(h5)
        if entry is None or "data" not in entry or "I" not in entry["data"]:
            raise SpectraValidationError([f"{path}: no NXazint1d entry with data/I"])
        data = entry["data"]
        if "radial_axis" not in data:
            raise SpectraValidationError([f"{path}: the NXazint1d data group has no "
                                          "radial_axis"])
        intensity = np.atleast_2d(np.asarray(data["I"], dtype=float))
        radial = np.asarray(data["radial_axis"], dtype=float)
        units = _text(data["radial_axis"].attrs.get("units", "degrees")).casefold()
        mono = entry.get("instrument/monochromator/wavelength")
        file_wavelength = float(mono[()]) if mono is not None else None
        entry.visititems(lambda name, node: found.setdefault(name.rsplit("/", 1)[-1], node[()])
                         if isinstance(node, h5py.Dataset) and name.endswith("pressure")
                         else None)
    unit = radial_unit_from(units)
    if unit is None:
        raise SpectraValidationError([f"{path}: radial_axis units {units!r} are neither "
                                      "degrees nor 1/angstrom"])
    lam = chosen_wavelength(beam_wavelength(energy_kev, wavelength), file_wavelength, path)
    grid, intensity = stack_to_two_theta(radial, intensity, unit, lam, path)
    if pressure is None:
        if "pressure" not in found:
            raise SpectraValidationError(
                [f"{path}: no pressure dataset in the NXazint1d entry: give pressure= (one "
                 "per curve, or a CSV with a pressure column)"])
        pressure = np.atleast_1d(found["pressure"])
    elif isinstance(pressure, str | Path):
        table = pd.read_csv(pressure)
        if "pressure" not in table:
            raise SpectraValidationError([f"{pressure}: needs a 'pressure' column"])
        pressure = table["pressure"].to_numpy()
    attrs: dict[str, Any] = {"sample": sample or path.stem, "source": str(path)}
    if lam:
        attrs.update(wavelength=float(lam), energy=wavelength_to_energy(float(lam)))
    if unit != "2th_deg":
        attrs["radial_unit"] = unit
    return make_spectra(intensity, grid, pressure, time=time, attrs=attrs)
