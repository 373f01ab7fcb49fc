"""Find the spectrum, pressure, 2θ-grid and energy keys in Bluesky descriptor metadata."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from specflow.data.schema import HC_KEV_ANGSTROM
from specflow.data.textformats import radial_unit_from

#: 1-D array keys that hold intensities when a stream has several (pdfstream's
#: ``<det>_chi_I``, a pyFAI callback's ``I`` or ``intensity``)
INTENSITY_NAME = re.compile(r"(^|_)(i|intensity|counts)$", re.IGNORECASE)
#: 1-D array keys that hold the radial axis per event, with the unit their name implies
RADIAL_NAMES = (
    (re.compile(r"(^|_)(two_theta|tth|2theta|2th)(_deg)?$", re.IGNORECASE), "2th_deg"),
    (re.compile(r"(^|_)q(_a\^?-1)?$", re.IGNORECASE), "q_A^-1"),
    (re.compile(r"(^|_)q_nm\^?-1$", re.IGNORECASE), "q_nm^-1"),
)


class KeyDetectionError(LookupError):
    """Raised when a required data key cannot be found unambiguously."""


def _matching(data_keys: Mapping[str, Any], name: str) -> list[str]:
    """Keys equal to ``name``, or ending with it when it starts with ``*``."""
    if name.startswith("*"):
        return [k for k in data_keys if k.endswith(name[1:])]
    return [name] if name in data_keys else []


def _one_d_arrays(data_keys: Mapping[str, Mapping[str, Any]]) -> list[str]:
    return [k for k, v in data_keys.items()
            if v.get("dtype") == "array" and len(v.get("shape") or ()) == 1]


def spectrum_key(data_keys: Mapping[str, Mapping[str, Any]], override: str | None = None) -> str:
    """The data key holding the 1-D spectrum: ``override`` (``*_chi_I`` matches a suffix),
    else the only 1-D array key, else the only one named like intensities (``…_I``,
    ``intensity``, ``counts``)."""
    if override is not None:
        found = _matching(data_keys, override)
        if len(found) != 1:
            raise KeyDetectionError(f"spectrum key {override!r} matches {found or 'nothing'} "
                                    f"in {sorted(data_keys)}")
        return found[0]
    found = _one_d_arrays(data_keys)
    if len(found) > 1:
        found = [k for k in found if INTENSITY_NAME.search(k)] or found
    if len(found) != 1:
        raise KeyDetectionError(
            f"expected one 1-D array data key for the spectrum, found {found}; name it "
            "(spectrum_key=, or a RunLayout)"
        )
    return found[0]


def radial_key(data_keys: Mapping[str, Mapping[str, Any]], spectrum: str,
               override: str | None = None) -> tuple[str, str] | None:
    """A per-event 1-D array holding the radial axis, with its unit: ``override``, else one
    named like 2θ (preferred) or Q; the unit from the key's ``units`` (degrees, 1/angstrom,
    1/nm), else from its name. None when the stream has none (the axis is then in the
    configuration)."""
    def named(key: str) -> str | None:
        return next((unit for pattern, unit in RADIAL_NAMES if pattern.search(key)), None)

    if override is not None:
        found = _matching(data_keys, override)
        if len(found) != 1:
            raise KeyDetectionError(f"radial key {override!r} matches {found or 'nothing'} "
                                    f"in {sorted(data_keys)}")
        key = found[0]
    else:
        arrays = [k for k in _one_d_arrays(data_keys) if k != spectrum and named(k)]
        if not arrays:
            return None
        key = min(arrays, key=lambda k: [u for _, u in RADIAL_NAMES].index(named(k)))
    return key, radial_unit_from(str(data_keys[key].get("units") or ""), named(key)) or "2th_deg"


def pressure_key(
    data_keys: Mapping[str, Mapping[str, Any]], override: str | None = None
) -> str | None:
    """The scalar pressure key: ``override``, else a key named like pressure/readback.

    Readbacks are preferred over setpoints; a scalar key with units ``GPa`` is the last
    resort. Returns ``None`` when nothing matches.
    """
    if override is not None:
        return override if override in data_keys else None
    scalars = {k: v for k, v in data_keys.items() if not v.get("shape")}

    def rank(key: str) -> tuple[int, int, str]:
        low = key.lower()
        setpoint = "setpoint" in low or low.endswith("_sp")
        named = "pressure" in low or "readback" in low
        return (0 if named else 1, 1 if setpoint else 0, key)

    named = [k for k in scalars if "pressure" in k.lower() or "readback" in k.lower()]
    if named:
        return min(named, key=rank)
    gpa = [k for k, v in scalars.items() if str(v.get("units", "")).lower() == "gpa"]
    return min(gpa, key=rank) if gpa else None


def _config_items(configuration: Mapping[str, Any]):
    for obj in (configuration or {}).values():
        yield from ((obj or {}).get("data") or {}).items()


def two_theta_grid(
    configuration: Mapping[str, Any], n_points: int, override: str | None = None
) -> np.ndarray | None:
    """The 2θ grid (degrees) from descriptor configuration, or ``None``.

    Uses ``override`` if given, else a configuration key containing ``two_theta`` (or
    ``tth``) whose length is ``n_points``.
    """
    for key, value in _config_items(configuration):
        name = key.lower()
        wanted = key == override if override else ("two_theta" in name or "tth" in name)
        if wanted and np.ndim(value) == 1 and len(value) == n_points:
            return np.asarray(value, dtype=float)
    return None


def _angstrom(value: float) -> float:
    """A wavelength in Å, given in Å or (pyFAI's habit) in metres."""
    return value * 1e10 if value < 1e-6 else value


def energy_kev(configuration: Mapping[str, Any], start: Mapping[str, Any]) -> float | None:
    """Photon energy (keV) from a configuration key named like ``energy`` or ``wavelength``,
    else the start document's ``energy``, ``wavelength`` or ``calibration_md.wavelength``
    (wavelengths in Å or metres)."""
    def numbers(word: str):  # scalar numbers under keys naming the beam (not thresholds)
        for key, value in _config_items(configuration):
            low = key.lower()
            if word in low and "threshold" not in low and np.ndim(value) == 0:
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    continue
                if number > 0:
                    yield number

    for energy in numbers("energy"):
        return energy / 1000 if energy > 1000 else energy  # eV, when it can only be eV
    for wavelength in numbers("wavelength"):
        return HC_KEV_ANGSTROM / _angstrom(wavelength)
    energy = start.get("energy")
    if energy is not None:
        return float(energy)
    calibration = start.get("calibration_md") or {}
    wavelength = start.get("wavelength") or calibration.get("wavelength")
    return HC_KEV_ANGSTROM / _angstrom(float(wavelength)) if wavelength else None
