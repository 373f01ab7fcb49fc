"""Where runs come from on disk: files, folders and glob patterns, read one way everywhere.

A run is one ``.nc``/``.h5``/``.nxs``/``.csv`` file, or a set of single-curve text files (a
curve per file) in one folder. A value names runs as follows:

* a run file → that run;
* a folder of text files → one run (all of them, sorted by name);
* a folder of run files and/or folders of text files → each of them a run (CSV tables
  that are not spectra, e.g. ``labels.csv``, are left out);
* a glob pattern (``'runs/*.nc'``, ``'beamtime/run_*/*.xy'``) → its matches, text files
  grouped by folder into one run each.

Each run is read by :func:`specflow.data.io.read_spectra` with the same options (beam energy or
wavelength, radial unit) and then labelled from a labels table or pressure ranges when given
(:mod:`specflow.data.labels`).
"""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xarray as xr

from specflow.data.io import (
    HDF5_SUFFIXES,
    NETCDF_SUFFIXES,
    TEXT_SUFFIXES,
    read_spectra,
    read_text_run,
)
from specflow.data.labels import LabelSpec, apply_labels
from specflow.data.schema import SpectraValidationError

RUN_SUFFIXES = NETCDF_SUFFIXES | HDF5_SUFFIXES | {".csv"}


class NoSuchRun(FileNotFoundError):
    """A ``--data`` value that is no path and that no file matches (a usage error)."""


@dataclass(frozen=True)
class RunSource:
    """One run on disk: ``files`` (one run file, or the text files of one run) and a name."""

    name: str
    files: tuple[Path, ...]

    @property
    def is_text(self) -> bool:
        return self.files[0].suffix.lower() in TEXT_SUFFIXES

    @property
    def location(self) -> Path:
        """The run file, or the folder holding the run's text files."""
        return self.files[0] if not self.is_text else self.files[0].parent

    def sha256(self) -> str:
        """Content hash of the run's files (names and bytes, in order)."""
        digest = hashlib.sha256()
        for path in self.files:
            if self.is_text:
                digest.update(path.name.encode() + b"\0")
            with open(path, "rb") as f:
                for block in iter(lambda f=f: f.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()


def _text_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower()
                  in TEXT_SUFFIXES)


def _is_spectra_csv(path: Path) -> bool:
    """A wide spectra CSV (columns named by 2θ values), not a pressure or labels table."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            names = f.readline().split(",")
    except OSError:
        return False
    numeric = 0
    for name in names:
        try:
            float(name)
            numeric += 1
        except ValueError:
            continue
    return numeric >= 2


def _in_folder(folder: Path) -> list[RunSource]:
    text = _text_files(folder)
    run_files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower()
                 in RUN_SUFFIXES - {".csv"}]
    if text and not run_files:  # a folder of run files may hold notes, not curves
        return [RunSource(folder.name, tuple(text))]
    found = []
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in RUN_SUFFIXES and (
                p.suffix.lower() != ".csv" or _is_spectra_csv(p)):
            found.append(RunSource(p.stem, (p,)))
        elif p.is_dir() and _text_files(p):
            found.append(RunSource(p.name, tuple(_text_files(p))))
    if not found:
        raise SpectraValidationError(
            [f"{folder}: no runs here (expected text files of one run, run files "
             f"{'/'.join(sorted(RUN_SUFFIXES))}, or folders of text files)"])
    return found


def find_runs(values: Iterable[str | Path]) -> list[RunSource]:
    """The runs that ``values`` (paths, folders, glob patterns) name, in the order given.

    Raises :class:`NoSuchRun` (a :class:`FileNotFoundError`) naming a value that is no path
    and matches nothing, and :class:`SpectraValidationError` for a file of no known format.
    """
    runs: list[RunSource] = []
    for value in values:
        path = Path(value).expanduser()
        matches = [path] if path.exists() else [Path(m) for m in sorted(glob.glob(str(path),
                                                                          recursive=True))]
        if not matches:
            raise NoSuchRun(2, f"{value}: no such file or folder, and no file matches it as a "
                               "pattern", str(value))
        text: dict[Path, list[Path]] = {}
        for match in matches:
            suffix = match.suffix.lower()
            if match.is_dir():
                runs += _in_folder(match)
            elif suffix in TEXT_SUFFIXES:
                text.setdefault(match.parent, []).append(match)
            elif suffix in RUN_SUFFIXES:
                runs.append(RunSource(match.stem, (match,)))
            else:
                raise SpectraValidationError(
                    [f"{match}: unknown spectra format {suffix or '(no suffix)'!r} (use .nc, "
                     f".h5/.nxs, .csv, or {', '.join(sorted(TEXT_SUFFIXES))} text files)"])
        runs += [RunSource(folder.name, tuple(files)) for folder, files in text.items()]
    return _unique_names(runs)


def _unique_names(runs: list[RunSource]) -> list[RunSource]:
    """Names that differ: a repeated name gets its parent folder's (``b_run_1``), then a
    number; never a path (results are written under the name)."""
    seen: set[str] = set()
    out = []
    for run in runs:
        name = run.name
        if name in seen:
            name = f"{run.location.parent.name}_{run.name}"
        base, k = name, 2
        while name in seen:
            name, k = f"{base}_{k}", k + 1
        seen.add(name)
        out.append(RunSource(name, run.files))
    return out


def read_run(source: RunSource, labels: LabelSpec | None = None, **options: Any) -> xr.Dataset:
    """Read ``source`` with ``options`` (``energy_kev``, ``wavelength``, ``radial_unit``,
    ``pressure`` …, as :func:`~specflow.data.io.read_spectra` takes them) and label it from
    ``labels`` when given. Options that are None are left out."""
    options = {k: v for k, v in options.items() if v is not None}
    if source.is_text:
        ds = read_text_run(list(source.files), sample=source.name, **options)
    else:
        ds = read_spectra(source.files[0], **options)
    ds.attrs.setdefault("run_name", source.name)
    return apply_labels(ds, labels, run=source.name) if labels is not None else ds


def read_runs(values: Iterable[str | Path], labels: LabelSpec | None = None,
              **options: Any) -> dict[str, xr.Dataset]:
    """Every run ``values`` name, read and labelled alike: ``{name: Dataset}``."""
    return {src.name: read_run(src, labels, **options) for src in find_runs(values)}


def read_one(value: str | Path, labels: LabelSpec | None = None, **options: Any) -> xr.Dataset:
    """The one run ``value`` names (a usage error when it names several)."""
    found = find_runs([value])
    if len(found) != 1:
        raise ValueError(f"{value}: names {len(found)} runs ({', '.join(s.name for s in found[:4])}"
                         f"{' …' if len(found) > 4 else ''}); give one run")
    return read_run(found[0], labels, **options)
