"""Read a Bluesky run stored in Tiled into the canonical spectra Dataset."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from specflow.data.labels import labels_from_fraction
from specflow.data.schema import SpectraValidationError, energy_to_wavelength, make_spectra

from . import keys


def run_to_dataset(
    run: Any,
    stream: str = "primary",
    *,
    spectrum_key: str | None = None,
    pressure_key: str | None = None,
    two_theta_key: str | None = None,
    node: Any = None,
) -> xr.Dataset:
    """Canonical spectra Dataset of one stream of a Tiled ``BlueskyRun``.

    The spectrum field defaults to the stream's only 1-D array data key, pressure to the
    readback named like ``pressure``; the 2θ grid comes from the descriptor configuration,
    ``time`` from the event times (s since the epoch). ``run_uid``, ``sample``,
    ``material``, ``energy`` (keV) and ``wavelength`` (Å) go to attrs. Intensities are
    returned exactly as stored (float32, bit for bit). A simulated run's ground truth
    (data key ``<detector>_phase_fraction``) becomes ``phase_fraction`` plus the derived
    ``label`` (:func:`specflow.data.simulate.labels_from_fraction`).

    ``node``: the stream's node when the caller has it already (e.g. from one listing of
    ``run.base.items()``), saving a request. Reading takes three requests: the stream's
    children (one listing), the spectra and the event table's columns.
    """
    start = dict(run.metadata.get("start") or {})
    node = run[stream] if node is None else node
    descriptor = node.metadata
    data_keys = descriptor.get("data_keys") or {}
    spec = keys.spectrum_key(data_keys, spectrum_key)
    pkey = keys.pressure_key(data_keys, pressure_key)
    if pkey is None:
        raise SpectraValidationError(
            [f"missing pressure: no pressure data key in stream {stream!r} "
             f"(data keys {sorted(data_keys)}); pass pressure_key="]
        )
    parts = dict(getattr(node, "base", node).items())  # one listing: arrays and the table
    if spec not in parts or "internal" not in parts:
        raise KeyError(f"stream {stream!r} has no {spec!r} array or no event table")
    intensity = np.asarray(parts[spec].read())
    columns = ["seq_num", "time", pkey]
    setpoint = f"{pkey}_setpoint"
    if setpoint in data_keys:
        columns.append(setpoint)
    fraction_key = _fraction_key(data_keys)
    if fraction_key is not None:
        columns.append(fraction_key)
    table = parts["internal"].read(columns)
    order = np.argsort(table["seq_num"].to_numpy(), kind="stable")
    if np.any(order != np.arange(order.size)):
        table = table.iloc[order]
        intensity = intensity[order]
    n_points = intensity.shape[1]
    configuration = descriptor.get("configuration") or {}
    grid = keys.two_theta_grid(configuration, n_points, two_theta_key)
    if grid is None:
        raise SpectraValidationError(
            [f"no 2θ grid of length {n_points} in the configuration of stream {stream!r}"]
        )
    energy = keys.energy_kev(configuration, start)
    attrs = {
        "run_uid": start.get("uid", ""),
        "sample": start.get("sample", ""),
        "material": start.get("material", ""),
        "stream": stream,
        "spectrum_key": spec,
        "pressure_key": pkey,
    }
    if energy is not None:
        attrs.update(energy=energy, wavelength=energy_to_wavelength(energy))
    extra = {"seq_num": table["seq_num"].to_numpy()}
    if setpoint in table:
        extra["pressure_setpoint"] = table[setpoint].to_numpy(dtype=float)
    label = None
    if fraction_key is not None:

        fraction = table[fraction_key].to_numpy(dtype=np.float32)
        extra["phase_fraction"] = fraction
        label = labels_from_fraction(fraction)
    return make_spectra(
        intensity, grid, table[pkey].to_numpy(dtype=float),
        time=table["time"].to_numpy(dtype=float), label=label, attrs=attrs, extra=extra,
    )


def _fraction_key(data_keys: dict[str, Any]) -> str | None:
    """The scalar simulation ground-truth key ``<detector>_phase_fraction``, if any."""
    found = [k for k, v in data_keys.items()
             if k.endswith("_phase_fraction") and not v.get("shape")]
    return found[0] if len(found) == 1 else None
