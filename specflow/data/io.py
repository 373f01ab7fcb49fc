"""Read and write spectra: NetCDF (h5netcdf), NeXus NXazint1d, single-curve text files as
facilities write them (:mod:`specflow.data.textformats`), wide CSV.

Every reader returns the canonical layout (:mod:`specflow.data.schema`) and validates it, so
bad files fail here with a message that names the file and the problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace as dc_replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from specflow.data.nexus import is_nxazint1d, read_nxazint1d
from specflow.data.schema import (
    CURVE,
    INTENSITY,
    LABEL,
    PRESSURE,
    SOURCE,
    TIME,
    TWO_THETA,
    SpectraValidationError,
    beam_wavelength,
    chosen_wavelength,
    energy_kev,
    energy_to_wavelength,
    make_spectra,
    validate,
    wavelength_to_energy,
)
from specflow.data.textformats import (
    RADIAL_UNITS,
    TextCurve,
    read_text_curve,
    to_two_theta,
    write_xy_curve,
)

TEXT_SUFFIXES = {".xy", ".xye", ".chi", ".dat", ".txt", ".fxye", ".gsa", ".gsas"}
NETCDF_SUFFIXES = {".nc", ".nc4", ".netcdf"}
HDF5_SUFFIXES = {".h5", ".hdf5", ".nxs", ".nx"}  # NeXus NXazint1d, else NetCDF-4


def read_spectra(
    path: str | Path,
    *,
    energy_kev: float | None = None,
    wavelength: float | None = None,
    **kwargs: Any,
) -> xr.Dataset:
    """Read one run into the canonical Dataset, by the path's suffix.

    Parameters
    ----------
    path : str or Path
        ``.nc`` (NetCDF-4); ``.h5``/``.nxs`` (NeXus NXazint1d as pyFAI writes it, else
        NetCDF-4); a wide ``.csv`` (a row per curve: ``pressure``, ``time``, ``label``, then
        one column per 2θ value); a single-curve text file (pyFAI ``.xy``/``.dat``/``.xye``,
        Dioptas/Fit2D ``.chi``, GSAS-II ``.fxye``; its pressure from a ``pressure_GPa=`` header
        line); or a folder of such text files read as one run (pressures from a
        ``pressure.csv`` beside them or from their headers).
    energy_kev, wavelength : float, optional
        The beam's energy (keV) or wavelength (Å) when the file does not say it, or to
        correct it (a warning names the file when they differ). Curves in Q or d need one.
    **kwargs
        Passed to the text and NeXus readers, e.g. ``pressure=`` (a list, or a CSV with
        columns ``file,pressure``) or ``radial_unit=`` (``q_nm^-1`` …) for a header that
        does not name it.

    Returns
    -------
    xarray.Dataset
        Validated canonical layout (Q and d axes are mapped onto 2θ with the wavelength; the
        intensities are unchanged).

    Raises
    ------
    SpectraValidationError
        Naming the file (and line or column) and every problem found.

    Examples
    --------
    >>> ds = read_spectra("run.nc")  # doctest: +SKIP
    >>> ds = read_spectra("xy_folder/", energy_kev=30.0)  # doctest: +SKIP
    """
    path = Path(path)
    beam = {"energy_kev": energy_kev, "wavelength": wavelength}
    if path.is_dir():
        return read_xy_folder(path, **beam, **kwargs)
    if not path.exists():
        raise SpectraValidationError([f"{path}: no such file or folder"])
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return read_xy([path], **beam, **kwargs)
    if suffix in HDF5_SUFFIXES and is_nxazint1d(path):
        return read_nxazint1d(path, **beam, **kwargs)
    if kwargs:  # e.g. radial_unit: a NetCDF or CSV spectra file stores its own 2θ axis
        names = ", ".join(f"{k} (--{k.replace('_', '-')})" for k in kwargs)
        raise SpectraValidationError([f"{path}: {names} applies to text and NeXus files "
                                      "only; this file names its own axis: leave it out"])
    if suffix in NETCDF_SUFFIXES | HDF5_SUFFIXES:
        ds = read_netcdf(path)
    elif suffix == ".csv":
        ds = read_csv(path)
    else:
        raise SpectraValidationError(
            [f"{path}: unknown spectra format {suffix!r} (use .nc, .h5/.nxs, .csv, or "
             f"{', '.join(sorted(TEXT_SUFFIXES))} text files)"])
    return with_beam(ds, beam_wavelength(energy_kev, wavelength), path)


def with_beam(ds: xr.Dataset, wavelength: float | None, source: str | Path) -> xr.Dataset:
    """``ds`` with the beam ``wavelength`` (Å) and its energy in the attrs; a different value
    already there is replaced with a warning naming ``source``. None leaves ``ds`` as is."""
    if wavelength is None:
        return ds
    try:
        known = energy_to_wavelength(energy_kev(ds))
    except KeyError:
        known = None
    wavelength = chosen_wavelength(wavelength, known, source)
    return ds.assign_attrs(wavelength=float(wavelength),
                           energy=wavelength_to_energy(wavelength))


def write_spectra(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``ds`` by the suffix of ``path`` (``.nc`` or ``.csv``); returns the path.

    Any other suffix is refused (ValueError) rather than written in a format the name
    does not say.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return write_csv(ds, path)
    if suffix in (".nc", ".h5", ".nc4"):
        return write_netcdf(ds, path)
    raise ValueError(f"{path}: cannot write spectra as {suffix or 'a file without suffix'!r};"
                     " use .nc (NetCDF-4) or .csv")


def write_netcdf(ds: xr.Dataset, path: str | Path) -> Path:
    """Validate and write a spectra Dataset to NetCDF-4 (h5netcdf engine, compressed)."""
    validate(ds)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    encoding = {INTENSITY: {"zlib": True, "complevel": 4}}
    ds.to_netcdf(path, engine="h5netcdf", encoding=encoding)
    return path


def read_netcdf(path: str | Path) -> xr.Dataset:
    """Read a spectra NetCDF file fully into memory and validate it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            ds = ds.load()
    except (OSError, ValueError) as exc:
        raise SpectraValidationError(
            [f"{path}: not a readable NetCDF-4 spectra file ({str(exc).splitlines()[0]})"]
        ) from exc
    if LABEL in ds:
        ds[LABEL] = ds[LABEL].astype(np.int8)
    try:
        return validate(ds)
    except SpectraValidationError as err:
        raise SpectraValidationError([f"{path}: {p}" for p in err.problems]) from None


