"""Area-detector frames in production: integrate each frame as it is announced.

A detector that writes its frames to HDF5 announces them with StreamResource/StreamDatum
documents (``external: "STREAM:"``), and bluesky-tiled-plugins' TiledWriter registers the
file in Tiled instead of copying the pixels. :class:`IntegratingRouter` passes every document
on and, for each frame event, reads the frame back from the HDF5 file, integrates it with
pyFAI and emits it as an event of an extra ``integrated`` stream: a 1-D curve plus the
pressure, with the 2θ grid and energy in the descriptor, which the live collector, the live
labeller and :func:`~specflow.ingest.reader.run_to_dataset` read as any other curve stream.
(A simulated such detector: :class:`specflow.simulator.detector.AreaDetector`.)
"""

from __future__ import annotations

import logging
import time as ttime
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlparse

import h5py
import numpy as np
from event_model import ComposeDescriptor, DocumentRouter

from .integrate import FrameIntegrator, IntegrationSettings

logger = logging.getLogger(__name__)

HDF5_MIMETYPE = "application/x-hdf5"
INTEGRATED_STREAM = "integrated"


def file_uri(path: Path) -> str:
    """``file://localhost/<absolute path>`` (percent-encoded), as Tiled registers assets."""
    return "file://localhost" + quote(str(Path(path).resolve()))


def uri_path(uri: str) -> str:
    """The local path of a ``file://`` URI (:func:`file_uri`'s inverse)."""
    parsed = urlparse(uri)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        raise ValueError(f"not a local file URI: {uri!r}")
    return unquote(parsed.path)


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

def _unpack(page: dict) -> Iterator[dict]:
    """Events of an event page."""
    for i, seq in enumerate(page["seq_num"]):
        yield {"descriptor": page["descriptor"], "seq_num": seq, "uid": page["uid"][i],
               "time": page["time"][i],
               "data": {k: v[i] for k, v in page["data"].items()},
               "timestamps": {k: v[i] for k, v in page["timestamps"].items()}}


__all__ = ["HDF5_MIMETYPE", "INTEGRATED_STREAM", "IntegratingRouter", "file_uri", "uri_path"]
