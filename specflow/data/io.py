"""Read and write spectra: NetCDF (h5netcdf), two-column .xy/.xye/.chi files, wide CSV.

Every reader returns the canonical layout (:mod:`specflow.data.schema`) and validates it, so
bad files fail here with a message that names the file and the problem.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from specflow.data.schema import (
    CURVE,
    INTENSITY,
    LABEL,
    PRESSURE,
    TIME,
    TWO_THETA,
    SpectraValidationError,
    make_spectra,
    validate,
)

TEXT_SUFFIXES = {".xy", ".xye", ".chi", ".dat", ".txt"}
_PRESSURE_HEADER = re.compile(
    r"(?<![\w.])pressure(?:_GPa)?\s*[=:]\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
    r"(?![\w.,])", re.IGNORECASE)


def read_spectra(path: str | Path, **kwargs) -> xr.Dataset:
    """Read spectra into the canonical Dataset, by the path's suffix.

    Parameters
    ----------
    path : str or Path
        ``.nc``/``.h5`` (NetCDF-4), a wide ``.csv`` (a row per curve: ``pressure``, ``time``,
        ``label``, then one column per 2θ value), a two-column text file (``.xy``, ``.xye``,
        ``.chi``, ``.dat``; its pressure from a ``pressure_GPa=`` header line), or a folder
        of text files read as one run (pressures from a ``pressure.csv`` beside them or
        from their headers).
    **kwargs
        Passed to the text reader, e.g. ``pressure=`` (a list, or a CSV with columns
        ``file,pressure``) or ``energy_kev=``.

    Returns
    -------
    xarray.Dataset
        Validated canonical layout.

    Raises
    ------
    SpectraValidationError
        Naming the file (and line or column) and every problem found.

    Examples
    --------
    >>> ds = read_spectra("run.nc")  # doctest: +SKIP
    >>> ds = read_spectra("xy_folder/")  # doctest: +SKIP
    """
    path = Path(path)
    if path.is_dir():
        return read_xy_folder(path, **kwargs)
    suffix = path.suffix.lower()
    if suffix in {".nc", ".h5", ".nc4", ".netcdf"}:
        return read_netcdf(path)
    if suffix == ".csv":
        return read_csv(path)
    if suffix in TEXT_SUFFIXES:
        return read_xy([path], **kwargs)
    raise ValueError(f"{path}: unknown spectra format {suffix!r} (use .nc, .csv, .xy, .xye, .chi)")


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


def _read_columns(path: Path) -> tuple[np.ndarray, np.ndarray, float | None]:
    """2θ and intensity from a .xy/.xye/.chi/.dat file, skipping headers and comments, and
    the ``pressure_GPa=<value>`` of its header (within the first 20 lines), if any."""
    rows: list[tuple[float, float]] = []
    pressure = None
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if pressure is None and number <= 20:
            match = _PRESSURE_HEADER.search(line)
            pressure = float(match.group(1)) if match else None
        parts = line.replace(",", " ").split()
        if not parts or line.lstrip().startswith(("#", "!", "%")):
            continue
        try:
            rows.append((float(parts[0]), float(parts[1])))
        except (ValueError, IndexError):
            if rows:  # text inside the data block: corrupt file, do not guess
                raise SpectraValidationError(
                    [f"{path}:{number}: not a '2θ intensity' row: {line.strip()[:60]!r}"]
                ) from None
            # header line (e.g. a Fit2D .chi title, axis names, point count)
    if len(rows) < 2:
        raise SpectraValidationError([f"{path}: no two-column numeric data found"])
    data = np.asarray(rows)
    x, y = data[:, 0], data[:, 1]
    if x[0] > x[-1]:  # descending grids are common; flip rather than reject
        x, y = x[::-1], y[::-1]
    return x, y, pressure


def read_xy(
    paths: Sequence[str | Path],
    pressure: Sequence[float] | str | Path | None = None,
    time: Sequence[float] | None = None,
    sample: str | None = None,
    energy_kev: float | None = None,
) -> xr.Dataset:
    """Stack single-curve text files (pyFAI .xy/.xye, Fit2D .chi) into one Dataset.

    ``pressure`` is a sequence (one per file) or a CSV with columns ``file,pressure`` (file
    names matched by name). Curves on different 2θ grids are interpolated onto the first one.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no files given")
    columns = [_read_columns(p) for p in paths]
    grid = columns[0][0]
    curves = []
    for p, (x, y, _) in zip(paths, columns, strict=True):
        if x.shape == grid.shape and np.allclose(x, grid):
            curves.append(y)
        elif x[0] <= grid[0] and x[-1] >= grid[-1]:
            curves.append(np.interp(grid, x, y))
        else:
            raise SpectraValidationError(
                [f"{p}: 2θ range {x[0]:.3f}–{x[-1]:.3f}° does not cover the first file's "
                 f"{grid[0]:.3f}–{grid[-1]:.3f}°"]
            )
    if pressure is None:  # from the files' own headers, when every file has one
        found = [header for _, _, header in columns]
        if all(v is not None for v in found):
            pressure = found
        else:
            missing = [p.name for p, v in zip(paths, found, strict=True) if v is None]
            raise SpectraValidationError(
                [f"no pressure for {len(missing)} text file(s) (e.g. {missing[0]}): give a "
                 "'pressure_GPa=<GPa>' header line, a pressure.csv (columns file,pressure) "
                 "beside them, or pressure= when reading"])
    if isinstance(pressure, str | Path):
        try:
            table = pd.read_csv(pressure)
        except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
            raise SpectraValidationError([f"{pressure}: not a readable pressure CSV ({exc})"]
                                         ) from exc
        if not {"file", "pressure"} <= set(table.columns):
            raise SpectraValidationError([f"{pressure}: needs columns 'file' and 'pressure'"])
        by_name = dict(zip(table["file"].map(lambda s: Path(s).name), table["pressure"],
                           strict=True))
        missing = [p.name for p in paths if p.name not in by_name]
        if missing:
            raise SpectraValidationError([f"missing pressure for files: {missing[:5]}"])
        pressure = [by_name[p.name] for p in paths]
    attrs = {"sample": sample or paths[0].stem, "source": str(paths[0].parent)}
    if energy_kev:
        attrs["energy"] = energy_kev
    return make_spectra(np.asarray(curves), grid, pressure, time=time, attrs=attrs)


