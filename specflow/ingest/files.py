"""Runs from files into Tiled: old beamtimes join the catalog the way live runs do.

A run read from files (:func:`specflow.data.sources.read_runs`) becomes the Bluesky documents
a beamline would have emitted — composed with event-model, a ``primary`` stream with an event
per curve (the curve, the pressure readback, the curve's time as the event time) and the 2θ
grid and beam energy in the detector's configuration — and TiledWriter stores them. The run
then reads back through :func:`specflow.ingest.reader.run_to_dataset` exactly as it was read
from the files (intensities bit for bit), and ``specflow annotate`` labels it like any other.

Hand labels are not stored with the curves: labels live beside runs as annotations.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from event_model import compose_run

from specflow.data.schema import SOURCE, energy_kev, energy_to_wavelength
from specflow.ingest.catalog import require_table_storage
from specflow.ingest.paging import paged_writer

DETECTOR = "xrd"
SPECTRUM_KEY = f"{DETECTOR}_spectrum"
TWO_THETA_KEY = f"{DETECTOR}_two_theta"
ENERGY_KEY = f"{DETECTOR}_energy"
PRESSURE_KEY = "pressure"
PLAN_NAME = "specflow.ingest.files"
RESERVED = {"uid", "time", "plan_name", "run_name", "time_offset"}
CLOCK_TIME = 1e8  # s since the epoch (1973): smaller curve times are not clock times
UID_NAMESPACE = uuid.UUID("6b1f0d5e-3c1a-4c59-9a8e-5f0c2d7e9b11")


def run_uid(ds: xr.Dataset, name: str) -> str:
    """A uid that the same curves, pressures and run name always give (uuid5)."""
    digest = hashlib.sha256(name.encode())
    for var in ("intensity", "pressure", "two_theta"):
        digest.update(np.ascontiguousarray(ds[var].values).tobytes())
    return str(uuid.uuid5(UID_NAMESPACE, digest.hexdigest()))


def run_documents(ds: xr.Dataset, name: str, metadata: Mapping[str, Any] | None = None
                  ) -> Iterator[tuple[str, dict[str, Any]]]:
    """The Bluesky documents of run ``ds`` (start, descriptor, an event per curve, stop).

    The start document records ``sample``, ``run_name`` (``name``), the beam, the files the
    curves came from and ``metadata``. Its ``uid`` is derived from the curves, their pressures
    and ``name``, so the same run stored twice is refused by Tiled rather than duplicated.
    Curve times that are not clock times (files give seconds from the run's start, or the
    curve index) are placed after the moment of storing, their spacing kept; the start
    document's ``time_offset`` says by how much.
    """
    reserved = sorted(set(metadata or {}) & RESERVED)
    if reserved:
        raise ValueError(f"metadata keys {reserved} are the start document's own; choose "
                         "other names")
    n_points = ds.sizes["two_theta"]
    times = np.asarray(ds["time"].values, dtype=float)
    offset = time.time() if len(times) and times[0] < CLOCK_TIME else 0.0
    times = times + offset
    keV = energy_kev(ds, default=0.0) or None
    start_md: dict[str, Any] = {
        "plan_name": PLAN_NAME, "run_name": name,
        "sample": str(ds.attrs.get("sample", name)),
        "source": str(ds.attrs.get("source", "")),
        **({"energy": keV, "wavelength": energy_to_wavelength(keV)} if keV else {}),
        **({"files": [str(f) for f in ds[SOURCE].values]} if SOURCE in ds else {}),
        **({"time_offset": offset} if offset else {}),
        **dict(metadata or {}),
    }
    bundle = compose_run(uid=run_uid(ds, name), metadata=start_md,
                         time=float(times[0]) if len(times) else None)
    yield "start", bundle.start_doc
    config_keys = {TWO_THETA_KEY: {"dtype": "array", "shape": [n_points], "source": name,
                                   "units": "deg"}}
    config_data: dict[str, Any] = {TWO_THETA_KEY: ds["two_theta"].values.astype(float).tolist()}
    if keV:
        config_keys[ENERGY_KEY] = {"dtype": "number", "shape": [], "source": name,
                                   "units": "keV"}
        config_data[ENERGY_KEY] = keV
    descriptor = bundle.compose_descriptor(
        name="primary",
        data_keys={SPECTRUM_KEY: {"dtype": "array", "dtype_numpy": "<f4", "shape": [n_points],
                                  "source": name, "object_name": DETECTOR},
                   PRESSURE_KEY: {"dtype": "number", "shape": [], "source": name,
                                  "units": "GPa", "object_name": PRESSURE_KEY}},
        object_keys={DETECTOR: [SPECTRUM_KEY], PRESSURE_KEY: [PRESSURE_KEY]},
        configuration={DETECTOR: {"data": config_data,
                                  "timestamps": dict.fromkeys(config_data, float(times[0])),
                                  "data_keys": config_keys}},
        hints={DETECTOR: {"fields": [SPECTRUM_KEY]}},
        time=float(times[0]))
    yield "descriptor", descriptor.descriptor_doc
    intensity = ds["intensity"].values.astype(np.float32)
    pressure = ds["pressure"].values.astype(float)
    for curve, (y, p, t) in enumerate(zip(intensity, pressure, times, strict=True)):
        yield "event", descriptor.compose_event(
            data={SPECTRUM_KEY: y, PRESSURE_KEY: float(p)},
            timestamps={SPECTRUM_KEY: float(t), PRESSURE_KEY: float(t)},
            time=float(t), seq_num=curve + 1)
    yield "stop", bundle.compose_stop(exit_status="success",
                                      time=float(times[-1]) if len(times) else None)


@dataclass(frozen=True)
class StoredRun:
    """A run :func:`write_runs` handled: its name, uid and whether it was new."""

    name: str
    uid: str
    new: bool


def write_runs(client: Any, runs: Mapping[str, xr.Dataset],
               metadata: Mapping[str, Any] | None = None, batch_size: int = 50
               ) -> list[StoredRun]:
    """Store every run in Tiled through TiledWriter (in pages: :func:`paged_writer`), in
    order. A run stored before (same curves, pressures and name) is not stored again; one
    stored before but left unfinished (an interrupted ingest) is refused with what to do."""
    require_table_storage(client)
    stored = []
    for name, ds in runs.items():
        uid = run_uid(ds, name)
        if uid in client:
            if "stop" not in (client[uid].metadata or {}):
                raise ValueError(f"run {name}: stored before but unfinished (uid {uid}, an "
                                 "interrupted ingest); delete that run in Tiled or store "
                                 "this one under another name")
            stored.append(StoredRun(name, uid, new=False))
            continue
        writer = paged_writer(client, batch_size)
        for kind, doc in run_documents(ds, name, metadata):
            writer(kind, doc)
        stored.append(StoredRun(name, uid, new=True))
    return stored
