"""NeXus NXazint1d: the HDF5 layout pyFAI writes for a stack of 1-D integrations.

``/entry`` (``definition = NXazint1d``) holds ``data/I`` (curve × radial), ``data/radial_axis``
(``units`` degrees or 1/angstrom) and ``instrument/monochromator/wavelength`` (Å). Pressures
are not part of the definition: they come from a ``pressure`` dataset in the entry (e.g.
``sample/pressure``) or from the caller.

:func:`write_nxazint1d` writes a run in the same layout, with per-curve results beside the
curves in an ``NXprocess`` group. It writes with h5py rather than pyFAI's
``save_NXazint1d``, which needs the integrator's own results (solid angle, polarisation,
error model) that curves read from text files do not carry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
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
    energy_kev,
    energy_to_wavelength,
    make_spectra,
    wavelength_to_energy,
)
from specflow.data.textformats import radial_unit_from, stack_to_two_theta

DEFINITION = "NXazint1d"
RESULTS_GROUP = "phases"


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
        named = entry.get("sample/name")
        sample = sample or (_text(named) if named is not None else None) or None
        times = entry.get("sample/time")
        if time is None and times is not None and times.shape == intensity.shape[:1]:
            time = np.asarray(times, dtype=float)
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


def write_nxazint1d(
    ds: xr.Dataset,
    path: str | Path,
    results: pd.DataFrame | None = None,
    program: Mapping[str, Any] | None = None,
) -> Path:
    """Write run ``ds`` as an NXazint1d file that :func:`read_nxazint1d` (and NeXus viewers)
    read back: ``data/I`` on the 2θ ``radial_axis`` (degrees; NaN where a curve has no data),
    the wavelength, ``sample/pressure`` (GPa) and ``sample/time`` (s).

    ``results`` (a row per curve; numeric or text columns) go to ``entry/phases``, an
    ``NXprocess`` whose ``program``, ``version`` and ``note`` (JSON) come from ``program``.
    The file is written beside its final name and renamed into place.
    """
    path = Path(path)
    if results is not None and len(results) != ds.sizes["curve"]:
        raise ValueError(f"{path}: {len(results)} result rows for {ds.sizes['curve']} curves")
    partial = path.with_name(f".{path.name}.partial")
    with h5py.File(partial, "w") as h5:
        h5.attrs["default"] = "entry"
        entry = _group(h5, "entry", "NXentry", default="data")
        entry["definition"] = DEFINITION
        entry["title"] = str(ds.attrs.get("sample", path.stem))
        mono = _group(_group(entry, "instrument", "NXinstrument"), "monochromator",
                      "NXmonochromator")
        keV = energy_kev(ds, default=0.0)
        if keV:
            mono["wavelength"] = energy_to_wavelength(keV)
            mono["wavelength"].attrs["units"] = "angstrom"
            mono["energy"] = keV
            mono["energy"].attrs["units"] = "keV"
        sample = _group(entry, "sample", "NXsample")
        sample["name"] = str(ds.attrs.get("sample", ""))
        for name, unit in (("pressure", "GPa"), ("time", "s")):
            sample[name] = np.asarray(ds[name].values, dtype=float)
            sample[name].attrs["units"] = unit
        data = _group(entry, "data", "NXdata", signal="I", axes=[".", "radial_axis"],
                      interpretation="spectrum")
        data["radial_axis"] = np.asarray(ds["two_theta"].values, dtype=float)
        data["radial_axis"].attrs.update(units="degrees", long_name="2theta")
        data.create_dataset("I", data=np.asarray(ds["intensity"].values, dtype=np.float32),
                            compression="gzip")
        data["I"].attrs["long_name"] = "intensity"
        if results is not None:
            process = _group(entry, RESULTS_GROUP, "NXprocess")
            for key, value in (program or {}).items():
                process[key] = value if isinstance(value, str) else json.dumps(
                    value, default=str)
            for column in results.columns:
                values = results[column].to_numpy()
                if values.dtype == object:  # text: variable-length UTF-8
                    process.create_dataset(column, data=values.astype(str).astype(object),
                                           dtype=h5py.string_dtype())
                else:
                    process[column] = values
    partial.replace(path)
    return path


def _group(parent: Any, name: str, nx_class: str, **attrs: Any) -> Any:
    group = parent.create_group(name)
    group.attrs.update(NX_class=nx_class, **attrs)
    return group
