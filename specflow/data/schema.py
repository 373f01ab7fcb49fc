"""The canonical spectra layout used everywhere in specflow.

One :class:`xarray.Dataset` per run:

* ``intensity`` (``curve``, ``two_theta``) float32 — integrated diffraction curves; NaN marks
  bins without data (detector gaps, masks), at most half of a curve;
* coords ``two_theta`` (degrees, strictly increasing), ``pressure`` (GPa, per curve),
  ``time`` (s, per curve);
* optional ``label`` (``curve``) int8: 0 before, 1 during, 2 after the transition, -1 unknown;
* attrs ``wavelength`` (Å), ``energy`` (keV), ``sample``, ``run_uid``.

Other layouts (Bluesky documents, Tiled runs, text files) are converted at the edges with
:func:`make_spectra` and checked with :func:`validate`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

CURVE = "curve"
TWO_THETA = "two_theta"
INTENSITY = "intensity"
PRESSURE = "pressure"
TIME = "time"
LABEL = "label"
SOURCE = "source"  # per curve: the file (or frame) it was read from
TRUE_LABEL = "true_label"  # simulations with noisy labels: the truth beside what was written
PHASE_NAMES = {0: "before", 1: "during", 2: "after"}
UNKNOWN_LABEL = -1
HC_KEV_ANGSTROM = 12.398419843320026  # h·c in keV·Å
PLAUSIBLE_PRESSURE = (-10.0, 1000.0)  # GPa: a gauge's slight negative offset … beyond any DAC
MAX_MISSING_FRACTION = 0.5  # NaN marks bins without data (detector gaps); at most this share


class SpectraValidationError(ValueError):
    """Raised when data does not fit the canonical spectra layout; lists every problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid spectra:\n  - " + "\n  - ".join(problems))


def energy_to_wavelength(energy_kev: float) -> float:
    """Photon energy in keV to wavelength in Å."""
    return HC_KEV_ANGSTROM / energy_kev


def wavelength_to_energy(wavelength: float) -> float:
    """Wavelength in Å to photon energy in keV."""
    return HC_KEV_ANGSTROM / wavelength


def beam_wavelength(energy_kev: float | None = None,
                    wavelength: float | None = None) -> float | None:
    """The wavelength (Å) a caller gives as ``wavelength`` or ``energy_kev``; both must
    agree."""
    if (energy_kev is not None and energy_kev <= 0) or (wavelength is not None
                                                         and wavelength <= 0):
        raise ValueError("the beam energy and wavelength must be positive")
    if (energy_kev is not None and wavelength is not None
            and abs(energy_to_wavelength(energy_kev) / wavelength - 1) > 1e-3):
        raise ValueError(f"energy {energy_kev:g} keV and wavelength {wavelength:g} Å "
                         "disagree: give one of them")
    if wavelength is not None:
        return float(wavelength)
    return energy_to_wavelength(energy_kev) if energy_kev is not None else None


def chosen_wavelength(given: float | None, said: float | None, source: Any) -> float | None:
    """The run's wavelength (Å): ``given`` by the caller, else what the file ``said``; a
    given value that differs from the file's is used with a warning naming ``source``."""
    if given is not None and said is not None and abs(said / given - 1) > 5e-4:
        warnings.warn(f"{source}: the file says {said:.5g} Å ({wavelength_to_energy(said):.4g}"
                      f" keV); using the {given:.5g} Å given", UserWarning, stacklevel=3)
    return said if given is None else given


def two_theta_to_q(two_theta: Any, wavelength: float) -> np.ndarray:
    """Scattering angle 2θ (degrees) to momentum transfer Q = 4π sin θ / λ (Å⁻¹)."""
    _check_wavelength(wavelength)
    return 4 * math.pi * np.sin(np.deg2rad(np.asarray(two_theta, dtype=float)) / 2) / wavelength


def q_to_two_theta(q: Any, wavelength: float) -> np.ndarray:
    """Momentum transfer Q (Å⁻¹) to 2θ (degrees); NaN where Q is beyond 4π/λ."""
    _check_wavelength(wavelength)
    s = np.asarray(q, dtype=float) * wavelength / (4 * math.pi)
    with np.errstate(invalid="ignore"):
        return np.degrees(2 * np.arcsin(np.where(np.abs(s) <= 1, s, np.nan)))


