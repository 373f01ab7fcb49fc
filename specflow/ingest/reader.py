"""Read a Bluesky run stored in Tiled into the canonical spectra Dataset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from specflow.data.labels import labels_from_fraction
from specflow.data.schema import SpectraValidationError, energy_to_wavelength, make_spectra
from specflow.data.textformats import stack_to_two_theta

from . import keys


@dataclass(frozen=True)
class RunLayout:
    """Where a facility's Bluesky runs keep the curves: stream and data key names (a leading
    ``*`` matches a suffix, e.g. ``*_chi_I`` for any detector), the radial axis (a per-event
    array or a configuration key) and its unit, and the beam when the run does not record it.
    Every field left None is detected (:mod:`specflow.ingest.keys`)."""

    stream: str | None = None
    spectrum_key: str | None = None
    radial_key: str | None = None
    radial_unit: str | None = None
    pressure_key: str | None = None
    energy_kev: float | None = None


#: Layouts of runs specflow knows: its own (event curves with the 2θ grid in the
#: configuration, or the area detector's ``integrated`` stream), NSLS-II XPD/PDF runs
#: analysed by pdfstream (``<det>_chi_2theta`` / ``<det>_chi_Q`` / ``<det>_chi_I`` per
#: event) and pyFAI integrations emitted per event as ``q`` and ``I`` arrays
LAYOUTS = {
    "specflow": RunLayout(),
    "pdfstream": RunLayout(spectrum_key="*_chi_I", radial_key="*_chi_2theta",
                           radial_unit="2th_deg"),
    "pyfai": RunLayout(spectrum_key="I", radial_key="q"),
}
FALLBACK_STREAM = "integrated"  # the area detector's curves, when primary holds frames


def run_to_dataset(
    run: Any,
    stream: str | None = None,
    *,
    spectrum_key: str | None = None,
    pressure_key: str | None = None,
    two_theta_key: str | None = None,
    node: Any = None,
    layout: RunLayout | str | None = None,
) -> xr.Dataset:
    """Canonical spectra Dataset of one stream of a Tiled ``BlueskyRun``.

    The stream defaults to ``primary`` (or ``integrated`` when ``primary`` holds no 1-D
    curves, as in an area-detector run); the spectrum field to the stream's only 1-D array
    data key (or the one named like intensities); pressure to the readback named like
    ``pressure``; the radial axis to a per-event array named like 2θ or Q, else the 2θ grid
    in the descriptor configuration; ``time`` to the event times (s since the epoch).
    ``layout`` (a :class:`RunLayout` or a name in :data:`LAYOUTS`) names what detection
    cannot guess; the keyword arguments override it. A Q axis is placed on 2θ with the run's
    beam energy or wavelength (configuration or start document). ``run_uid``, ``sample``,
    ``material``, ``energy`` (keV) and ``wavelength`` (Å) go to attrs. Intensities are
    returned exactly as stored (float32, bit for bit). A simulated run's ground truth
    (data key ``<detector>_phase_fraction``) becomes ``phase_fraction`` plus the derived
    ``label`` (:func:`specflow.simulator.simulate.labels_from_fraction`).

    ``node``: the stream's node when the caller has it already (e.g. from one listing of
    ``run.base.items()``), saving a request. Reading takes three requests: the stream's
    children (one listing), the spectra and the event table's columns.
    """
    if isinstance(layout, str):
        if layout not in LAYOUTS:
            raise ValueError(f"unknown run layout {layout!r}; use one of {sorted(LAYOUTS)}")
        layout = LAYOUTS[layout]
    layout = layout or RunLayout()
    start = dict(run.metadata.get("start") or {})
    stream = stream or layout.stream
    if stream is None:
        stream, node = _default_stream(run, node, spectrum_key or layout.spectrum_key)
    node = run[stream] if node is None else node
    descriptor = node.metadata
    data_keys = descriptor.get("data_keys") or {}
    spec = keys.spectrum_key(data_keys, spectrum_key or layout.spectrum_key)
    pkey = keys.pressure_key(data_keys, pressure_key or layout.pressure_key)
    if pkey is None:
        raise SpectraValidationError(
            [f"missing pressure: no pressure data key in stream {stream!r} "
             f"(data keys {sorted(data_keys)}); pass pressure_key="]
        )
    radial = None if two_theta_key else keys.radial_key(data_keys, spec, layout.radial_key)
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
    n_points = intensity.shape[1]
    configuration = descriptor.get("configuration") or {}
    energy = layout.energy_kev or keys.energy_kev(configuration, start)
    uid = start.get("uid", "")
    if radial is not None:
        intensity, grid = _on_radial_axis(intensity, np.asarray(parts[radial[0]].read()),
                                          layout.radial_unit or radial[1], energy, uid)
    else:
        grid = keys.two_theta_grid(configuration, n_points, two_theta_key)
    if grid is None:
        raise SpectraValidationError(
            [f"no 2θ grid of length {n_points} in the configuration of stream {stream!r} "
             "and no per-event 2θ or Q array: name it (layout=RunLayout(radial_key=...))"]
        )
    if np.any(order != np.arange(order.size)):
        table = table.iloc[order]
        intensity = intensity[order]
    attrs = {
        "run_uid": uid,
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


def _default_stream(run: Any, node: Any, spectrum: str | None) -> tuple[str, Any]:
    """``primary`` (and its node), unless it holds no 1-D curves (``spectrum`` names the key
    when given) and the run has the ``integrated`` stream."""
    if node is not None:
        return "primary", node
    try:
        primary = run["primary"]
    except KeyError:
        primary = None
    try:
        keys.spectrum_key((primary.metadata.get("data_keys") or {}) if primary is not None
                          else {}, spectrum)
    except keys.KeyDetectionError:
        if FALLBACK_STREAM in run:
            return FALLBACK_STREAM, None
    return "primary", primary


def _on_radial_axis(intensity: np.ndarray, radial: np.ndarray, unit: str,
                    energy: float | None, uid: str) -> tuple[np.ndarray, np.ndarray]:
    """Curves on the first event's radial axis, mapped onto increasing 2θ (degrees)."""
    radial = np.atleast_2d(radial).astype(float)
    axis = radial[0]
    if radial.shape[0] > 1 and not np.allclose(radial, axis, rtol=1e-7, atol=0):
        intensity = np.stack([np.interp(axis, *((r, y) if r[0] < r[-1] else (r[::-1], y[::-1])))
                              for r, y in zip(radial, intensity, strict=True)])
    wavelength = energy_to_wavelength(energy) if energy else None
    try:
        grid, intensity = stack_to_two_theta(axis, intensity, unit, wavelength,
                                             f"run {uid[:8]}")
    except SpectraValidationError as err:
        raise SpectraValidationError(
            [p.split(": give --wavelength")[0] + ": record the energy in the run or pass "
             "layout=RunLayout(energy_kev=...)" for p in err.problems]) from None
    return intensity, grid


def _fraction_key(data_keys: dict[str, Any]) -> str | None:
    """The scalar simulation ground-truth key ``<detector>_phase_fraction``, if any."""
    found = [k for k, v in data_keys.items()
             if k.endswith("_phase_fraction") and not v.get("shape")]
    return found[0] if len(found) == 1 else None
