"""Frames the modern way: an area detector writes HDF5, the documents only reference it.

:class:`AreaDetector` (ophyd) renders a frame per trigger (:mod:`specflow.ingest.area`),
appends it to an HDF5 file and announces it with StreamResource/StreamDatum documents; its
data key is ``external: "STREAM:"``, so bluesky-tiled-plugins' TiledWriter registers the
file in Tiled instead of copying the pixels (the server must be allowed to read the folder).
:class:`IntegratingRouter` passes every document on and, for each frame event, reads the frame
back from the HDF5 file, integrates it with pyFAI and emits it as an event of an extra
``integrated`` stream: a 1-D curve plus the pressure, with the 2θ grid and energy in the
descriptor, which the live collector, the live labeller and :func:`run_to_dataset` read as
any other curve stream.
"""

from __future__ import annotations

import logging
import time as ttime
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlparse

import fabio.edfimage
import h5py
import hdf5plugin
import numpy as np
from bluesky import RunEngine
from bluesky_tiled_plugins import TiledWriter
from event_model import ComposeDescriptor, ComposeStreamResource, DocumentRouter
from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import Status

from specflow.data.simulate import XRDSimulator

from .area import DetectorGeometry, FrameRenderer, detector_mask
from .catalog import require_table_storage
from .compressions import TILED_BATCH_SIZE, run_compressions
from .devices import DiamondAnvilCell, FractionSignal, finished, pattern_at_cell
from .integrate import FrameIntegrator, IntegrationSettings

logger = logging.getLogger(__name__)

HDF5_MIMETYPE = "application/x-hdf5"
FRAMES_DATASET = "/entry/data/data"  # where Eiger-style files keep frames (fabio reads it)
INTEGRATED_STREAM = "integrated"


class FrameFile:
    """An HDF5 file of frames (n, rows, cols) growing by one frame per :meth:`append`, in
    single-writer/multiple-reader mode so readers see each frame once it is flushed."""

    def __init__(self, path: Path, shape: tuple[int, int], dtype: str = "<u4",
                 compress: bool = True) -> None:
        self.path = path
        self.file = h5py.File(path, "w", libver="latest")
        # Bitshuffle-LZ4, as Dectris detectors write: ~7x smaller photon-count frames for
        # ~6 ms each (1 Mpixel); Tiled's HDF5 adapter loads the filter (hdf5plugin)
        options = dict(hdf5plugin.Bitshuffle(cname="lz4")) if compress else {}
        try:
            self.data = self.file.create_dataset(
                FRAMES_DATASET, shape=(0, *shape), maxshape=(None, *shape),
                chunks=(1, *shape), dtype=dtype, **options)
            self.file.swmr_mode = True
        except Exception:
            self.file.close()
            raise
        self.count = 0

    def append(self, frame: np.ndarray) -> int:
        """Write ``frame`` as the next one; returns its index."""
        self.data.resize(self.count + 1, axis=0)
        self.data[self.count] = frame
        self.data.flush()
        self.count += 1
        return self.count - 1

    def close(self) -> None:
        self.file.close()


def file_uri(path: Path) -> str:
    """``file://localhost/<absolute path>`` (percent-encoded), as Tiled registers assets."""
    return "file://localhost" + quote(str(Path(path).resolve()))


def uri_path(uri: str) -> str:
    """The local path of a ``file://`` URI (:func:`file_uri`'s inverse)."""
    parsed = urlparse(uri)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        raise ValueError(f"not a local file URI: {uri!r}")
    return unquote(parsed.path)