def read_xy_folder(folder: str | Path, pressure: Any = None, **kwargs: Any) -> xr.Dataset:
    """All two-column text files of ``folder`` (sorted by name) as one run.

    Pressures come from ``pressure`` (as in :func:`read_xy`), else from a ``pressure.csv``
    (columns ``file,pressure``) in the folder, else from each file's ``pressure_GPa=``
    header; a clear error names what is missing.
    """
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir()
                   if p.suffix.lower() in TEXT_SUFFIXES and p.is_file())
    if not files:
        raise SpectraValidationError([f"{folder}: no {'/'.join(sorted(TEXT_SUFFIXES))} files"])
    if pressure is None and (folder / "pressure.csv").is_file():
        pressure = folder / "pressure.csv"
    return read_xy(files, pressure=pressure, **kwargs)


def write_xy(ds: xr.Dataset, directory: str | Path, stem: str = "curve") -> list[Path]:
    """Write one ``.xy`` file per curve (with pressure and time in the header)."""
    validate(ds)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    grid = ds[TWO_THETA].values
    for i in range(ds.sizes[CURVE]):
        path = directory / f"{stem}_{i:05d}.xy"
        header = (f"pressure_GPa={float(ds[PRESSURE][i]):.6g} time_s={float(ds[TIME][i]):.6g}\n"
                  "2theta_deg intensity")
        np.savetxt(path, np.column_stack([grid, ds[INTENSITY].values[i]]), header=header,
                   fmt="%.6f %.8g")
        out.append(path)
    return out


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
