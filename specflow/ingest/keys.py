"""Find the spectrum, pressure, 2θ-grid and energy keys in Bluesky descriptor metadata."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


class KeyDetectionError(LookupError):
    """Raised when a required data key cannot be found unambiguously."""


def spectrum_key(data_keys: Mapping[str, Mapping[str, Any]], override: str | None = None) -> str:
    """The data key holding the 1-D spectrum: ``override`` or the only 1-D array key."""
    if override is not None:
        if override not in data_keys:
            raise KeyDetectionError(f"spectrum key {override!r} not in {sorted(data_keys)}")
        return override
    found = [
        k for k, v in data_keys.items()
        if v.get("dtype") == "array" and len(v.get("shape") or ()) == 1
    ]
    if len(found) != 1:
        raise KeyDetectionError(
            f"expected exactly one 1-D array data key for the spectrum, found {found}; "
            "pass the spectrum key explicitly"
        )
    return found[0]


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


def energy_kev(configuration: Mapping[str, Any], start: Mapping[str, Any]) -> float | None:
    """Photon energy (keV) from a configuration key named like ``energy``, else start metadata."""
    for key, value in _config_items(configuration):
        if "energy" in key.lower() and np.ndim(value) == 0:
            return float(value)
    energy = start.get("energy")
    return float(energy) if energy is not None else None