def read_xy(
    paths: Sequence[str | Path],
    pressure: Sequence[float] | str | Path | None = None,
    time: Sequence[float] | None = None,
    sample: str | None = None,
    energy_kev: float | None = None,
    wavelength: float | None = None,
    radial_unit: str | None = None,
) -> xr.Dataset:
    """Stack single-curve text files (pyFAI, Dioptas/Fit2D, GSAS-II FXYE, plain; see
    :mod:`specflow.data.textformats`) into one run on the 2θ axis.

    ``pressure`` is a sequence (one per file) or a CSV with columns ``file,pressure`` (file
    names matched by name); without it, each file's ``pressure_GPa=`` header. The beam
    wavelength comes from ``wavelength`` (Å) or ``energy_kev``, else from the files' headers;
    curves in Q or d need it. ``radial_unit`` overrides what the headers say. Curves on
    different grids are interpolated onto the first file's; each curve keeps its file name
    (``source``).
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no files given")
    if radial_unit is not None and radial_unit not in RADIAL_UNITS:
        raise ValueError(f"unknown radial unit {radial_unit!r}; use one of {RADIAL_UNITS}")
    curves = [read_text_curve(p) for p in paths]
    if radial_unit is not None:
        curves = [dc_replace(c, unit=radial_unit) for c in curves]
    odd = next((c for c in curves if c.unit != curves[0].unit), None)
    if odd is not None:
        raise SpectraValidationError(
            [f"{odd.path}: radial unit {odd.unit} differs from {curves[0].path.name}'s "
             f"{curves[0].unit}: one run is read from files of one unit"])
    lam = beam_wavelength(energy_kev, wavelength)
    lam = chosen_wavelength(lam, _header_wavelength(curves, agree=lam is None), paths[0])
    axes = [to_two_theta(c, lam) for c in curves]
    grid = axes[0][0]
    stacked = []
    for c, (x, y) in zip(curves, axes, strict=True):
        if x.shape == grid.shape and np.allclose(x, grid):
            stacked.append(y)
        elif x[0] <= grid[0] and x[-1] >= grid[-1]:
            stacked.append(np.interp(grid, x, y))
        else:
            raise SpectraValidationError(
                [f"{c.path}: 2θ range {x[0]:.3f}–{x[-1]:.3f}° does not cover the first file's "
                 f"{grid[0]:.3f}–{grid[-1]:.3f}°"]
            )
    if pressure is None:  # from the files' own headers, when every file has one
        found = [c.pressure for c in curves]
        if all(v is not None for v in found):
            pressure = found
        else:
            missing = [p.name for p, v in zip(paths, found, strict=True) if v is None]
            raise SpectraValidationError(
                [f"no pressure for {len(missing)} text file(s) (e.g. {missing[0]}): give a "
                 "'pressure_GPa=<GPa>' header line, a pressure.csv (columns file,pressure) "
                 "beside them, or pressure= when reading"])
    if isinstance(pressure, str | Path):
        pressure = _pressure_table(Path(pressure), paths)
    if time is None and all(c.time is not None for c in curves):  # "time_s=" headers
        time = [c.time for c in curves]
    attrs: dict[str, Any] = {"sample": sample or paths[0].stem, "source": str(paths[0].parent)}
    if lam is not None:
        attrs.update(wavelength=lam, energy=wavelength_to_energy(lam))
    if curves[0].unit not in ("2th_deg",):
        attrs["radial_unit"] = curves[0].unit  # as the files gave it; the axis is now 2θ
    return make_spectra(np.asarray(stacked), grid, pressure, time=time, attrs=attrs,
                        extra={SOURCE: np.array([p.name for p in paths])})


def _header_wavelength(curves: list[TextCurve], agree: bool = True) -> float | None:
    """The wavelength the files' headers give (None when none does); ``agree``: refuse
    headers that differ."""
    given = [c for c in curves if c.wavelength is not None]
    for c in given[1:] if agree else ():
        if abs(c.wavelength / given[0].wavelength - 1) > 1e-4:
            raise SpectraValidationError(
                [f"{c.path}: wavelength {c.wavelength:g} Å differs from "
                 f"{given[0].path.name}'s {given[0].wavelength:g} Å: one run has one beam; "
                 "give --wavelength to choose"])
    return given[0].wavelength if given else None


def _pressure_table(table_path: Path, paths: list[Path]) -> list[float]:
    try:
        table = pd.read_csv(table_path)
    except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise SpectraValidationError([f"{table_path}: not a readable pressure CSV ({exc})"]
                                     ) from exc
    if not {"file", "pressure"} <= set(table.columns):
        raise SpectraValidationError([f"{table_path}: needs columns 'file' and 'pressure'"])
    table = table.dropna(how="all")  # blank rows, as spreadsheets export them
    if table["file"].isna().any():
        row = int(np.flatnonzero(table["file"].isna().to_numpy())[0])
        raise SpectraValidationError([f"{table_path}: row {row + 2} names no file"])
    by_name = dict(zip(table["file"].map(lambda s: Path(str(s)).name), table["pressure"],
                       strict=True))
    missing = [p.name for p in paths if p.name not in by_name]
    if missing:
        raise SpectraValidationError(
            [f"{table_path}: no pressure for files {missing[:5]}: add a row per file"])
    return [by_name[p.name] for p in paths]


def read_xy_folder(folder: str | Path, pressure: Any = None, **kwargs: Any) -> xr.Dataset:
    """All single-curve text files of ``folder`` (sorted by name) as one run.

    Pressures come from ``pressure`` (as in :func:`read_xy`), else from a ``pressure.csv``
    (columns ``file,pressure``) in the folder, else from each file's ``pressure_GPa=``
    header; a clear error names what is missing.
    """
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir()
                   if p.suffix.lower() in TEXT_SUFFIXES and p.is_file())
    if not files:
        raise SpectraValidationError(
            [f"{folder}: no {'/'.join(sorted(TEXT_SUFFIXES))} files (a folder is one run of "
             "single-curve text files)"])
    return read_text_run(files, pressure=pressure, **kwargs)


def read_text_run(files: Sequence[Path], pressure: Any = None, **kwargs: Any) -> xr.Dataset:
    """Single-curve text files of one run (:func:`read_xy`); without ``pressure``, the
    ``pressure.csv`` in their folder when there is one, else their headers."""
    table = Path(files[0]).parent / "pressure.csv"
    if pressure is None and table.is_file():
        pressure = table
    return read_xy(files, pressure=pressure, **kwargs)


def write_xy(ds: xr.Dataset, directory: str | Path, stem: str = "curve") -> list[Path]:
    """Write one pyFAI-style ``.xy`` file per curve (pressure, time and the beam wavelength
    in the header, detector gaps as ``nan``; labels are not written): a folder that reads
    back as this run."""
    validate(ds)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    wavelength = (float(ds.attrs["wavelength"]) if "wavelength" in ds.attrs else
                  energy_to_wavelength(float(ds.attrs["energy"])) if "energy" in ds.attrs
                  else None)
    grid = ds[TWO_THETA].values
    return [write_xy_curve(directory / f"{stem}_{i:05d}.xy", grid, ds[INTENSITY].values[i],
                           wavelength, (f"pressure_GPa={float(ds[PRESSURE][i]):.6g} "
                                        f"time_s={float(ds[TIME][i])!r}",), keep_gaps=True)
            for i in range(ds.sizes[CURVE])]


def write_csv(ds: xr.Dataset, path: str | Path) -> Path:
    """Wide CSV: a row per curve with ``pressure,time[,label]`` then one column per 2θ value."""
    validate(ds)
    path = Path(path)
    grid = ds[TWO_THETA].values
    table = pd.DataFrame(ds[INTENSITY].values, columns=[repr(float(v)) for v in grid])
    meta = {PRESSURE: ds[PRESSURE].values, TIME: ds[TIME].values}
    if LABEL in ds:
        meta[LABEL] = ds[LABEL].values
    table = pd.concat([pd.DataFrame(meta), table], axis=1)
    table.to_csv(path, index=False)
    return path


def read_csv(path: str | Path) -> xr.Dataset:
    """Read the wide CSV layout written by :func:`write_csv`."""
    path = Path(path)
    try:
        table = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SpectraValidationError([f"{path}: not a spectra CSV ({exc})"]) from exc
    if table.empty:
        raise SpectraValidationError([f"{path}: no rows (one row per curve expected)"])
    meta_cols = [c for c in table.columns if c in (PRESSURE, TIME, LABEL)]
    grid_cols = [c for c in table.columns if c not in meta_cols]
    try:
        grid = np.array([float(c) for c in grid_cols])
    except ValueError as err:
        raise SpectraValidationError(
            [f"{path}: columns other than pressure/time/label must be 2θ values ({err})"]
        ) from None
    numeric = table.apply(pd.to_numeric, errors="coerce")
    odd = numeric.isna() & table.notna()
    if odd.to_numpy().any():
        row, col = (int(v[0]) for v in np.nonzero(odd.to_numpy()))
        raise SpectraValidationError(
            [f"{path}: line {row + 2} (curve {row}), column {table.columns[col]!r}: "
             f"{table.iat[row, col]!r} is not a number"])
    table = numeric
    try:
        return make_spectra(
            table[grid_cols].to_numpy(dtype=float),
            grid,
            table[PRESSURE].to_numpy() if PRESSURE in table else None,
            time=table[TIME].to_numpy() if TIME in table else None,
            label=table[LABEL].to_numpy() if LABEL in table else None,
            attrs={"source": str(path)},
        )
    except SpectraValidationError as err:
        raise SpectraValidationError([f"{path}: {p}" for p in err.problems]) from None