def _check_wavelength(wavelength: float) -> None:
    if not (np.isfinite(wavelength) and 0.01 < wavelength < 10):
        raise ValueError(f"wavelength {wavelength!r} Å is not a usable X-ray wavelength")


def _ranges(idx: np.ndarray, limit: int = 5) -> str:
    """Compact text for a list of bad indices, e.g. ``3, 7, 9 (+12 more)``."""
    shown = ", ".join(str(int(i)) for i in idx[:limit])
    return shown + (f" (+{len(idx) - limit} more)" if len(idx) > limit else "")


def check_arrays(
    intensity: Any,
    two_theta: Any,
    pressure: Any | None,
    time: Any | None = None,
    label: Any | None = None,
) -> list[str]:
    """Return the problems that stop these arrays forming a valid spectra Dataset."""
    problems: list[str] = []
    intensity = np.asarray(intensity)
    two_theta = np.asarray(two_theta)
    if intensity.ndim != 2:
        problems.append(
            f"intensity must be 2-D (curve, two_theta), got {intensity.ndim}-D "
            f"shape {intensity.shape}"
        )
        return problems
    n_curves, n_points = intensity.shape
    if not np.issubdtype(intensity.dtype, np.number) or np.iscomplexobj(intensity):
        problems.append(f"intensity must be real numbers, got dtype {intensity.dtype}")
        return problems
    infinite = np.isinf(intensity)
    if infinite.any():
        curves = np.flatnonzero(infinite.any(axis=1))
        problems.append(
            f"intensity has {int(infinite.sum())} inf values in {len(curves)} curve(s): "
            f"curve index {_ranges(curves)}"
        )
    if n_points >= 2 and n_curves:
        ok = np.isfinite(intensity)
        some = ok.any(axis=1)  # all-NaN curves are reported below
        top = np.where(ok, intensity, -np.inf).max(axis=1)
        bottom = np.where(ok, intensity, np.inf).min(axis=1)
        flat = np.flatnonzero(some & (top == bottom))
        if flat.size:
            problems.append(f"{flat.size} curve(s) are constant (e.g. all zero), with no "
                            f"diffraction signal: curve index {_ranges(flat)}")
        # robust: noise and background subtraction leave negatives about as deep as the
        # noise is high, a stray pixel one deep value; refused: a curve whose negative side
        # (1st percentile) reaches 3 times further than its positive side (99th)
        finite = np.where(ok, intensity, np.nan)[some]
        low, mid, high = np.nanpercentile(finite, [1, 50, 99], axis=1) if finite.size else (
            np.empty(0), np.empty(0), np.empty(0))
        flipped = np.flatnonzero(some)[(mid < 0) & (-low > 3 * np.maximum(high, 0))]
        flipped = np.setdiff1d(flipped, flat)
        if flipped.size:
            problems.append(f"{flipped.size} curve(s) are mostly negative (sign-flipped or "
                            f"over-subtracted background?): curve index {_ranges(flipped)}")
    missing = np.isnan(intensity).mean(axis=1) > MAX_MISSING_FRACTION if n_points else []
    if np.any(missing):
        curves = np.flatnonzero(missing)
        problems.append(
            f"intensity is NaN (no data) in more than {MAX_MISSING_FRACTION:.0%} of the points "
            f"of {len(curves)} curve(s): curve index {_ranges(curves)}"
        )
    if two_theta.ndim != 1 or two_theta.shape[0] != n_points:
        problems.append(
            f"two_theta grid has shape {two_theta.shape} but intensity has {n_points} points "
            "per curve (length mismatch)"
        )
    else:
        steps = np.diff(two_theta.astype(float))
        if not np.all(np.isfinite(two_theta)):
            problems.append("two_theta grid contains NaN/inf")
        elif np.any(steps <= 0):
            first = int(np.flatnonzero(steps <= 0)[0])
            problems.append(
                "two_theta grid must be strictly increasing; it is non-monotonic at index "
                f"{first} ({float(two_theta[first]):g} -> {float(two_theta[first + 1]):g})"
            )
    if pressure is None:
        problems.append("missing pressure: every curve needs a pressure (GPa)")
    else:
        try:
            pressure = np.asarray(pressure, dtype=float)
        except (TypeError, ValueError):
            problems.append(f"pressure must be numbers (GPa), got {np.asarray(pressure)[:3]}")
            return problems
        if pressure.shape != (n_curves,):
            problems.append(
                f"pressure has shape {pressure.shape} but there are {n_curves} curves "
                "(length mismatch)"
            )
        elif not np.all(np.isfinite(pressure)):
            missing = np.flatnonzero(~np.isfinite(pressure))
            problems.append(f"missing pressure for curve index {_ranges(missing)}")
        else:
            lo, hi = PLAUSIBLE_PRESSURE
            odd = np.flatnonzero((pressure < lo) | (pressure > hi))
            if odd.size:
                problems.append(
                    f"pressure outside {lo:g}…{hi:g} GPa (wrong unit or gauge?) for curve "
                    f"index {_ranges(odd)}: e.g. {float(pressure[odd[0]]):g} GPa")
    if time is not None and np.shape(time) != (n_curves,):
        problems.append(
            f"time has shape {np.shape(time)} but there are {n_curves} curves (length mismatch)"
        )
    elif time is not None:
        try:
            bad = np.flatnonzero(~np.isfinite(np.asarray(time, dtype=float)))
        except (TypeError, ValueError):
            problems.append(f"time must be numbers (s), got dtype {np.asarray(time).dtype}")
        else:
            if bad.size:
                problems.append(f"time is NaN/inf for curve index {_ranges(bad)}")
    if label is not None:
        label = np.asarray(label)
        if label.shape != (n_curves,):
            problems.append(
                f"label has shape {label.shape} but there are {n_curves} curves (length mismatch)"
            )
        elif not np.isin(label, [UNKNOWN_LABEL, *PHASE_NAMES]).all():
            odd = np.unique(label[~np.isin(label, [UNKNOWN_LABEL, *PHASE_NAMES])])
            problems.append(f"label values must be -1, 0, 1 or 2; found {odd.tolist()}")
    return problems