class AreaDetector(Device):
    """A simulated 2-D detector at a diamond-anvil cell, writing frames to HDF5.

    Each ``trigger()`` simulates the 1-D pattern at the cell's readback pressure (with the
    phase fraction of the path so far), renders it as a frame through ``geometry`` and
    appends it to ``<directory>/<uuid>.h5`` (one file per run, opened at ``stage``). The frame
    is data key ``<name>_image`` (external, ``STREAM:``); the event holds only the ground-truth
    ``<name>_phase_fraction``. The geometry's ``.poni`` and the mask (``.edf``, non-zero =
    masked) are written beside the file; their paths and the energy are configuration.
    """

    phase_fraction = Cpt(FractionSignal, value=0.0, kind="normal")
    energy = Cpt(Signal, value=0.0, kind="config")
    poni = Cpt(Signal, value="", kind="config")
    mask_file = Cpt(Signal, value="", kind="config")

    def __init__(self, *, name: str = "det", cell: DiamondAnvilCell, directory: str | Path,
                 geometry: DetectorGeometry | None = None, material: str = "Fe",
                 sparkle: float = 0.3, counts: float = 0.05, seed: int | None = 0,
                 **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.cell = cell
        self.material = material
        self.geometry = geometry or DetectorGeometry()
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.simulator = XRDSimulator(material=material, energy_kev=self.geometry.energy_kev,
                                      seed=seed)
        self.renderer = FrameRenderer(self.geometry, self.simulator.two_theta,
                                      mask=detector_mask(self.geometry), sparkle=sparkle,
                                      counts=counts, seed=seed)
        self.energy.put(float(self.geometry.energy_kev))
        self.image_key = f"{name}_image"
        self._file: FrameFile | None = None
        self._datum: Any = None
        self._assets: list[tuple[str, dict]] = []

    def stage(self) -> list[Any]:
        """Open this run's files: ``<uuid>.h5`` for the frames, with the geometry
        (``<uuid>.poni``) and mask (``<uuid>_mask.edf``) beside it, so a stored run keeps
        the calibration it was recorded with."""
        staged = super().stage()
        base = self.directory / str(uuid.uuid4())
        poni = self.geometry.write_poni(base.with_suffix(".poni"))
        mask = base.parent / f"{base.name}_mask.edf"
        fabio.edfimage.EdfImage(data=self.renderer.mask.astype(np.int8)).write(str(mask))
        self.poni.put(str(poni))
        self.mask_file.put(str(mask))
        path = base.with_suffix(".h5")
        self._file = FrameFile(path, self.geometry.shape)
        bundle = ComposeStreamResource()(
            HDF5_MIMETYPE, file_uri(path), self.image_key,
            {"dataset": FRAMES_DATASET, "chunk_shape": (1, *self.geometry.shape),
             "swmr": True})
        self._assets = [("stream_resource", bundle.stream_resource_doc)]
        self._datum = bundle.compose_stream_datum
        return staged

    def unstage(self) -> list[Any]:
        if self._file is not None:
            self._file.close()
            self._file = None
        return super().unstage()

    def describe(self) -> dict[str, dict[str, Any]]:
        desc = super().describe()
        desc[self.image_key] = {
            "source": "file", "dtype": "array", "dtype_numpy": "<u4",
            "shape": list(self.geometry.shape), "dims": ["row", "col"], "units": "counts",
            "external": "STREAM:"}
        return desc

    def trigger(self) -> Status:
        """Record one frame at the present cell pressure; returns a finished status."""
        if self._file is None:
            raise RuntimeError(f"{self.name} is not staged: frames need a run's HDF5 file")
        pattern, fraction = pattern_at_cell(self.simulator, self.cell)
        index = self._file.append(self.renderer.render(pattern))
        self._assets.append(("stream_datum", self._datum({"start": index, "stop": index + 1})))
        self.phase_fraction.put(fraction)
        return finished(self)

    def collect_asset_docs(self) -> Iterator[tuple[str, dict]]:
        """StreamResource (first frame of a run) and one StreamDatum per frame."""
        assets, self._assets = self._assets, []
        yield from assets


class IntegratingRouter(DocumentRouter):
    """Passes documents on to its subscribers and adds an integrated stream: one
    pyFAI-integrated curve per frame event of any stream with an external 2-D data key
    (frames of ``primary`` go to ``integrated``, of another stream ``<name>_integrated``).

    The geometry and mask of each detector come from its descriptor configuration
    (``<det>_poni``, ``<det>_mask_file``, read again for every run) unless ``integrator``
    is given. Frames are read back from the StreamResource's HDF5 file (SWMR), so the
    curves are what the stored run holds. A frame that cannot be integrated is logged and
    kept in :attr:`problems`; acquisition goes on. Runs are followed one at a time, as one
    RunEngine emits them; fly-scan streams (StreamDatum without events) are not integrated.
    """

    def __init__(self, *subscribers: Callable[[str, dict], Any],
                 integrator: FrameIntegrator | None = None,
                 settings: IntegrationSettings | None = None,
                 stream: str = INTEGRATED_STREAM) -> None:
        super().__init__()
        self.subscribers = list(subscribers)
        self.given = integrator
        self.settings = settings
        self.stream = stream
        self.latency: list[float] = []  # s from a frame event's time to its curve, delivered
        self.problems: list[str] = []
        self._files: dict[str, h5py.File] = {}
        self._reset()

    def subscribe(self, callback: Callable[[str, dict], Any]) -> None:
        self.subscribers.append(callback)

    def _reset(self) -> None:
        self._start: dict | None = None
        self._frames: dict[str, dict[str, Any]] = {}  # frames descriptor uid -> its keys
        self._resources: dict[str, dict] = {}
        self._index: dict[tuple[str, int], tuple[str, int]] = {}  # (desc, seq) -> (res, i)
        self._waiting: dict[tuple[str, int], dict] = {}  # events whose datum is not here yet
        self._integrators: dict[tuple[str, str], FrameIntegrator] = {}
        self._counters: dict[str, int] = {}

    def emit(self, name: str, doc: dict) -> None:
        for callback in self.subscribers:
            callback(name, doc)

    def __call__(self, name: str, doc: dict, validate: bool = False) -> Any:
        if name == "stop":
            try:
                self._flush_waiting()
                added = {name: n - 1 for name, n in self._counters.items()}  # next seq_num
                counts = {**(doc.get("num_events") or {}), **added}
                self.emit(name, {**doc, "num_events": counts})  # the added streams counted
            finally:
                self._close()
            return None
        self.emit(name, doc)  # pass everything on first: the stored run stays complete
        return super().__call__(name, doc, validate)

    def start(self, doc: dict) -> None:
        self._close()
        self._start = doc

    def descriptor(self, doc: dict) -> None:
        if self._start is None:
            return  # subscribed in the middle of a run: wait for the next one
        keys = doc.get("data_keys") or {}
        frames = [k for k, v in keys.items()
                  if v.get("external") == "STREAM:" and len(v.get("shape") or ()) == 2]
        if not frames:
            return
        if len(frames) > 1:
            logger.warning("stream %r has several frame keys %s; integrating %s",
                           doc.get("name"), frames, frames[0])
        key = frames[0]
        obj = next((o for o, ks in (doc.get("object_keys") or {}).items() if key in ks),
                   key.rsplit("_", 1)[0])
        config = ((doc.get("configuration") or {}).get(obj) or {}).get("data") or {}
        source = doc.get("name", "primary")
        self._frames[doc["uid"]] = {
            "key": key, "object": obj, "data_keys": keys,
            "poni": config.get(f"{obj}_poni"), "mask": config.get(f"{obj}_mask_file"),
            "stream": self.stream if source == "primary" else f"{source}_{self.stream}",
            "compose": None}

    def stream_resource(self, doc: dict) -> None:
        if doc.get("mimetype") == HDF5_MIMETYPE:
            self._resources[doc["uid"]] = doc

    def stream_datum(self, doc: dict) -> None:
        resource = self._resources.get(doc["stream_resource"])
        frames = self._frames.get(doc["descriptor"])
        if resource is None or frames is None or resource["data_key"] != frames["key"]:
            return  # another external key (a detector's stats, a second camera, ...)
        seqs, idx = doc["seq_nums"], doc["indices"]
        for offset, seq in enumerate(range(seqs["start"], seqs["stop"])):
            key = (doc["descriptor"], seq)
            self._index[key] = (doc["stream_resource"], idx["start"] + offset)
            if key in self._waiting:  # the event came first
                self._integrate(self._waiting.pop(key))

    def event(self, doc: dict) -> None:
        if doc["descriptor"] not in self._frames:
            return
        if (doc["descriptor"], doc["seq_num"]) in self._index:
            self._integrate(doc)
        else:
            self._waiting[(doc["descriptor"], doc["seq_num"])] = doc

    def event_page(self, doc: dict) -> None:
        for event in _unpack(doc):
            self.event(event)

    # ------------------------------------------------------------------------------------
    def _integrate(self, event: dict) -> None:
        frames = self._frames[event["descriptor"]]
        resource, index = self._index.pop((event["descriptor"], event["seq_num"]))
        try:
            integrator = self._integrator(frames)
            curve = integrator.integrate(self._read(resource, index))
        except Exception as err:  # noqa: BLE001 - one bad frame must not stop acquisition
            problem = (f"frame {event['seq_num']} of stream {frames['stream']!r} not "
                       f"integrated: {type(err).__name__}: {err}")
            logger.error(problem)
            self.problems.append(problem)
            return
        self._emit_curve(frames, integrator, event, curve)

    def _flush_waiting(self) -> None:
        for key in list(self._waiting):
            self.problems.append(f"frame {key[1]} had no StreamDatum by the end of the run")
        self._waiting.clear()

    def _integrator(self, frames: dict[str, Any]) -> FrameIntegrator:
        if self.given is not None:
            return self.given
        if not frames["poni"]:
            raise ValueError(f"the frames descriptor names no .poni file (configuration "
                             f"key '{frames['object']}_poni'); pass integrator=")
        key = (str(frames["poni"]), str(frames["mask"] or ""))
        if key not in self._integrators:
            self._integrators[key] = FrameIntegrator(frames["poni"], frames["mask"] or None,
                                                     self.settings)
        return self._integrators[key]

    def _read(self, resource: str, index: int) -> np.ndarray:
        doc = self._resources[resource]
        handle = self._files.get(resource)
        if handle is None:
            handle = self._files[resource] = h5py.File(uri_path(doc["uri"]), "r",
                                                       libver="latest", swmr=True)
        data = handle[doc["parameters"]["dataset"]]
        data.refresh()
        return np.asarray(data[index])

    def _emit_curve(self, frames: dict[str, Any], integrator: FrameIntegrator, event: dict,
                    curve: np.ndarray) -> None:
        obj = frames["object"]
        curve_key = f"{obj}_curve"
        scalars = {k: v for k, v in event["data"].items()
                   if k != frames["key"] and not (frames["data_keys"].get(k) or {}).get("shape")}
        if frames["compose"] is None:
            keys = {curve_key: {"source": "pyFAI.integrate1d", "dtype": "array",
                                "dtype_numpy": "<f4", "shape": [curve.size],
                                "dims": ["two_theta"], "units": "counts"}}
            keys.update({k: dict(frames["data_keys"][k]) for k in scalars})
            now = ttime.time()
            config = {obj: {"data": {f"{obj}_two_theta": integrator.two_theta.tolist(),
                                     f"{obj}_energy": integrator.energy_kev},
                            "timestamps": {f"{obj}_two_theta": now, f"{obj}_energy": now},
                            "data_keys": {
                                f"{obj}_two_theta": {"source": "pyFAI", "dtype": "array",
                                                     "shape": [curve.size], "units": "deg"},
                                f"{obj}_energy": {"source": "pyFAI", "dtype": "number",
                                                  "shape": [], "units": "keV"}}}}
            bundle = ComposeDescriptor(start=self._start, streams={},
                                       event_counters=self._counters)(
                frames["stream"], keys, configuration=config,
                object_keys={obj: list(keys)}, time=event["time"])
            frames["compose"] = bundle.compose_event
            self.emit("descriptor", bundle.descriptor_doc)
        data = {curve_key: curve, **scalars}
        timestamps = {k: event.get("timestamps", {}).get(k, event["time"]) for k in data}
        out = frames["compose"](data=data, timestamps=timestamps, time=event["time"])
        self.emit("event", out)
        self.latency.append(ttime.time() - event["time"])

    def _close(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files.clear()
        self._reset()

def record_frame_compressions(
    client: Any,
    frames: str | Path,
    runs: int = 1,
    curves: int = 60,
    material: str = "Fe",
    seed: int = 0,
    geometry: DetectorGeometry | None = None,
    callbacks: Sequence[Callable[[str, dict], Any]] = (),
    on_event: Callable[[], None] | None = None,
) -> tuple[list[str], IntegratingRouter]:
    """Simulated compressions recorded by an area detector: frames → HDF5 (in ``frames``,
    a folder the Tiled server may read) → Tiled as external data, and each frame integrated
    with pyFAI into the run's ``integrated`` stream (:class:`IntegratingRouter`).

    ``callbacks`` get every document, the integrated stream included (e.g. a live labeller
    with ``stream="integrated"``). Returns the run uids and the router (its ``latency``
    holds the frame-to-curve delay of every frame).
    """
    require_table_storage(client)
    engine = RunEngine({}, call_returns_result=False)
    router = IntegratingRouter(TiledWriter(client, batch_size=TILED_BATCH_SIZE), *callbacks)
    engine.subscribe(router)
    uids = run_compressions(
        engine, runs, curves, material, seed,
        lambda cell, i: AreaDetector(name="det", cell=cell, directory=frames,
                                     geometry=geometry, material=material, seed=seed + i),
        md={"detector": "area"}, on_event=on_event)
    return uids, router


def _unpack(page: dict) -> Iterator[dict]:
    """Events of an event page."""
    for i, seq in enumerate(page["seq_num"]):
        yield {"descriptor": page["descriptor"], "seq_num": seq, "uid": page["uid"][i],
               "time": page["time"][i],
               "data": {k: v[i] for k, v in page["data"].items()},
               "timestamps": {k: v[i] for k, v in page["timestamps"].items()}}


__all__ = ["FRAMES_DATASET", "HDF5_MIMETYPE", "INTEGRATED_STREAM", "AreaDetector",
           "FrameFile", "IntegratingRouter", "file_uri", "record_frame_compressions"]