def make_spectra(
    intensity: Any,
    two_theta: Any,
    pressure: Any | None,
    time: Any | None = None,
    label: Any | None = None,
    attrs: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Build a validated canonical spectra Dataset from plain arrays.

    Parameters
    ----------
    intensity : array (n_curves, n_points)
        Integrated curves, one row per curve in acquisition order.
    two_theta : array (n_points,)
        Strictly increasing 2θ grid in degrees.
    pressure : array (n_curves,)
        Pressure of every curve in GPa.
    time : array (n_curves,), optional
        Acquisition time in s; defaults to the acquisition index.
    label : array (n_curves,), optional
        0 before, 1 during, 2 after, -1 unknown.
    attrs : mapping, optional
        Run attributes, e.g. ``energy`` (keV) or ``wavelength`` (Å), ``sample``.
    extra : mapping, optional
        Further per-curve variables (e.g. ``phase_fraction``), each of length n_curves.

    Returns
    -------
    xarray.Dataset
        ``intensity`` on (``curve``, ``two_theta``) with coords ``pressure`` and ``time``.

    Raises
    ------
    SpectraValidationError
        Listing every problem found (shapes, NaN/inf, constant or sign-flipped curves,
        implausible pressures, bad labels).

    Examples
    --------
    >>> import numpy as np
    >>> ds = make_spectra(np.random.rand(3, 50), np.linspace(5, 25, 50), [1.0, 2.0, 3.0])
    >>> ds["intensity"].dims
    ('curve', 'two_theta')
    """
    problems = check_arrays(intensity, two_theta, pressure, time, label)
    intensity = np.asarray(intensity)
    n_curves = intensity.shape[0] if intensity.ndim == 2 else 0
    for name, values in (extra or {}).items():
        if np.shape(values)[:1] != (n_curves,):
            problems.append(f"{name} has shape {np.shape(values)}, expected ({n_curves}, ...)")
    if problems:
        raise SpectraValidationError(problems)
    if time is None:
        time = np.arange(n_curves, dtype=float)
    coords = {
        TWO_THETA: (TWO_THETA, np.asarray(two_theta, dtype=float), {"units": "deg"}),
        PRESSURE: (CURVE, np.asarray(pressure, dtype=float), {"units": "GPa"}),
        TIME: (CURVE, np.asarray(time, dtype=float), {"units": "s"}),
    }
    data_vars: dict[str, Any] = {
        INTENSITY: ((CURVE, TWO_THETA), intensity.astype(np.float32, copy=False)),
    }
    if label is not None:
        data_vars[LABEL] = (CURVE, np.asarray(label).astype(np.int8), {"flag_values": "-1 0 1 2",
                            "flag_meanings": "unknown before during after"})
    for name, values in (extra or {}).items():
        values = np.asarray(values)
        dims = (CURVE,) if values.ndim == 1 else (CURVE, *[f"{name}_dim_{i}" for i in
                                                          range(1, values.ndim)])
        data_vars[name] = (dims, values)
    ds = xr.Dataset(data_vars, coords=coords, attrs=dict(attrs or {}))
    return ds


def validate(ds: xr.Dataset) -> xr.Dataset:
    """Check that ``ds`` follows the canonical layout; return it unchanged or raise.

    Raises :class:`SpectraValidationError` naming every problem (inf or mostly-NaN curves,
    wrong dims, non-monotonic 2θ grid, missing pressure, length mismatches, bad labels).
    """
    if not isinstance(ds, xr.Dataset):
        raise SpectraValidationError([f"expected an xarray.Dataset, got {type(ds).__name__}"])
    if INTENSITY not in ds:
        raise SpectraValidationError([f"no '{INTENSITY}' variable (found {list(ds.data_vars)})"])
    da = ds[INTENSITY]
    if da.dims != (CURVE, TWO_THETA):
        raise SpectraValidationError(
            [f"intensity dims must be ('{CURVE}', '{TWO_THETA}'), got {da.dims}"]
        )
    problems = []
    if TWO_THETA not in ds.coords:
        problems.append("missing two_theta coordinate (the 2θ grid in degrees)")
    pressure = ds.coords.get(PRESSURE)
    if pressure is not None and pressure.dims != (CURVE,):
        problems.append(f"pressure must have dims ('{CURVE}',), got {pressure.dims}")
        pressure = None
    elif pressure is not None:
        pressure = pressure.values
    if problems:
        raise SpectraValidationError(problems)
    time = ds.coords[TIME].values if TIME in ds.coords else None
    label = ds[LABEL].values if LABEL in ds else None
    problems = check_arrays(da.values, ds[TWO_THETA].values, pressure, time, label)
    if TIME not in ds.coords:
        problems.append(f"missing time coordinate along '{CURVE}' (s)")
    if problems:
        raise SpectraValidationError(problems)
    return ds


def energy_kev(ds: xr.Dataset, default: float | None = None) -> float:
    """Photon energy of a spectra Dataset from its ``energy`` or ``wavelength`` attr."""
    if "energy" in ds.attrs:
        return float(ds.attrs["energy"])
    if "wavelength" in ds.attrs:
        return wavelength_to_energy(float(ds.attrs["wavelength"]))
    if default is None:
        raise KeyError("dataset has neither an 'energy' (keV) nor a 'wavelength' (Å) attribute")
    return default


def concat_runs(datasets: list[xr.Dataset]) -> xr.Dataset:
    """Stack several runs that share one 2θ grid into one Dataset along ``curve``.

    A per-curve ``run`` coordinate keeps each curve's origin (the run's ``run_uid`` or index).
    """
    parts = []
    for i, ds in enumerate(datasets):
        run = ds.attrs.get("run_uid", str(i))
        parts.append(ds.assign_coords(run=(CURVE, np.full(ds.sizes[CURVE], run, dtype=object))))
    grid = parts[0][TWO_THETA].values
    for p in parts[1:]:
        if p.sizes[TWO_THETA] != grid.size or not np.allclose(p[TWO_THETA].values, grid):
            raise SpectraValidationError(
                ["runs have different 2θ grids; regrid them first "
                 "(specflow.data.preprocess.regrid)"]
            )
    out = xr.concat(parts, dim=CURVE, combine_attrs="drop_conflicts")
    return out.assign_coords({TWO_THETA: grid})
